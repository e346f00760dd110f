#!/usr/bin/env bash
# Smoke test of the stand-in images (build them first with tests/live/images/build.sh): run
# each one the way compose will and check the upstream contract it stands in for. Every
# container, network and volume made here carries the label org.ai-finance.standin-smoke=RUN_ID
# and is removed on exit (the images are kept). Needs root (the secret files are chowned to the
# uids the upstream images use). Ends with "N passed, N failed"; exit 1 if any check failed.
set -euo pipefail
shopt -s inherit_errexit

readonly DEFAULT_DOCKER_HOST=unix:///run/ai-finance-docker/docker.sock
readonly TAG_PREFIX=ai-finance-standin
readonly TAG_SUFFIX=test
readonly LABEL=org.ai-finance.standin-smoke
readonly WAIT_SECONDS="${AI_FINANCE_STANDIN_SMOKE_WAIT:-60}"
export DOCKER_HOST="${DOCKER_HOST:-${DEFAULT_DOCKER_HOST}}"

RUN_ID="standin-smoke-$$"
readonly RUN_ID
NETWORK="${RUN_ID}-net"
readonly NETWORK
SCRATCH=""
PASSED=0
FAILED=0

info() { printf '[+] %s\n' "$*" >&2; }
warn() { printf '[x] %s\n' "$*" >&2; }
die() {
    warn "$@"
    exit 1
}

image() { printf '%s/%s:%s' "${TAG_PREFIX}" "$1" "${TAG_SUFFIX}"; }
name() { printf '%s-%s' "${RUN_ID}" "$1"; }

cleanup() {
    local ids
    ids="$(docker ps -aq --filter "label=${LABEL}=${RUN_ID}" 2>/dev/null || true)"
    if [[ -n "${ids}" ]]; then
        # shellcheck disable=SC2086 # one id a word
        docker rm -f -v ${ids} >/dev/null 2>&1 || true
    fi
    docker network rm "${NETWORK}" >/dev/null 2>&1 || true
    ids="$(docker volume ls -q --filter "label=${LABEL}=${RUN_ID}" 2>/dev/null || true)"
    if [[ -n "${ids}" ]]; then
        # shellcheck disable=SC2086 # one name a word
        docker volume rm ${ids} >/dev/null 2>&1 || true
    fi
    if [[ -n "${SCRATCH}" ]]; then
        rm -rf -- "${SCRATCH}"
    fi
}

pass() {
    PASSED=$((PASSED + 1))
    info "ok: $*"
}
fail() {
    FAILED=$((FAILED + 1))
    warn "FAILED: $*"
}

# check DESCRIPTION COMMAND...: one check, counted.
check() {
    local what="$1"
    shift
    if "$@" >/dev/null; then pass "${what}"; else fail "${what}"; fi
}

random_secret() { od -An -tx1 -N12 /dev/urandom | tr -d ' \n'; }

