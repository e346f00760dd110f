"""docs/operations.md against the code it describes: the pinned versions are the compose
file's, the volumes left out are stores.py's, the Alertmanager crash bound is the flag's, and
the meta alerts are the rules' (each with its severity and runbook)."""

from __future__ import annotations

import re

import yaml

from finance_stack import stores
from support.compose_vars import defaults, resolve
from support.repo import ROOT

DOC = (ROOT / "docs" / "operations.md").read_text()
# Images built from this checkout: their version is the checkout's, not a pin.
OUR_IMAGES = {"EXPORTERS_IMAGE", "STACK_IMAGE", "DEMO_IMAGE", "KUMA_SETUP_IMAGE"}


def pins_table() -> str:
    found = defaults((ROOT / "docker-compose.yml").read_text())
    rows = [
        f"| `{name}` | `{resolve(value)}` |"
        for name, value in sorted(found.items())
        if name.endswith("_IMAGE") and name not in OUR_IMAGES
    ]
    return "\n".join(["| variable | image |", "|---|---|", *rows])


def test_the_pinned_versions_are_the_compose_files() -> None:
    found = re.search(r"<!-- pins: begin -->\n(.*?)\n<!-- pins: end -->", DOC, re.S)
    assert found, "docs/operations.md: no <!-- pins: begin --> ... <!-- pins: end --> section"
    expected = pins_table()
    assert found.group(1) == expected, f"paste into docs/operations.md:\n{expected}"


def test_the_volumes_left_out_are_the_ones_stores_py_leaves_out() -> None:
    section = DOC.split("| volume | why it is not in the archive |")[1].split("\n\n")[0]
    named = set(re.findall(r"`([a-z-]+-data|[a-z-]+-checkpoints)`", section))
    assert named == set(stores.NOT_BACKED_UP)


def test_the_alertmanager_crash_bound_is_the_flags() -> None:
    seconds = stores.ALERTMANAGER_MAINTENANCE_SECONDS
    text = " ".join(DOC.split())
    assert f"The compose file sets **{seconds}s**" in text
    assert f"less than {seconds} seconds before it may be sent again" in text


def _meta_rules() -> dict[str, str]:
    """Alert -> severity of every rule labelled category: meta."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "prometheus" / "rules").rglob("*.yml")):
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            for rule in group["rules"]:
                labels = rule.get("labels") or {}
                if "alert" in rule and labels.get("category") == "meta":
                    found[rule["alert"]] = labels["severity"]
    return found


def test_every_meta_alert_is_explained_with_its_severity_and_runbook() -> None:
    section = DOC.split("## Meta alerts")[1].split("\n## ")[0]
    rows = re.findall(r"^\| \[(\w+)\]\(runbooks/(\w+)\.md\) \| (\w+) \|", section, re.M)
    assert {alert: severity for alert, _, severity in rows} == _meta_rules()
    assert len(rows) == len(_meta_rules())
    for alert, runbook, _ in rows:
        assert runbook == alert and (ROOT / "docs" / "runbooks" / f"{runbook}.md").is_file()


def test_the_newest_changelog_row_of_each_image_is_its_pin() -> None:
    found = re.search(
        r"<!-- pin changelog: begin -->\n(.*?)\n<!-- pin changelog: end -->", DOC, re.S
    )
    assert found, "docs/operations.md: no <!-- pin changelog: begin --> ... end --> section"
    rows = re.findall(
        r"^\| (\d{4}-\d\d-\d\d) \| `(\w+)` \|(?: `([^`]+)`)? \| `([^`]+)` \| [^|]+ \|$",
        found.group(1),
        re.M,
    )
    assert len(rows) == len(found.group(1).splitlines()) - 2, "a row is not in the table's form"
    dates = [date for date, *_ in rows]
    assert dates == sorted(dates, reverse=True), "the changelog is newest first"
    newest: dict[str, str] = {}
    for _, variable, _, to in rows:
        newest.setdefault(variable, to)
    pins = dict(line.strip("| ").split(" | ") for line in pins_table().splitlines()[2:])
    assert newest == {name.strip("`"): image.strip("`") for name, image in pins.items()}
