"""The log indices' Elasticsearch objects (elasticsearch/setup/: ILM policies, component and
index templates, roles, users), Kibana's saved objects and Grafana's Elasticsearch side, offline:
generated files match their generator, every reference resolves, retention and privileges are
what DESIGN.md §2 and §6 say, and every field a panel aggregates on is mapped as a keyword."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from finance_stack import elastic_snapshot, engine, secrets
from monitoring import elastic, generate, logs
from monitoring.inventory import load
from support.repo import ROOT

SETUP = ROOT / "elasticsearch" / "setup"
FIX = "python -m monitoring generate"
# DESIGN.md §2: info 30 days, errors and security 90 days.
RETENTION_DAYS = {
    "ai-finance-logs": 30,
    "ai-finance-errors": 90,
    "ai-finance-security": 90,
    "ai-finance-revenue": 30,
    "ai-finance-trading": 30,
    # Logstash's deadletter pipeline (logstash/pipeline/deadletter.conf): refused documents.
    "ai-finance-deadletter": 90,
}
PATTERNS = sorted(f"{name}-*" for name in RETENTION_DAYS)
# The attributes Kibana 8.18 knows for each imported type. search: SCHEMA_SEARCH_MODEL_VERSION_5
# (src/platform/plugins/shared/saved_search/server/saved_objects/schema.ts), whose `create`
# schema forbids any other key; only title and kibanaSavedObjectMeta.searchSourceJSON have no
# default. index-pattern: the data view attributes (the type registers no create schema).
SEARCH_ATTRIBUTES = {
    "title", "description", "columns", "sort", "grid", "rowHeight", "rowsPerPage",
    "headerRowHeight", "sampleSize", "density", "hideChart", "breakdownField", "visContext",
    "kibanaSavedObjectMeta", "isTextBasedQuery", "usesAdHocDataView", "timeRestore",
    "timeRange", "refreshInterval", "viewMode", "hideAggregatedPreview", "hits", "version",
}  # fmt: skip
DATA_VIEW_ATTRIBUTES = {
    "title", "name", "timeFieldName", "fields", "fieldAttrs", "sourceFilters", "fieldFormatMap",
    "type", "typeMeta", "allowNoIndex", "runtimeFieldMap", "allowHidden",
}  # fmt: skip
# The url field format's params (field_formats/common/converters/url.ts): `type` a link, the
# templates with {{value}} (URL-encoded in urlTemplate, raw in labelTemplate), and the target.
URL_FORMAT_PARAMS = {"type", "urlTemplate", "labelTemplate", "openLinkInCurrentTab"}


def documents(folder: str) -> dict[str, dict[str, Any]]:
    """Every JSON file of a setup folder by name (the object's name in Elasticsearch)."""
    found = {path.stem: json.loads(path.read_text()) for path in (SETUP / folder).glob("*.json")}
    assert found, f"no JSON in {folder}/"
    return found


def saved_objects() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (ROOT / elastic.SAVED_OBJECTS).read_text().splitlines()]