# run NAME IMAGE [docker run options...] -- [command/args...]
run() {
    local short="$1" img="$2"
    shift 2
    local -a opts=()
    while (($# > 0)) && [[ "$1" != -- ]]; do
        opts+=("$1")
        shift
    done
    (($# > 0)) && shift
    docker run -d --name "$(name "${short}")" --label "${LABEL}=${RUN_ID}" --network "${NETWORK}" \
        --network-alias "${short}" "${opts[@]}" "$(image "${img}")" "$@" >/dev/null
}

# wait_for WHAT COMMAND...: retry for WAIT_SECONDS.
wait_for() {
    local what="$1" i
    shift
    for ((i = 0; i < WAIT_SECONDS; i++)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 1
    done
    warn "${what}: not ready after ${WAIT_SECONDS}s"
    return 1
}

volume() { docker volume create --label "${LABEL}=${RUN_ID}" "$(name "$1")" >/dev/null; }
in_container() {
    local short="$1"
    shift
    docker exec "$(name "${short}")" "$@"
}
http_get() { in_container "$1" wget -qO- "$2"; }
metric_is() { # SHORT URL METRIC VALUE
    http_get "$1" "$2" | grep -qxF "$3 $4"
}
uid_is() { # SHORT UID: the real uid of the container's process 1
    local line
    line="$(in_container "$1" grep '^Uid:' /proc/1/status)" || return 1
    read -r _ line _ <<<"${line}"
    [[ "${line}" == "$2" ]]
}
logs_tail() { docker logs --tail 20 "$(name "$1")" >&2 2>&1 || true; }

no_systemd_collector() {
    local metrics
    metrics="$(http_get node-exporter http://127.0.0.1:9100/metrics)" || return 1
    [[ "${metrics}" == *node_exporter_build_info* && "${metrics}" != *'collector="systemd"'* ]]
}

# psql_remote PASSWORD SQL: psql from a container of its own, over TCP, as postgres.
psql_remote() {
    docker run --rm --label "${LABEL}=${RUN_ID}" --network "${NETWORK}" -e PGPASSWORD="$1" \
        --entrypoint psql "$(image postgres)" -h postgres -U postgres -d finance -Atc "$2"
}
pg_tcp_login() {
    [[ "$(psql_remote "$1" 'SHOW shared_preload_libraries')" == pg_stat_statements ]]
}
pg_wrong_password_refused() {
    ! psql_remote wrong-password 'SELECT 1' >/dev/null 2>&1
}

redis_local_ping() { [[ "$(in_container redis redis-cli ping)" == PONG ]]; }
redis_remote_ping() {
    [[ "$(docker run --rm --label "${LABEL}=${RUN_ID}" --network "${NETWORK}" \
        --entrypoint redis-cli "$(image redis)" -h redis ping)" == PONG ]]
}
redis_default_user_limited() { [[ "$(in_container redis redis-cli get k 2>&1)" == *NOPERM* ]]; }

test_prometheus() {
    cat >"${SCRATCH}/prometheus.yml" <<'EOF'
global:
  scrape_interval: 5s
scrape_configs:
  - job_name: self
    static_configs:
      - targets: ["127.0.0.1:9090"]
EOF
    chmod 0644 "${SCRATCH}/prometheus.yml"
    volume prometheus-data
    run prometheus prometheus -v "$(name prometheus-data):/prometheus" \
        -v "${SCRATCH}/prometheus.yml:/etc/prometheus/prometheus.yml:ro" --
    if wait_for prometheus http_get prometheus http://127.0.0.1:9090/-/healthy; then
        pass "prometheus answers /-/healthy"
    else
        fail "prometheus answers /-/healthy"
        logs_tail prometheus
    fi
    check "prometheus runs as uid 65534" uid_is prometheus 65534
    check "prometheus: promtool checks the config" \
        in_container prometheus promtool check config /etc/prometheus/prometheus.yml
    check "prometheus writes its TSDB into the named volume" in_container prometheus test -d /prometheus/wal
}

test_alertmanager() {
    volume alertmanager-data
    run alertmanager alertmanager -v "$(name alertmanager-data):/alertmanager" --
    if wait_for alertmanager http_get alertmanager http://127.0.0.1:9093/-/healthy; then
        pass "alertmanager answers /-/healthy"
    else
        fail "alertmanager answers /-/healthy"
        logs_tail alertmanager
    fi
    check "alertmanager runs as uid 65534" uid_is alertmanager 65534
    check "alertmanager: amtool checks the default config" \
        in_container alertmanager amtool check-config /etc/alertmanager/alertmanager.yml
    check "alertmanager writes into the named volume" in_container alertmanager test -w /alertmanager
}

test_node_exporter() {
    run node-exporter node-exporter --
    if wait_for node-exporter http_get node-exporter http://127.0.0.1:9100/metrics; then
        pass "node-exporter serves /metrics"
    else
        fail "node-exporter serves /metrics"
        logs_tail node-exporter
    fi
    check "node-exporter runs as uid 65534" uid_is node-exporter 65534
    check "node-exporter: no systemd collector (upstream default)" no_systemd_collector
}

test_postgres() {
    local password="$1" monitor_password="$2"
    mkdir -p "${SCRATCH}/secrets" "${SCRATCH}/initdb"
    chmod 0755 "${SCRATCH}/secrets" "${SCRATCH}/initdb"
    printf '%s\n' "${password}" >"${SCRATCH}/secrets/pg_password"
    chown 10001:10001 "${SCRATCH}/secrets/pg_password"
    chmod 0600 "${SCRATCH}/secrets/pg_password"
    printf "CREATE ROLE monitor LOGIN PASSWORD '%s' IN ROLE pg_monitor;\n" "${monitor_password}" \
        >"${SCRATCH}/initdb/10-monitor.sql"
    chmod 0644 "${SCRATCH}/initdb/10-monitor.sql"
    volume postgres-data
    run postgres postgres -e POSTGRES_PASSWORD_FILE=/run/secrets/pg_password \
        -e POSTGRES_USER=postgres -e POSTGRES_DB=finance \
        -v "${SCRATCH}/secrets/pg_password:/run/secrets/pg_password:ro" \
        -v "${SCRATCH}/initdb:/docker-entrypoint-initdb.d:ro" \
        -v "$(name postgres-data):/var/lib/postgresql/data" \
        -- postgres -c shared_preload_libraries=pg_stat_statements
    if wait_for postgres in_container postgres pg_isready -U postgres -h 127.0.0.1; then
        pass "postgres: pg_isready -U postgres -h 127.0.0.1"
    else
        fail "postgres: pg_isready -U postgres -h 127.0.0.1"
        logs_tail postgres
    fi
    check "postgres runs as uid 999" uid_is postgres 999
    check "postgres: password login over TCP from another container" pg_tcp_login "${password}"
    check "postgres: a wrong password is refused over TCP" pg_wrong_password_refused
}

test_postgres_exporter() {
    local monitor_password="$1"
    printf '%s\n' "${monitor_password}" >"${SCRATCH}/secrets/pg_monitor_password"
    chown 65534:65534 "${SCRATCH}/secrets/pg_monitor_password"
    chmod 0400 "${SCRATCH}/secrets/pg_monitor_password"
    run postgres-exporter postgres-exporter \
        -e DATA_SOURCE_URI='postgres:5432/finance?sslmode=disable' -e DATA_SOURCE_USER=monitor \
        -e DATA_SOURCE_PASS_FILE=/run/secrets/pg_monitor_password \
        -v "${SCRATCH}/secrets/pg_monitor_password:/run/secrets/pg_monitor_password:ro" --
    if wait_for postgres-exporter metric_is postgres-exporter http://127.0.0.1:9187/metrics pg_up 1; then
        pass "postgres-exporter: pg_up 1 (DATA_SOURCE_URI/USER/PASS_FILE)"
    else
        fail "postgres-exporter: pg_up 1 (DATA_SOURCE_URI/USER/PASS_FILE)"
        logs_tail postgres-exporter
    fi
    check "postgres-exporter runs as uid 65534" uid_is postgres-exporter 65534
}

test_redis() {
    local exporter_password="$1"
    {
        printf 'user default on nopass -@all +ping +hello +auth\n'
        printf 'user exporter on >%s ~* &* -@all +@connection +info +config|get +client' "${exporter_password}"
        printf ' +slowlog +latency +memory +cluster|info +scan +type +strlen +llen +scard +zcard'
        printf ' +hlen +xlen +xinfo +pfcount +get\n'
    } >"${SCRATCH}/secrets/redis_acl"
    chown 999:999 "${SCRATCH}/secrets/redis_acl"
    chmod 0600 "${SCRATCH}/secrets/redis_acl"
    volume redis-data
    run redis redis -v "$(name redis-data):/data" \
        -v "${SCRATCH}/secrets/redis_acl:/run/secrets/redis_acl:ro" \
        -- redis-server --port 6379 --bind 0.0.0.0 --aclfile /run/secrets/redis_acl
    if wait_for redis redis_local_ping; then
        pass "redis: redis-cli ping (default user nopass, +ping only)"
    else
        fail "redis: redis-cli ping (default user nopass, +ping only)"
        logs_tail redis
    fi
    check "redis runs as uid 999" uid_is redis 999
    check "redis: ping from another container (protected mode off, as upstream)" redis_remote_ping
    check "redis: the default user may not run other commands" redis_default_user_limited
}

test_redis_exporter() {
    local exporter_password="$1"
    # REDIS_PASSWORD_FILE is a JSON object of address to password, upstream's format too.
    printf '{"redis://redis:6379": "%s"}\n' "${exporter_password}" >"${SCRATCH}/secrets/redis_exporter.json"
    chown 59000:59000 "${SCRATCH}/secrets/redis_exporter.json"
    chmod 0400 "${SCRATCH}/secrets/redis_exporter.json"
    run redis-exporter redis-exporter -e REDIS_ADDR=redis://redis:6379 -e REDIS_USER=exporter \
        -e REDIS_PASSWORD_FILE=/run/secrets/redis_exporter.json \
        -v "${SCRATCH}/secrets/redis_exporter.json:/run/secrets/redis_exporter.json:ro" --
    if wait_for redis-exporter metric_is redis-exporter http://127.0.0.1:9121/metrics redis_up 1; then
        pass "redis-exporter: redis_up 1 (REDIS_ADDR/USER/PASSWORD_FILE)"
    else
        fail "redis-exporter: redis_up 1 (REDIS_ADDR/USER/PASSWORD_FILE)"
        logs_tail redis-exporter
    fi
    check "redis-exporter runs as uid 59000" uid_is redis-exporter 59000
}

main() {
    local img pg_password monitor_password exporter_password
    [[ "$(id -u)" == 0 ]] || die "run as root (secret files are chowned to the images' uids)"
    timeout 20 docker info >/dev/null 2>&1 || die "no Docker engine answers on ${DOCKER_HOST}"
    for img in prometheus alertmanager node-exporter postgres postgres-exporter redis redis-exporter; do
        docker image inspect "$(image "${img}")" >/dev/null 2>&1 ||
            die "$(image "${img}") is missing: run tests/live/images/build.sh"
    done
    trap cleanup EXIT
    SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/ai-finance-standin-smoke.XXXXXX")"
    docker network create --label "${LABEL}=${RUN_ID}" "${NETWORK}" >/dev/null
    pg_password="$(random_secret)"
    monitor_password="$(random_secret)"
    exporter_password="$(random_secret)"

    info "run ${RUN_ID}: prometheus, alertmanager, node-exporter"
    test_prometheus
    test_alertmanager
    test_node_exporter
    info "run ${RUN_ID}: postgres and postgres-exporter"
    test_postgres "${pg_password}" "${monitor_password}"
    test_postgres_exporter "${monitor_password}"
    info "run ${RUN_ID}: redis and redis-exporter"
    test_redis "${exporter_password}"
    test_redis_exporter "${exporter_password}"

    printf 'smoke: %d passed, %d failed\n' "${PASSED}" "${FAILED}"
    ((FAILED == 0))
}

main "$@"
