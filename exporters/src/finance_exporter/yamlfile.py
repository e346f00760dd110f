"""Read a YAML file into plain data that remembers the line of every mapping key."""

from __future__ import annotations

from pathlib import Path

import yaml

from finance_exporter.errors import ConfigError, ConfigProblem


class LinedMap(dict[str, object]):
    """A mapping from a YAML file: `lines[key]` is the line where each key is."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[str, int] = {}


def load(path: Path) -> object:
    """Parse `path`; syntax errors and duplicate keys raise ConfigError with file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(
            [ConfigProblem(str(path), None, "", f"cannot read: {err.strerror}")]
        ) from err
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        line = mark.line + 1 if mark is not None else None
        problem = f"invalid YAML: {err.problem or err.context}"
        raise ConfigError([ConfigProblem(str(path), line, "", problem)]) from err
    if node is None:
        return LinedMap()
    problems: list[ConfigProblem] = []
    data = _convert(node, str(path), problems)
    if problems:
        raise ConfigError(problems)
    return data


def _convert(node: yaml.Node, file: str, problems: list[ConfigProblem]) -> object:
    if isinstance(node, yaml.MappingNode):
        mapping = LinedMap()
        for key_node, value_node in node.value:
            key = str(_convert(key_node, file, problems))
            line = key_node.start_mark.line + 1
            if key in mapping:
                problems.append(ConfigProblem(file, line, key, "duplicate key"))
            mapping[key] = _convert(value_node, file, problems)
            mapping.lines[key] = line
        return mapping
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, file, problems) for item in node.value]
    # Scalars: the safe constructor resolves ints, floats, booleans and nulls from their tags.
    return yaml.constructor.SafeConstructor().construct_object(node)