def properties(mapping: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """{dotted field: type} of a mapping's properties."""
    found: dict[str, str] = {}
    for name, spec in mapping.get("properties", {}).items():
        if "properties" in spec:
            found.update(properties(spec, f"{prefix}{name}."))
        else:
            found[f"{prefix}{name}"] = spec["type"]
    return found


ECS = properties(documents("component-templates")["ai-finance-ecs"]["template"]["mappings"])


# ---- generated files -----------------------------------------------------------------------------


def test_templates_and_saved_objects_match_the_generator(tmp_path: Path) -> None:
    generate.write(tmp_path, generate.render(load()))
    for relative in elastic.render():
        assert (ROOT / relative).read_bytes() == (tmp_path / relative).read_bytes(), (
            f"{relative} is out of date; run: {FIX}"
        )
    on_disk = {p.relative_to(ROOT) for p in (ROOT / elastic.INDEX_TEMPLATE_DIR).glob("*.json")}
    assert on_disk == {p for p in elastic.render() if p.suffix == ".json"}, f"orphans; run: {FIX}"


def test_regenerating_removes_an_orphan_index_template(tmp_path: Path) -> None:
    orphan = tmp_path / elastic.INDEX_TEMPLATE_DIR / "ai-finance-retired.json"
    orphan.parent.mkdir(parents=True)
    orphan.write_text("{}\n")
    generate.write(tmp_path, generate.render(load()))
    assert not orphan.exists()


# ---- templates and retention --------------------------------------------------------------------


def test_each_daily_index_has_a_template_with_its_retention() -> None:
    templates = documents("index-templates")
    policies = documents("ilm")
    assert sorted(p for t in templates.values() for p in t["index_patterns"]) == PATTERNS
    for name, days in RETENTION_DAYS.items():
        template = templates[name]
        assert template["index_patterns"] == [f"{name}-*"]
        policy = policies[template["template"]["settings"]["index.lifecycle.name"]]["policy"]
        # Delete-only: no rollover (the indices are daily), deleted at `days` after creation.
        assert policy["phases"] == {"delete": {"min_age": f"{days}d", "actions": {"delete": {}}}}


def test_templates_are_composed_of_the_ecs_mappings_and_the_replica_setting() -> None:
    components = documents("component-templates")
    for template in documents("index-templates").values():
        assert template["composed_of"] == ["ai-finance-ecs", "ai-finance-settings"]
        assert set(template["composed_of"]) <= set(components)
        assert template["priority"] > 100  # above the built-in logs-*-* template
    index = components["ai-finance-settings"]["template"]["settings"]["index"]
    # setup.sh writes ELASTICSEARCH_REPLICAS there (0 by default: one node stays green).
    assert index == {"number_of_shards": 1, "number_of_replicas": "${ELASTICSEARCH_REPLICAS}"}
    assert (
        "ELASTICSEARCH_REPLICAS: ${ELASTICSEARCH_REPLICAS:-0}"
        in (ROOT / "docker-compose.yml").read_text()
    )


def test_ecs_fields_have_their_types() -> None:
    keywords = {"log.level", "service.name", "trace.id", "span.id", "event.category"}
    assert {field: ECS[field] for field in keywords} == dict.fromkeys(keywords, "keyword")
    assert ECS["@timestamp"] == "date" and ECS["message"] == "text"
    assert all(kind == "keyword" for field, kind in ECS.items() if field.startswith("event."))


# ---- roles and users -----------------------------------------------------------------------------


def test_logstash_writes_only_new_documents_into_its_indices() -> None:
    role = documents("roles")["logstash_writer"]
    assert role["cluster"] == ["monitor"]  # GET / and GET /_license at the output's start
    (indices,) = role["indices"]
    assert sorted(indices["names"]) == PATTERNS
    assert indices["privileges"] == ["create_doc", "auto_configure"]


def test_the_reader_role_reads_the_log_indices_and_monitors_the_cluster() -> None:
    role = documents("roles")["ai_finance_reader"]
    assert role["cluster"] == ["monitor"]  # Grafana 11's Elasticsearch datasource needs it
    assert role["indices"] == [
        {"names": ["ai-finance-*"], "privileges": ["read", "view_index_metadata"]}
    ]


def test_people_read_the_logs_in_kibana_without_a_superuser() -> None:
    viewer = documents("users")["logs_viewer"]
    assert viewer["roles"] == ["ai_finance_reader", "kibana_logs_viewer"]
    role = documents("roles")["kibana_logs_viewer"]
    assert role["cluster"] == [] and role["indices"] == []
    (application,) = role["applications"]
    assert application["application"] == "kibana-.kibana"
    assert application["resources"] == ["space:default"]
    # Feature privileges, read only: Discover, dashboards, data views.
    assert sorted(application["privileges"]) == [
        "feature_dashboard.read",
        "feature_discover.read",
        "feature_indexPatterns.read",
    ]


def test_kibana_setup_imports_with_exactly_the_import_privileges() -> None:
    """The saved-objects import needs bulk_create and find on index-pattern and search in the
    default space (docs/logs.md, "The setup jobs"): Data View Management all and Discover
    minimal_all grant those, and nothing else is granted."""
    assert documents("users")["kibana_setup"]["roles"] == ["kibana_importer"]
    role = documents("roles")["kibana_importer"]
    assert role["cluster"] == [] and role["indices"] == []
    assert "run_as" not in role
    assert role["applications"] == [
        {
            "application": "kibana-.kibana",
            "privileges": ["feature_indexPatterns.all", "feature_discover.minimal_all"],
            "resources": ["space:default"],
        }
    ]


def test_kibana_setup_logs_in_as_kibana_setup_with_only_its_password() -> None:
    script = (ROOT / "kibana" / "setup.sh").read_text()
    user = re.search(r"^readonly USER_NAME=(\w+)$", script, re.MULTILINE)
    secret = re.search(r"^readonly PASSWORD_SECRET=(\w+)$", script, re.MULTILINE)
    assert user and secret
    assert (user.group(1), secret.group(1)) == ("kibana_setup", "kibana_setup_password")
    assert "elastic_password" not in script
    setup = (SETUP / "setup.sh").read_text()
    assert "\t[kibana_setup]=kibana_setup_password\n" in setup
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["kibana-setup"]["secrets"] == ["kibana_setup_password"]
    # The job's uid owns the file (secrets are 0600).
    assert (
        compose["services"]["kibana-setup"]["user"]
        == f"{secrets.ELASTIC_UID}:{secrets.ELASTIC_UID}"
    )
    assert secrets.GENERATED["kibana_setup_password"] == secrets.ELASTIC_UID


def test_backup_and_restore_snapshot_with_exactly_the_snapshot_privileges() -> None:
    """The elastic-worker's role (docs/operations.md, "The workers"): the repository and snapshot
    actions, cluster monitor, and on the log indices only monitor, refresh, read and delete;
    tests/stack/test_elastic_snapshot.py maps each call to the privilege it needs."""
    assert documents("users")["elasticsearch_snapshot"]["roles"] == ["snapshot_operator"]
    role = documents("roles")["snapshot_operator"]
    assert role["cluster"] == ["monitor", "cluster:admin/repository/*", "cluster:admin/snapshot/*"]
    assert role["indices"] == [
        {
            "names": ["ai-finance-*"],
            "privileges": ["monitor", "maintenance", "read", "delete_index"],
        }
    ]
    assert "run_as" not in role and "applications" not in role


def test_the_elastic_worker_logs_in_as_elasticsearch_snapshot_with_only_its_password() -> None:
    assert elastic_snapshot.USER == "elasticsearch_snapshot"
    assert engine.ELASTIC_PASSWORD_FILE == "/run/secrets/elasticsearch_snapshot_password"
    setup = (SETUP / "setup.sh").read_text()
    assert "\t[elasticsearch_snapshot]=elasticsearch_snapshot_password\n" in setup
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    worker = compose["services"][engine.ELASTIC_SERVICE]
    assert worker["secrets"] == ["elasticsearch_snapshot_password"]
    # The worker's uid owns the file (secrets are 0600).
    assert worker["user"] == f"{secrets.ELASTIC_UID}:0"
    assert secrets.GENERATED["elasticsearch_snapshot_password"] == secrets.ELASTIC_UID


def test_every_user_has_known_roles_and_a_generated_mounted_secret() -> None:
    setup = (SETUP / "setup.sh").read_text()
    declared = dict(re.findall(r"^\t\[(\w+)\]=(\w+)$", setup, re.MULTILINE))
    users = documents("users")
    assert sorted(declared) == sorted(users)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounted = compose["services"]["elasticsearch-setup"]["secrets"]
    for user, secret in declared.items():
        assert set(users[user]["roles"]) <= set(documents("roles")), user
        assert "password" not in users[user], f"{user}: a password in the repository"
        assert secret in secrets.GENERATED and secret in mounted, (user, secret)


# ---- Kibana --------------------------------------------------------------------------------------


def test_a_data_view_per_index_with_trace_ids_linking_to_jaeger() -> None:
    views = {o["id"]: o for o in saved_objects() if o["type"] == "index-pattern"}
    assert sorted(v["attributes"]["title"] for v in views.values()) == PATTERNS
    for view in views.values():
        assert set(view["attributes"]) <= DATA_VIEW_ATTRIBUTES
        assert view["attributes"]["timeFieldName"] == "@timestamp"
        # A JSON string, field name to {id, params}, as Kibana stores it.
        formats = json.loads(view["attributes"]["fieldFormatMap"])
        assert formats["trace.id"]["id"] == "url"
        params = formats["trace.id"]["params"]
        assert set(params) <= URL_FORMAT_PARAMS and params["type"] == "a"
        assert params["urlTemplate"] == "${JAEGER_UI_URL}/trace/{{value}}"
    # Only http(s) and mailto URLs become links (UrlFormat's allowedUrlSchemes): kibana-setup
    # replaces the placeholder with its JAEGER_UI_URL.
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    jaeger_ui = compose["services"]["kibana-setup"]["environment"]["JAEGER_UI_URL"]
    assert jaeger_ui.startswith("http://")


def test_a_saved_search_per_data_view() -> None:
    objects = saved_objects()
    views = {o["id"] for o in objects if o["type"] == "index-pattern"}
    searches = [o for o in objects if o["type"] == "search"]
    assert sorted(ref["id"] for s in searches for ref in s["references"]) == sorted(views)
    for search in searches:
        attributes = search["attributes"]
        assert set(attributes) <= SEARCH_ATTRIBUTES, sorted(set(attributes) - SEARCH_ATTRIBUTES)
        assert isinstance(attributes["title"], str)
        # sort: [field, direction] pairs, each at most two strings.
        assert all(len(pair) == 2 for pair in attributes["sort"])
        source = json.loads(search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        (reference,) = search["references"]
        assert source["indexRefName"] == reference["name"]
        assert reference["type"] == "index-pattern"
        assert set(search["attributes"]["columns"]) <= set(ECS)


# ---- Grafana -------------------------------------------------------------------------------------


def elasticsearch_datasources() -> dict[str, dict[str, Any]]:
    path = ROOT / "grafana" / "provisioning" / "datasources" / "datasources.yml"
    sources = yaml.safe_load(path.read_text().replace("$$", "$"))["datasources"]
    return {s["uid"]: s for s in sources if s["type"] == "elasticsearch"}


def test_each_elasticsearch_datasource_reads_one_index_as_the_reader() -> None:
    sources = elasticsearch_datasources()
    assert {uid: s["jsonData"]["index"] for uid, s in sources.items()} == {
        "elasticsearch": "ai-finance-logs-*",
        "elasticsearch-errors": "ai-finance-errors-*",
        "elasticsearch-security": "ai-finance-security-*",
    }
    for uid, source in sources.items():
        data = source["jsonData"]
        assert (data["timeField"], data["logMessageField"], data["logLevelField"]) == (
            "@timestamp",
            "message",
            "log.level",
        ), uid
        assert data["dataLinks"] == [
            {
                "field": "trace.id",
                "datasourceUid": "jaeger",
                "url": "${__value.raw}",
                "urlDisplayLabel": "Trace in Jaeger",
            }
        ], uid
        assert source["basicAuthUser"] == "grafana_reader", uid
        assert documents("users")["grafana_reader"]["roles"] == ["ai_finance_reader"]


def logs_targets() -> list[tuple[str, dict[str, Any]]]:
    path = ROOT / "grafana" / "dashboards" / "logs" / "logs-overview.json"
    model = json.loads(path.read_text())
    return [
        (panel["title"], target)
        for panel in model["panels"]
        for target in panel.get("targets", [])
        if panel["datasource"]["type"] == "elasticsearch"
    ]


@pytest.mark.parametrize("title", sorted({title for title, _ in logs_targets()}))
def test_logs_panels_aggregate_only_on_keyword_fields(title: str) -> None:
    sources = elasticsearch_datasources()
    for _, target in (t for t in logs_targets() if t[0] == title):
        assert target["datasource"]["uid"] in sources
        assert target["timeField"] == "@timestamp"
        for bucket in target.get("bucketAggs", []):
            # A terms aggregation on a text field fails in Elasticsearch (fielddata disabled).
            wanted = "date" if bucket["type"] == "date_histogram" else "keyword"
            assert ECS.get(bucket["field"]) == wanted, (bucket["field"], ECS.get(bucket["field"]))


def test_the_pipelines_write_only_to_indices_with_a_template() -> None:
    """logs/rules.yml (the Logstash pipelines' source) names the general index, one per route and
    the dead-letter index; each must have a template here, or its documents get no mapping and
    no ILM. Read from the YAML itself, so a list the loader derived wrongly fails here."""
    rules = yaml.safe_load((ROOT / logs.RULES).read_text())
    written = {rules["general_index"], rules["deadletter_index"]}
    written |= {route["index"] for route in rules["routes"]}
    templates = {path.stem for path in (ROOT / elastic.INDEX_TEMPLATE_DIR).glob("*.json")}
    assert written == {index.name for index in elastic.indices()} == templates


def test_the_retention_table_of_docs_logs_md_is_the_rules() -> None:
    """docs/logs.md "Indices and retention": one row per index of logs/rules.yml, with its policy
    and the days that policy keeps it."""
    text = (ROOT / "docs" / "logs.md").read_text()
    table = text.split("## Indices and retention", 1)[1].split("\n\n")[2]
    rows = re.findall(
        r"^\| `([a-z-]+)-\*` \|[^|]+\| (\d+) days \(`([a-z0-9-]+)`\) \|$", table, re.M
    )
    assert len(rows) == len(table.splitlines()) - 2, table
    assert {name: (int(days), policy) for name, days, policy in rows} == {
        index.name: (RETENTION_DAYS[index.name], index.policy) for index in elastic.indices()
    }
