"""The Logstash pipelines and the packages' redaction modules are generated from logs/rules.yml
and committed; a difference fails with the command that fixes it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitoring import generate, inventory, logs
from monitoring.logs import ruby

FIX = ".venv/bin/python -m monitoring generate"


@pytest.mark.parametrize("path", sorted(logs.render(logs.load())), ids=str)
def test_generated_file_is_current(path: Path, tmp_path: Path) -> None:
    generate.write(tmp_path, generate.render(inventory.load()))
    committed = (logs.ROOT / path).read_text(encoding="utf-8")
    assert committed == (tmp_path / path).read_text(encoding="utf-8"), f"stale: run {FIX}"


def test_no_orphan_pipeline(rules: logs.Rules) -> None:
    committed = {p.relative_to(logs.ROOT) for p in (logs.ROOT / "logstash/pipeline").iterdir()}
    assert committed == {logs.PIPELINE, logs.DEADLETTER_PIPELINE}


def test_pipelines_yml_runs_both_generated_pipelines() -> None:
    text = (logs.ROOT / "logstash/config/pipelines.yml").read_text(encoding="utf-8")
    configs = re.findall(r"path\.config: /usr/share/logstash/pipeline/(\S+)", text)
    assert configs == [logs.PIPELINE.name, logs.DEADLETTER_PIPELINE.name]


def test_logstash_yml_leaves_pipelines_yml_in_charge_and_keeps_dead_letters() -> None:
    text = (logs.ROOT / "logstash/config/logstash.yml").read_text(encoding="utf-8")
    settings = dict(
        line.split(": ", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert "path.config" not in settings  # it would make Logstash ignore pipelines.yml
    assert settings["dead_letter_queue.enable"] == "true"
    assert settings["config.support_escapes"] == "false"  # the Ruby code's backslashes


def test_every_index_has_one_output_with_the_design_names(rules: logs.Rules) -> None:
    text = (logs.ROOT / logs.PIPELINE).read_text(encoding="utf-8")
    indices = re.findall(r'index => "([a-z-]+)-%\{\+YYYY\.MM\.dd\}"', text)
    assert indices == [rules.general_index, *(route.index for route in rules.routes)]
    for option in ("manage_template => false", "ilm_enabled => false", 'data_stream => "false"'):
        assert text.count(option) == len(indices), option
    assert text.count('user => "logstash_internal"') == len(indices)
    assert text.count('password => "${LOGSTASH_INTERNAL_PASSWORD}"') == len(indices)


def test_every_pattern_of_the_rules_is_in_the_pipeline(rules: logs.Rules) -> None:
    text = (logs.ROOT / logs.PIPELINE).read_text(encoding="utf-8")
    for redaction in rules.classes:
        for pattern in (redaction.text, redaction.key):
            if pattern is not None:
                assert ruby._ruby_regexp(pattern) in text, redaction.name
