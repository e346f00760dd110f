"""Error types at the exporter's boundaries: configuration and data sources."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in a configuration: where it is and what is wrong."""

    file: str
    line: int | None
    key: str
    problem: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.key}: {self.problem}" if self.key else f"{where}: {self.problem}"


class ConfigError(Exception):
    """A configuration is invalid; `details` lists every problem found, sorted by position."""

    def __init__(self, details: list[ConfigProblem]) -> None:
        self.details = sorted(details, key=lambda p: (p.file, p.line or 0, p.key, p.problem))
        super().__init__("\n".join(str(p) for p in self.details))


class SourceError(Exception):
    """A datastore read failed; `reason` is the stable label used in error counters."""

    reason = "error"


class SourceTimeoutError(SourceError):
    """The datastore did not answer within the query's budget."""

    reason = "timeout"


class SourceUnavailableError(SourceError):
    """The datastore could not be reached or refused the connection."""

    reason = "unavailable"


class SourceQueryError(SourceError):
    """The datastore answered with an error for this query (bad SQL, permissions, wrong type)."""

    reason = "query"
