"""validate's check of the log indices' setup files: elasticsearch/setup/ (ILM policies,
component and index templates, roles, users) and kibana/saved-objects/*.ndjson.

Each file must parse (a JSON error names its line) and every reference must resolve: an index
template's components and ILM policy exist, a role names only index patterns the templates
create (or the ai-finance-* family), a role's Kibana privileges are in the form Kibana registers
them, a user's roles exist, a data view's pattern is a template's and a saved search's data view
is imported beside it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SETUP = Path("elasticsearch/setup")
SAVED_OBJECTS = Path("kibana/saved-objects")
FOLDERS = ("ilm", "component-templates", "index-templates", "roles", "users")
# Roles Elasticsearch defines itself, which a user may name without a file here.
BUILTIN_ROLES = {"superuser", "kibana_system", "logstash_system", "monitoring_user", "viewer"}
# The family every log index belongs to (DESIGN.md §2); a reader role may name it whole.
FAMILY = "ai-finance-*"
# Kibana 8.18's application privileges in Elasticsearch (x-pack/platform/plugins/shared/security/
# server/authorization/privilege_serializer.ts): application kibana-<kibana.index>, privileges
# feature_<feature id>.<privilege> or a base one, resources * or space:<space id>. Anything else
# grants nothing in Kibana, silently.
KIBANA_APPLICATION = "kibana-.kibana"
_FEATURE_PRIVILEGE = re.compile(r"^feature_[a-zA-Z0-9_-]+\.[a-zA-Z0-9_-]+$")
BASE_PRIVILEGES = {"all", "read", "space_all", "space_read"}
_KIBANA_RESOURCE = re.compile(r"^(\*|space:[a-z0-9_-]+)$")


@dataclass(frozen=True)
class ElasticProblem:
    """One invalid thing: the file (relative to the repository), its line, what is wrong."""

    file: str
    line: int | None
    text: str


def _load(root: Path, path: Path, problems: list[ElasticProblem]) -> Any:
    relative = str(path.relative_to(root))
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        problems.append(ElasticProblem(relative, err.lineno, f"invalid JSON: {err.msg}"))
        return None
    if not isinstance(document, dict):
        problems.append(ElasticProblem(relative, 1, "expected a JSON object"))
        return None
    return document


def _documents(root: Path, problems: list[ElasticProblem]) -> dict[str, dict[str, Any]]:
    """{folder: {name: document}} of the setup files that parse."""
    found: dict[str, dict[str, Any]] = {}
    for folder in FOLDERS:
        found[folder] = {}
        files = sorted((root / SETUP / folder).glob("*.json"))
        if not files:
            problems.append(ElasticProblem(str(SETUP / folder), None, "no JSON files"))
        for path in files:
            document = _load(root, path, problems)
            if document is not None:
                found[folder][path.stem] = document
    return found


def _index_templates(
    templates: dict[str, dict[str, Any]], known: dict[str, dict[str, Any]]
) -> list[ElasticProblem]:
    problems = []
    for name, template in templates.items():
        where = str(SETUP / "index-templates" / f"{name}.json")
        for component in template.get("composed_of", []):
            if component not in known["component-templates"]:
                problems.append(ElasticProblem(where, None, f"unknown component {component!r}"))
        settings = template.get("template", {}).get("settings", {})
        policy = settings.get("index.lifecycle.name")
        if policy is None:
            problems.append(ElasticProblem(where, None, "no index.lifecycle.name (retention)"))
        elif policy not in known["ilm"]:
            problems.append(
                ElasticProblem(
                    where, None, f"unknown ILM policy {policy!r}; known: {sorted(known['ilm'])}"
                )
            )
    return problems


def _kibana_privileges(where: str, role: dict[str, Any]) -> list[ElasticProblem]:
    problems = []
    for entry in role.get("applications", []):
        application = entry.get("application")
        if application != KIBANA_APPLICATION:
            problems.append(
                ElasticProblem(
                    where,
                    None,
                    f"application {application!r} is not Kibana's {KIBANA_APPLICATION!r}",
                )
            )
            continue
        for privilege in entry.get("privileges", []):
            if not (_FEATURE_PRIVILEGE.match(privilege) or privilege in BASE_PRIVILEGES):
                problems.append(
                    ElasticProblem(
                        where,
                        None,
                        f"Kibana privilege {privilege!r}: expected feature_<feature>.<privilege>"
                        f" or one of {sorted(BASE_PRIVILEGES)}",
                    )
                )
        for resource in entry.get("resources", []):
            if not _KIBANA_RESOURCE.match(resource):
                problems.append(
                    ElasticProblem(
                        where, None, f"Kibana resource {resource!r}: expected * or space:<space id>"
                    )
                )
    return problems


def _roles_and_users(
    root: Path, known: dict[str, dict[str, Any]], patterns: set[str]
) -> list[ElasticProblem]:
    problems = []
    # A role file that does not parse is reported once, as itself, not by every user naming it.
    roles = {path.stem for path in (root / SETUP / "roles").glob("*.json")}
    for name, role in known["roles"].items():
        where = str(SETUP / "roles" / f"{name}.json")
        for entry in role.get("indices", []):
            for index in sorted(set(entry.get("names", [])) - patterns - {FAMILY}):
                problems.append(
                    ElasticProblem(
                        where, None, f"index {index!r} is no template's; known: {sorted(patterns)}"
                    )
                )
        problems += _kibana_privileges(where, role)
    for name, user in known["users"].items():
        where = str(SETUP / "users" / f"{name}.json")
        if "password" in user:
            problems.append(ElasticProblem(where, None, "a password in the repository"))
        for role in sorted(set(user.get("roles", [])) - roles - BUILTIN_ROLES):
            problems.append(ElasticProblem(where, None, f"unknown role {role!r}"))
    return problems


def _saved_objects(root: Path, patterns: set[str]) -> list[ElasticProblem]:
    problems: list[ElasticProblem] = []
    for path in sorted((root / SAVED_OBJECTS).glob("*.ndjson")):
        relative = str(path.relative_to(root))
        objects: list[tuple[int, dict[str, Any]]] = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            try:
                objects.append((number, json.loads(line)))
            except json.JSONDecodeError as err:
                problems.append(ElasticProblem(relative, number, f"invalid JSON: {err.msg}"))
        views = {o.get("id") for _, o in objects if o.get("type") == "index-pattern"}
        for number, item in objects:
            title = item.get("attributes", {}).get("title")
            if item.get("type") == "index-pattern" and title not in patterns:
                problems.append(
                    ElasticProblem(relative, number, f"data view {title!r} is no template's index")
                )
            for reference in item.get("references", []):
                if reference.get("type") == "index-pattern" and reference.get("id") not in views:
                    problems.append(
                        ElasticProblem(
                            relative, number, f"unknown data view {reference.get('id')!r}"
                        )
                    )
    return problems


def check(root: Path) -> list[ElasticProblem]:
    """Every problem of the setup files and the saved objects, in file order."""
    problems: list[ElasticProblem] = []
    known = _documents(root, problems)
    patterns = {
        pattern
        for template in known["index-templates"].values()
        for pattern in template.get("index_patterns", [])
    }
    problems += _index_templates(known["index-templates"], known)
    problems += _roles_and_users(root, known, patterns)
    problems += _saved_objects(root, patterns)
    return problems
