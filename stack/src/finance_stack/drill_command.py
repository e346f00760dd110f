"""The `drill` step: `drill [SCENARIO] [--list] [--json]` for start-monitoring.sh.

With no scenario (or `synthetic`) it runs the synthetic drill (drill.py); with a scenario of
scenarios.py it breaks the demo platform on purpose and follows the real alert
(scenario_drill.py). `--list` names every scenario and the alert it expects. Progress goes to
stderr as [+] lines, a summary or the listing to stdout with --json.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from finance_stack import drill
from finance_stack.commands import _logs, fail, info, project_for, step_parser
from finance_stack.compose import ComposeError, Project
from finance_stack.envfile import Settings
from finance_stack.fault_control import ComposeFaults
from finance_stack.scenario_drill import ScenarioDrillError, run_scenario
from finance_stack.scenarios import BY_NAME, PLATFORM_CONTAINER, SCENARIOS, Scenario

SYNTHETIC = "synthetic"
# Which services' last log lines help after a failed step.
_LOGS_AFTER = {
    "fire": ("prometheus", "alertmanager"),
    "route": ("alertmanager",),
    "deliver": ("alertmanager", "alert-sink"),
    "resolve": ("prometheus", "alertmanager", "alert-sink"),
}


def synthetic_listing(timeout_seconds: float) -> dict[str, object]:
    """The synthetic drill as --list shows it."""
    return {
        "name": SYNTHETIC,
        "summary": "a synthetic alert posted to Alertmanager, then resolved (nothing breaks)",
        "fault": "none",
        "alert": "MonitoringDrill",
        "labels": {"severity": "warning", "team": "sre", "service": "alertmanager"},
        "receiver": drill.RECEIVER,
        "fire_timeout_seconds": 0,
        "deliver_timeout_seconds": round(timeout_seconds),
        "resolve_timeout_seconds": round(timeout_seconds),
    }


def _minutes(seconds: object) -> str:
    return f"{int(str(seconds)) / 60:.0f}m" if int(str(seconds)) >= 120 else f"{seconds}s"


def render_listing(rows: list[dict[str, object]]) -> str:
    """Two lines per scenario: its name, the alert and labels it expects and the receiver;
    then what it breaks and how long each wait may take."""
    width = max(len(str(row["name"])) for row in rows) + 2
    lines = []
    for row in rows:
        labels = row["labels"]
        assert isinstance(labels, dict)
        selector = ",".join(f'{k}="{v}"' for k, v in labels.items())
        lines.append(f"{row['name']!s:<{width}}{row['alert']}{{{selector}}} -> {row['receiver']}")
        waits = ", ".join(
            f"{step} {_minutes(row[f'{step}_timeout_seconds'])}"
            for step in ("fire", "deliver", "resolve")
            if row[f"{step}_timeout_seconds"]
        )
        lines.append(f"{'':<{width}}{row['summary']}; waits at most: {waits}")
    return "\n".join(lines) + "\n"


def cmd_drill(argv: list[str]) -> int:
    """Fire a synthetic alert, or break the demo platform (a scenario), and follow the alert to
    its receiver and back."""
    parser = step_parser("drill", "--json", "--list")
    parser.add_argument("scenario", nargs="?", default=SYNTHETIC)
    parser.add_argument("--timeout", type=float, required=True)
    args = parser.parse_args(argv)
    if args.list:
        rows = [synthetic_listing(args.timeout), *(s.listing() for s in SCENARIOS)]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n" if args.json else render_listing(rows))
        return 0
    scenario = BY_NAME.get(args.scenario)
    if scenario is None and args.scenario != SYNTHETIC:
        names = ", ".join([SYNTHETIC, *BY_NAME])
        fail(f"unknown drill scenario: {args.scenario}; the scenarios are: {names}")
        fail("./start-monitoring.sh drill --list says what each breaks and expects")
        return 2
    settings = Settings(args.root)
    try:
        project = project_for(args.root, args.profiles, settings)
        if scenario is None:
            return _synthetic(args.root, settings, project, args.timeout, args.json)
        return _scenario(args.root, settings, project, scenario, args.json)
    except ComposeError as err:
        fail(str(err))
        return 1


def _show_logs(root: Path, settings: Settings, step: str) -> None:
    for service in _LOGS_AFTER.get(step, ()):
        fail(f"last log lines of {service}:")
        sys.stderr.write(_logs(root, settings, service))


def _synthetic(
    root: Path, settings: Settings, project: Project, timeout: float, as_json: bool
) -> int:
    try:
        result = drill.run(project, timeout, info)
    except drill.DrillError as err:
        fail(str(err))
        _show_logs(root, settings, err.step if err.step in ("deliver", "resolve") else "")
        if as_json:
            print(json.dumps({"ok": False, "step": err.step, "error": str(err)}))
        return 1
    if as_json:
        print(json.dumps({"ok": True, **asdict(result)}))
    return 0


def _scenario(
    root: Path, settings: Settings, project: Project, scenario: Scenario, as_json: bool
) -> int:
    if PLATFORM_CONTAINER not in project.services:
        fail(
            f"drill {scenario.name} breaks the demo platform, which profiles {project.profiles}"
            " do not run: start the stack with the demo profile (COMPOSE_PROFILES=demo,...)"
        )
        return 1
    info(f"drill {scenario.name}: {scenario.summary}")
    info(f"expects {scenario.alert} at receiver {scenario.receiver}; Ctrl-C turns the fault off")
    try:
        result = run_scenario(
            scenario,
            drill.base_url(project, "alertmanager"),
            drill.base_url(project, "alert-sink"),
            ComposeFaults(root, settings.environ),
            info,
        )
    except ScenarioDrillError as err:
        fail(f"{err.step}: {err}")
        _show_logs(root, settings, err.step)
        if as_json:
            steps = [asdict(step) for step in err.steps]
            summary = {"ok": False, "scenario": scenario.name, "step": err.step}
            print(json.dumps({**summary, "error": str(err), "steps": steps}))
        return 1
    except drill.DrillError as err:  # no published port for Alertmanager or the alert sink
        fail(str(err))
        return 1
    except KeyboardInterrupt:
        fail(f"drill {scenario.name} interrupted; its fault is off again")
        return 1
    if as_json:
        print(json.dumps({"ok": True, **asdict(result)}))
    return 0
