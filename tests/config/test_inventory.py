"""monitoring/inventory.yml's dashboards and folders: an entry YAML reads other than it looks is
rejected, and the generated dashboards and folders carry the inventory's titles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from monitoring import dashboards
from monitoring.inventory import INVENTORY, InventoryError, load
from support.repo import ROOT

# The two entries as they were: a flow mapping ends an unquoted title at its first comma.
CUT_TITLES = {
    "trading-signals-orders": ("Signals, orders and market data", "orders and market data"),
    "infrastructure-overview": ("Hosts, containers and datastores", "containers and datastores"),
}


def _inventory_with(tmp_path: Path, old: str, new: str) -> Path:
    text = INVENTORY.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {INVENTORY}"
    path = tmp_path / "inventory.yml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_an_unquoted_title_with_a_comma_is_rejected(tmp_path: Path) -> None:
    for uid, (title, stray) in CUT_TITLES.items():
        line = f"{uid}: {{folder: {load().dashboards[uid]['folder']}, title: {title}}}"
        path = _inventory_with(tmp_path, f'title: "{title}"', f"title: {title}")
        assert line in path.read_text()
        with pytest.raises(InventoryError, match=f"dashboard {uid}: unknown keys '{stray}': None"):
            load(path)


def test_a_dashboard_without_a_title_or_with_an_unknown_key_is_rejected(tmp_path: Path) -> None:
    path = _inventory_with(tmp_path, "title: Business exporters}", "title: }")
    with pytest.raises(InventoryError, match="dashboard exporters-health: title must be a non-emp"):
        load(path)
    path = _inventory_with(tmp_path, "title: Business exporters}", "title: Exporters, tilte: x}")
    with pytest.raises(InventoryError, match="dashboard exporters-health: unknown keys 'tilte'"):
        load(path)


def test_a_folder_without_a_title_is_rejected(tmp_path: Path) -> None:
    path = _inventory_with(tmp_path, "  portfolio: Portfolio and risk\n", "  portfolio:\n")
    with pytest.raises(InventoryError, match="folders portfolio: the title must be"):
        load(path)


def test_dashboards_and_folders_carry_the_inventory_titles() -> None:
    inventory = load()
    expected = {uid: meta["title"] for uid, meta in inventory.dashboards.items()}
    expected |= {f"services-{s.name}": s.name for s in inventory.services}
    titles = {
        (model := json.loads(path.read_text()))["uid"]: model["title"]
        for path in (ROOT / dashboards.DASHBOARD_DIR).rglob("*.json")
    }
    assert titles == expected
    for uid, (title, _) in CUT_TITLES.items():
        assert titles[uid] == title
    providers = yaml.safe_load((ROOT / dashboards.PROVIDERS).read_text())["providers"]
    assert {p["folderUid"]: p["folder"] for p in providers} == inventory.folders
