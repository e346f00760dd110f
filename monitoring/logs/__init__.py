"""logs/rules.yml: log routing and redaction, validated, evaluated, and rendered for Logstash.

One rule set serves three places: the Logstash pipeline (logstash/pipeline/, Ruby and Logstash
conditionals), the Python packages' log formatters (a generated redaction module each), and
`evaluate`, which applies the rules to an event the way the pipeline does, for the tests. A
malformed rules file raises RulesError naming the file, line and problem. Standard library
and PyYAML only: `./start-monitoring.sh validate` imports this with nothing installed.

model.py holds the rules as values, rules.py loads and validates them, evaluation.py applies
them in Python, ruby.py and logstash.py render the pipelines, and modules.py renders the
packages' copies of redaction.py.
"""

from __future__ import annotations

from pathlib import Path

from monitoring.logs.evaluation import CONFLICT_TAG, evaluate, matches, nest
from monitoring.logs.logstash import (
    DEADLETTER_PIPELINE,
    ELASTICSEARCH,
    PIPELINE,
    TARGETS,
    render_deadletter,
    render_pipeline,
)
from monitoring.logs.model import Condition, LogIndex, RedactionClass, Route, Rules
from monitoring.logs.modules import REDACTION_MODULES, render_redaction_module
from monitoring.logs.redaction import Redaction
from monitoring.logs.ruby import RUBY_CODE, ruby_init
from monitoring.logs.rules import (
    CLASS_KEYS,
    HEADER,
    ILM,
    INDEX_KEYS,
    OPERATORS,
    ROOT,
    RULES,
    RulesError,
    load,
)

__all__ = [
    "CLASS_KEYS",
    "CONFLICT_TAG",
    "DEADLETTER_PIPELINE",
    "ELASTICSEARCH",
    "HEADER",
    "ILM",
    "INDEX_KEYS",
    "OPERATORS",
    "PIPELINE",
    "REDACTION_MODULES",
    "ROOT",
    "RUBY_CODE",
    "RULES",
    "TARGETS",
    "Condition",
    "LogIndex",
    "Redaction",
    "RedactionClass",
    "Route",
    "Rules",
    "RulesError",
    "evaluate",
    "load",
    "matches",
    "nest",
    "render",
    "render_deadletter",
    "render_pipeline",
    "render_redaction_module",
    "ruby_init",
]


def render(rules: Rules) -> dict[Path, str]:
    """Every file generated from the rules, by path relative to the repository root."""
    module = render_redaction_module(rules)
    return {
        PIPELINE: render_pipeline(rules),
        DEADLETTER_PIPELINE: render_deadletter(rules),
        **{path: module for path in REDACTION_MODULES},
    }
