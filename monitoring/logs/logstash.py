"""logstash/pipeline/*.conf from the rules: the main pipeline (decode, nest and redact, route,
one Elasticsearch output per index) and the dead-letter pipeline."""

from __future__ import annotations

import json
from pathlib import Path

from monitoring.logs.model import Condition, Rules
from monitoring.logs.ruby import RUBY_CODE, ruby_init
from monitoring.logs.rules import HEADER

PIPELINE = Path("logstash/pipeline/main.conf")
DEADLETTER_PIPELINE = Path("logstash/pipeline/deadletter.conf")
TARGETS = '"[@metadata][target_indices]"'  # the route indices an event matched
ELASTICSEARCH = {
    "hosts": ["http://elasticsearch:9200"],
    "user": "logstash_internal",
    "password": "${LOGSTASH_INTERNAL_PASSWORD}",
}


def _logstash_value(value: str | int) -> str:
    return str(value) if isinstance(value, int) else json.dumps(value)


def _condition_text(condition: Condition) -> str:
    if condition.op == "exists":
        return condition.reference
    if condition.op == "in":
        values = ", ".join(_logstash_value(v) for v in condition.values)
        return f"{condition.reference} in [{values}]"
    return " or ".join(f"{json.dumps(v)} in {condition.reference}" for v in condition.values)


def _indent(text: str, depth: int) -> str:
    pad = "  " * depth
    return "\n".join(pad + line if line else line for line in text.splitlines())


def _elasticsearch(index: str, depth: int) -> str:
    options = {
        "id": f"index_{index.replace('-', '_')}",
        **ELASTICSEARCH,
        "index": f"{index}-%{{+YYYY.MM.dd}}",
        # Our templates and ILM policies (elasticsearch/) own these indices: the plugin must
        # neither install its own template nor switch to a rollover alias or a data stream.
        "manage_template": False,
        "ilm_enabled": False,
        "data_stream": "false",
    }
    lines = ["elasticsearch {"]
    for key, value in options.items():
        rendered = json.dumps(value) if not isinstance(value, bool) else str(value).lower()
        lines.append(f"  {key} => {rendered}")
    lines.append("}")
    return _indent("\n".join(lines), depth)


def _single_quoted(code: str, depth: int) -> str:
    body = _indent(code.strip(), depth + 1)
    return f"'\n{body}\n{'  ' * depth}'"


def render_pipeline(rules: Rules) -> str:
    """logstash/pipeline/main.conf."""
    routes = []
    for route in rules.routes:
        condition = " or ".join(f"({_condition_text(c)})" for c in route.conditions)
        routes.append(
            f"  # {route.index}: {route.description}\n"
            f"  if {condition} {{\n"
            f"    mutate {{ add_field => {{ {TARGETS} => {json.dumps(route.index)} }} }}\n"
            "  }"
        )
    outputs = [_elasticsearch(rules.general_index, 1)]
    for route in rules.routes:
        outputs.append(
            f"  if {json.dumps(route.index)} in {TARGETS[1:-1]} {{\n"
            f"{_elasticsearch(route.index, 2)}\n  }}"
        )
    return "\n".join(
        [
            HEADER.rstrip(),
            "# One JSON object per line over TCP 5000, or Beats on 5044: decoded, nested into ECS",
            "# objects, redacted, and written to the general daily index and to each index whose",
            "# route matches (docs/logs.md). Rejected documents go to the dead-letter queue.",
            "input {",
            '  tcp { id => "tcp_json_lines" port => 5000 codec => json_lines }',
            '  beats { id => "beats" port => 5044 }',
            "}",
            "",
            "filter {",
            "  # Beats carries a container's line in [message]; a service's line is one JSON",
            "  # object. One that does not parse is kept as it came, tagged _jsonparsefailure.",
            r"  if [@metadata][beat] and [message] =~ /^\s*\x7B/ {",  # \x7B: an opening brace
            '    json { id => "decode_message" source => "message"'
            ' tag_on_failure => ["_jsonparsefailure"] }',
            "  }",
            "  # Dotted keys into ECS objects, then every string redacted (logs/rules.yml).",
            "  ruby {",
            '    id => "nest_and_redact"',
            f"    init => {_single_quoted(ruby_init(rules), 2)}",
            f"    code => {_single_quoted(RUBY_CODE, 2)}",
            "  }",
            *routes,
            "}",
            "",
            "output {",
            *outputs,
            "}",
            "",
        ]
    )


def render_deadletter(rules: Rules) -> str:
    """logstash/pipeline/deadletter.conf: what Elasticsearch rejected, kept searchable."""
    code = """
reason = event.get("[@metadata][dead_letter_queue][reason]").to_s
original = event.to_hash.reject { |key, _| key.start_with?("@") }
original.each_key { |key| event.remove("[#{key}]") }
event.set("[message]", LogStash::Json.dump(original))
event.set("[error][message]", reason)
event.set("[event][dataset]", "logstash.deadletter")
"""
    return "\n".join(
        [
            HEADER.rstrip(),
            "# The main pipeline's dead-letter queue (documents Elasticsearch answered 400 or 404",
            f"# to) into the daily {rules.deadletter_index} index. A rejected document is kept as",
            "# text: its fields are what the mapping refused, so they are not indexed as fields",
            "# again.",
            "# It was redacted before its rejection. Read segments are deleted (clean_consumed).",
            "input {",
            "  dead_letter_queue {",
            '    id => "main_dead_letters"',
            '    path => "/usr/share/logstash/data/dead_letter_queue"',
            '    pipeline_id => "main"',
            "    commit_offsets => true",
            "    clean_consumed => true",
            "  }",
            "}",
            "",
            "filter {",
            "  ruby {",
            '    id => "keep_as_text"',
            f"    code => {_single_quoted(code, 2)}",
            "  }",
            "}",
            "",
            "output {",
            _elasticsearch(rules.deadletter_index, 1),
            "}",
            "",
        ]
    )
