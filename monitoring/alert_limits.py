"""Alert limits read from prometheus/rules/: the dashboards' thresholds and the sentences that
name the alert behind them come from the rules, so a limit is written once.

An alert's limit is the number its expression compares against at the top (through `and` /
`unless` guards and parentheses): `finance_market_data_age_seconds > 60` has limit > 60.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import promql_parser
import yaml

RULES_DIR = Path(__file__).resolve().parent.parent / "prometheus" / "rules"
_COMPARISONS = {">", "<", "=="}
_GUARDS = {"and", "unless"}


class LimitError(ValueError):
    """An alert the dashboards refer to is missing or has no numeric limit."""


@dataclass(frozen=True)
class Limit:
    alert: str
    op: str  # ">", "<" or "=="
    value: float
    for_: str

    def threshold(self, *, complement: bool = False) -> tuple[str, list[tuple[float, str]]]:
        """Grafana threshold steps: red beyond the limit. `complement` is for a panel that shows
        1 - the alert's ratio (memory used where the alert reads memory available)."""
        value = round(1 - self.value, 12) if complement else self.value
        value = int(value) if value.is_integer() else value
        fires_above = (self.op == ">") != complement
        if self.op == "==":
            raise LimitError(f"{self.alert} fires at {self.value:g}, not beyond a limit")
        return ("green", [(value, "red")]) if fires_above else ("red", [(value, "green")])

    def says(self, unit: str = "", *, of: str = "") -> str:
        """`ModelAccuracyLow fires below 55% for 30m.`; unit "%" shows a ratio as a percentage,
        `of` names what the ratio is of (`available`)."""
        shown = f"{self.value * 100:g}%" if unit == "%" else f"{self.value:g}{unit}"
        where = {">": "above", "<": "below", "==": "at"}[self.op]
        held = f" for {self.for_}" if self.for_ else ""
        return f"{self.alert} fires {where} {shown}{f' {of}' if of else ''}{held}."


def _limit(alert: str, node: promql_parser.Expr) -> tuple[str, float]:
    while isinstance(node, promql_parser.ParenExpr):
        node = node.expr
    if isinstance(node, promql_parser.BinaryExpr):
        op = str(node.op)
        if op in _COMPARISONS and isinstance(node.rhs, promql_parser.NumberLiteral):
            return op, float(node.rhs.val)
        if op in _GUARDS:
            return _limit(alert, node.lhs)
    raise LimitError(f"{alert}: no `<expr> > | < | == <number>` at the top of its expression")


@cache
def limits(rules_dir: Path = RULES_DIR) -> dict[str, Limit]:
    """Every alert with a numeric limit, by name, from the rule files under `rules_dir`."""
    found: dict[str, Limit] = {}
    ambiguous = set()
    for path in sorted(rules_dir.rglob("*.yml")):
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", []):
            for rule in group["rules"]:
                if "alert" not in rule:
                    continue
                try:
                    op, value = _limit(rule["alert"], promql_parser.parse(rule["expr"]))
                except LimitError:
                    continue
                one = Limit(rule["alert"], op, value, str(rule.get("for", "")))
                if found.setdefault(one.alert, one) != one:
                    ambiguous.add(one.alert)  # one alert per service, each with its own limit
    return {name: one for name, one in found.items() if name not in ambiguous}


@cache
def alert_names(rules_dir: Path = RULES_DIR) -> frozenset[str]:
    """The name of every alerting rule under `rules_dir`, with a numeric limit or not."""
    return frozenset(
        str(rule["alert"])
        for path in sorted(rules_dir.rglob("*.yml"))
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups", [])
        for rule in group["rules"]
        if "alert" in rule
    )


def named(alert: str) -> str:
    """`alert`, for a panel text that names it; LimitError if no rule defines it."""
    if alert not in alert_names():
        raise LimitError(f"no alert {alert} in {RULES_DIR}")
    return alert


def limit(alert: str) -> Limit:
    try:
        return limits()[alert]
    except KeyError:
        raise LimitError(f"no alert {alert} with a numeric limit in {RULES_DIR}") from None


def alerting(
    alert: str, unit: str = "", *, complement: bool = False, of: str = ""
) -> dict[str, Any]:
    """A panel's `threshold` and `description` keyword arguments for the alert it shows."""
    one = limit(alert)
    return {"threshold": one.threshold(complement=complement), "description": one.says(unit, of=of)}
