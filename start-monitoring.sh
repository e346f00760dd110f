#!/usr/bin/env bash
# start-monitoring.sh: run the AI Finance monitoring stack with Docker Compose. See `help`.
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
readonly ROOT
readonly DRY_RUN="${DRY_RUN:-0}"
readonly WAIT_TIMEOUT="${WAIT_TIMEOUT:-600}"
readonly DRILL_TIMEOUT="${DRILL_TIMEOUT:-30}"
readonly SECRETS_DIR="${ROOT}/secrets"
# Elasticsearch refuses to start below this (its bootstrap check).
readonly MIN_MAP_COUNT=262144

# .env is read by Compose itself; a few of its settings also steer this script.
env_setting() {
	local name=$1 default=$2 line value
	if [[ -n ${!name-} ]]; then
		printf '%s\n' "${!name}"
		return 0
	fi
	value="${default}"
	if [[ -f ${ROOT}/.env ]]; then
		while IFS= read -r line; do
			[[ ${line} == "${name}="* ]] && value="${line#*=}"
		done <"${ROOT}/.env"
	fi
	value="${value%\"}"
	printf '%s\n' "${value#\"}"
}

default_profiles() {
	# The embedded demo datastores run only when no external data source is configured.
	if [[ -n "$(env_setting DATABASE_URL '')" || -n "$(env_setting REDIS_URL '')" ]]; then
		printf 'full\n'
	else
		printf 'demo,full\n'
	fi
}

profile_enabled() {
	local wanted
	for wanted in "$@"; do
		[[ ",${PROFILES}," == *",${wanted},"* || ",${PROFILES}," == *",*,"* ]] && return 0
	done
	return 1
}

# Whether NAME is set in the environment or in .env, even to an empty value (env_setting's
# default comes back only when neither sets it).
user_set() {
	local unset=$'\x01unset'
	[[ -v $1 || "$(env_setting "$1" "${unset}")" != "${unset}" ]]
}

PROFILES="$(env_setting COMPOSE_PROFILES "$(default_profiles)")"
BIND_ADDRESS="$(env_setting BIND_ADDRESS 127.0.0.1)"
readonly PROFILES BIND_ADDRESS

# Traces go to Jaeger whenever it runs, unless OTLP_ENDPOINT is set in the environment or .env
# (where Compose reads it; empty keeps them in the services).
if ! user_set OTLP_ENDPOINT && profile_enabled full traces; then
	export OTLP_ENDPOINT=http://jaeger:4318
fi

if [[ -t 2 ]]; then
	readonly GREEN=$'\e[32m' RED=$'\e[31m' YELLOW=$'\e[33m' RESET=$'\e[0m'
else
	readonly GREEN='' RED='' YELLOW='' RESET=''
fi

info() { printf '%s[+]%s %s\n' "${GREEN}" "${RESET}" "$*" >&2; }
warn() { printf '%s[!]%s %s\n' "${YELLOW}" "${RESET}" "$*" >&2; }
fail() { printf '%s[x]%s %s\n' "${RED}" "${RESET}" "$*" >&2; }

die() {
	local code=$1
	shift
	fail "$*"
	exit "${code}"
}

# Every docker compose call goes through here, so DRY_RUN=1 shows exactly what would run.
compose() {
	local -a argv=(docker compose --project-directory "${ROOT}" --file "${ROOT}/docker-compose.yml" "$@")
	if [[ ${DRY_RUN} == 1 ]]; then
		printf 'arg=%s\n' "${argv[@]}"
		return 0
	fi
	COMPOSE_PROFILES="${PROFILES}" "${argv[@]}"
}

# Compose with every profile enabled: stop, status and logs must see all services.
compose_all() {
	local -a argv=(docker compose --project-directory "${ROOT}" --file "${ROOT}/docker-compose.yml" --profile '*' "$@")
	if [[ ${DRY_RUN} == 1 ]]; then
		printf 'arg=%s\n' "${argv[@]}"
		return 0
	fi
	"${argv[@]}"
}

# The small Python helpers in monitoring/ (standard library only).
helper() {
	local module=$1
	shift
	PYTHONPATH="${ROOT}" python3 -m "monitoring.${module}" "$@"
}

usage() {
	local traces_to="${OTLP_ENDPOINT-$(env_setting OTLP_ENDPOINT '')}"
	cat <<EOF
Usage: ./start-monitoring.sh COMMAND [OPTIONS]

Run the AI Finance monitoring stack (Prometheus, Alertmanager, Grafana, Elasticsearch,
Logstash, Kibana, Jaeger, Uptime Kuma and the business-metric exporters) with Docker Compose.

Commands:
  start             check the machine, generate secrets, build and pull images, start, wait for health
  stop              stop and remove the containers (volumes and secrets are kept)
  restart           stop, then start
  status [--json]   one line per container: state, health, published ports
  health [--json]   probe each component's own health endpoint; exit 1 if any is unhealthy
  logs [SERVICE]    the last log lines of every service, or of one (-f to follow)
  validate          check every config offline: compose, Prometheus, Alertmanager, Grafana, Logstash
  drill [--json]    fire a synthetic alert through Alertmanager; confirm delivery and resolution
  help [COMMAND]    this text, or a command's own (also: COMMAND --help)

Environment (also read from .env; every variable is described in .env.example):
  COMPOSE_PROFILES  what runs (now: ${PROFILES}); "demo" adds the embedded datastores
                    and the demo platform under load
  BIND_ADDRESS      host address for published ports (now: ${BIND_ADDRESS})
  OTLP_ENDPOINT     where the demo platform and exporters send traces (now: ${traces_to:-none});
                    unset: Jaeger (http://jaeger:4318) when profile traces or full runs
  WAIT_TIMEOUT      seconds to wait for health on start (now: ${WAIT_TIMEOUT})
  DRILL_TIMEOUT     seconds each drill step may wait (now: ${DRILL_TIMEOUT})
  DRY_RUN=1         print the docker compose commands instead of running them

Examples:
  ./start-monitoring.sh start
  COMPOSE_PROFILES=demo ./start-monitoring.sh start     # metrics only, with the demo datastores
  ./start-monitoring.sh health --json | jq .
  ./start-monitoring.sh logs revenue-exporter -f
  ./start-monitoring.sh drill

Exit status: 0 success, 1 failure, 2 usage error.
EOF
}

usage_start() {
	cat <<EOF
Usage: ./start-monitoring.sh start

Preflight (nothing is changed if one fails): Docker engine and Compose v2 present, enough free
memory and disk, vm.max_map_count >= ${MIN_MAP_COUNT} when Elasticsearch runs, published ports
free. Then: secrets generated into ./secrets on first start (mode 0600), images built and
pulled, containers started, and a wait (at most WAIT_TIMEOUT=${WAIT_TIMEOUT}s) until every
service is healthy, with progress. Prints the URLs and where the credentials are.

Environment: COMPOSE_PROFILES, BIND_ADDRESS, WAIT_TIMEOUT, MIN_MEMORY_MB, MIN_DISK_MB.
Exit status: 0 all healthy, 1 failure, 2 usage error.
EOF
}

usage_stop() { printf 'Usage: ./start-monitoring.sh stop\n\nStop and remove all containers of the stack, whatever their profile. Volumes and\n./secrets are kept; remove volumes with: docker compose down --volumes\n'; }
usage_restart() { printf 'Usage: ./start-monitoring.sh restart\n\nstop, then start (see start --help).\n'; }
usage_status() { printf 'Usage: ./start-monitoring.sh status [--json]\n\nOne line per container (service, state, health, ports); --json prints a JSON array.\n'; }
usage_health() {
	cat <<'EOF'
Usage: ./start-monitoring.sh health [--json]

One line per component of the enabled profiles, from its own health endpoint (HTTP on the
published port) or, for internal services, from its container healthcheck; the exporters also
report whether their datastores answer (finance_exporter_up). --json prints a JSON array of
{"component", "healthy", "detail"}. Exit status: 0 all healthy, 1 any unhealthy.
EOF
}
usage_logs() { printf 'Usage: ./start-monitoring.sh logs [SERVICE] [-f]\n\nThe last 200 lines of every service, or of SERVICE; -f follows.\n'; }
usage_validate() {
	cat <<'EOF'
Usage: ./start-monitoring.sh validate

Check every config offline: docker compose config, promtool check config (rules included),
amtool check-config, Grafana provisioning and dashboards, Logstash pipelines, Elasticsearch and
Kibana settings. Each problem names the file and, where the tool gives it, the line.
Exit status: 0 all valid, 1 a config is invalid.
EOF
}

usage_drill() {
	cat <<EOF
Usage: ./start-monitoring.sh drill [--json]

Prove the alerting path end to end on the running stack: post a synthetic alert (MonitoringDrill,
severity warning, team sre, category meta, service alertmanager, a unique drill_id) to
Alertmanager's API on its published port, check it is routed to the drill receiver, wait until
the local alert-sink has received it, then resolve it and wait for the resolution too. Each step
prints a [+] line on stderr; --json also prints a summary object on stdout. Every wait polls once
a second for at most DRILL_TIMEOUT=${DRILL_TIMEOUT}s. Drills never reach Slack or PagerDuty: their
receiver is always the alert-sink (docs/alerting.md).

Environment: ALERTMANAGER_PORT, ALERT_SINK_PORT, BIND_ADDRESS, DRILL_TIMEOUT.
Exit status: 0 delivered and resolved, 1 a step failed, 2 usage error.
EOF
}

wants_help() {
	local arg
	for arg in "$@"; do
		[[ ${arg} == -h || ${arg} == --help ]] && return 0
	done
	return 1
}

# ---- preflight -----------------------------------------------------------------------------

require_docker() {
	command -v docker >/dev/null 2>&1 ||
		die 1 "docker not found: install Docker Engine (https://docs.docker.com/engine/install/) and re-run"
	[[ ${DRY_RUN} == 1 ]] && return 0
	if ! docker info >/dev/null 2>&1; then
		die 1 "cannot reach the Docker engine at ${DOCKER_HOST:-the default socket}: start it (sudo systemctl start docker), or set DOCKER_HOST, or add your user to the docker group"
	fi
	docker compose version >/dev/null 2>&1 ||
		die 1 "Docker Compose v2 not found: install the docker-compose-plugin package and re-run"
}

check_memory() {
	local needed=${MIN_MEMORY_MB:-1536} available_kb
	profile_enabled full logs && needed=${MIN_MEMORY_MB:-6144}
	available_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo 2>/dev/null || printf '0')
	if ((available_kb / 1024 < needed)); then
		die 1 "only $((available_kb / 1024)) MiB of memory available, ${needed} MiB needed for profiles ${PROFILES}: free some, use fewer profiles (COMPOSE_PROFILES=demo), or set MIN_MEMORY_MB"
	fi
}

check_disk() {
	local needed=${MIN_DISK_MB:-4096} dir available_kb
	dir=$(docker info --format '{{.DockerRootDir}}' 2>/dev/null || true)
	[[ -d ${dir} ]] || dir="${ROOT}"
	available_kb=$(df -Pk "${dir}" | awk 'NR == 2 {print $4}')
	if ((available_kb / 1024 < needed)); then
		die 1 "only $((available_kb / 1024)) MiB free on ${dir}, ${needed} MiB needed: free some disk or set MIN_DISK_MB"
	fi
}

check_map_count() {
	profile_enabled full logs || return 0
	local current
	current=$(cat /proc/sys/vm/max_map_count 2>/dev/null || printf '0')
	if ((current < MIN_MAP_COUNT)); then
		die 1 "vm.max_map_count is ${current}; Elasticsearch needs ${MIN_MAP_COUNT}: run 'sudo sysctl -w vm.max_map_count=${MIN_MAP_COUNT}' (and add it to /etc/sysctl.conf), or leave out the logs profile"
	fi
}

# "service port" lines for every published port of the enabled services.
published_ports() {
	compose config --format json | helper compose_json ports
}

check_ports() {
	local running service port
	running=" $(compose ps --status running --services 2>/dev/null | tr '\n' ' ') "
	while read -r service port; do
		[[ ${running} == *" ${service} "* ]] && continue
		# bash's /dev/tcp connects: success means something already listens there.
		if (exec 3<>"/dev/tcp/${BIND_ADDRESS/0.0.0.0/127.0.0.1}/${port}") 2>/dev/null; then
			local variable
			variable="$(printf '%s' "${service}" | tr '[:lower:]-' '[:upper:]_')_PORT"
			die 1 "port ${port} on ${BIND_ADDRESS} (for ${service}) is already in use: stop what listens there (ss -ltnp 'sport = :${port}') or set ${variable} in .env"
		fi
	done < <(published_ports)
}

# ---- start ---------------------------------------------------------------------------------

generate_secrets() {
	info "secrets: ${SECRETS_DIR} (generated on first start, mode 0600)"
	compose --profile setup build --quiet secrets-init
	compose --profile setup run --rm --no-deps secrets-init >/dev/null
}

# Prometheus scrapes the services of optional profiles through file_sd: write their targets
# from the services these profiles run, so a service left out is not reported down.
write_scrape_targets() {
	local summary
	if [[ ${DRY_RUN} == 1 ]]; then
		compose config --format json
		return 0
	fi
	summary="$(compose config --format json | helper compose_json targets "${ROOT}/prometheus/targets")" ||
		die 1 "could not write Prometheus' scrape targets into ${ROOT}/prometheus/targets: check the folder is writable"
	info "scrape targets: $(printf '%s' "${summary}" | cut -d' ' -f1 | tr '\n' ' ')(prometheus/targets/)"
}

# Images without a build section must be pulled; a failure names the image and its variable.
pull_images() {
	local service image variable
	while read -r service image; do
		docker image inspect "${image}" >/dev/null 2>&1 && continue
		info "pulling ${image} (${service})"
		if ! docker pull --quiet "${image}" >/dev/null 2>&1; then
			variable="$(image_variable "${service}")"
			die 1 "cannot pull ${image} for ${service}: check the registry is reachable (docker pull ${image}), or mirror the image and set ${variable} in .env (see .env.example)"
		fi
	done < <(compose config --format json | helper compose_json images)
}

image_variable() {
	local service=$1
	grep -o "\${[A-Z_]*_IMAGE:-" "${ROOT}/docker-compose.yml" | sed 's/^\${//; s/:-$//' | sort -u |
		while read -r variable; do
			if awk -v s="  ${service}:" -v v="${variable}" '$0 == s {found = 1; next} found && /^  [a-z]/ {exit} found && index($0, v) {hit = 1} END {exit !hit}' "${ROOT}/docker-compose.yml"; then
				printf '%s\n' "${variable}"
				return 0
			fi
		done
}

# poll every 2s, at most WAIT_TIMEOUT seconds; a progress line every 10s
wait_for_health() {
	local started=${SECONDS} last_report=-10 pending failed line
	while true; do
		pending="" failed=""
		while IFS= read -r line; do
			local service state health exit_code
			read -r service state health exit_code <<<"${line}"
			case "${state}/${health}" in
			running/healthy | running/-) ;;
			exited/*) [[ ${exit_code} == 0 ]] || failed+=" ${service}" ;;
			*) pending+=" ${service}(${health/-/${state}})" ;;
			esac
		done < <(container_states)
		if [[ -n ${failed} ]]; then
			show_failure "${failed}" "exited with an error"
			return 1
		fi
		[[ -z ${pending} ]] && return 0
		if ((SECONDS - started >= WAIT_TIMEOUT)); then
			show_failure "${pending}" "not healthy after ${WAIT_TIMEOUT}s"
			return 1
		fi
		if ((SECONDS - last_report >= 10)); then
			info "waiting for health ($((SECONDS - started))s/${WAIT_TIMEOUT}s):${pending}"
			last_report=${SECONDS}
		fi
		sleep 2
	done
}

# "service state health exit_code" per container of the project.
container_states() {
	compose_all ps --all --format json | helper compose_json states
}

show_failure() {
	local services=$1 what=$2 entry service
	fail "${what}:${services}"
	for entry in ${services}; do
		service=${entry%%(*}
		fail "last log lines of ${service}:"
		compose logs --no-color --tail 20 "${service}" >&2 || true
	done
	fail "next: ./start-monitoring.sh logs SERVICE, fix, then ./start-monitoring.sh start again"
}

print_urls() {
	local host=${BIND_ADDRESS/0.0.0.0/localhost}
	host=${host/127.0.0.1/localhost}
	printf '\nAI Finance monitoring is up (profiles: %s)\n\n' "${PROFILES}"
	printf '  %-14s %s\n' "Prometheus" "http://${host}:$(env_setting PROMETHEUS_PORT 9090)"
	printf '  %-14s %s\n' "Alertmanager" "http://${host}:$(env_setting ALERTMANAGER_PORT 9093)"
	profile_enabled full dashboards &&
		printf '  %-14s %s  (user admin, password in secrets/grafana_admin_password)\n' "Grafana" "http://${host}:$(env_setting GRAFANA_PORT 3001)"
	if profile_enabled full logs; then
		printf '  %-14s %s  (user elastic, password in secrets/elastic_password)\n' "Kibana" "http://${host}:$(env_setting KIBANA_PORT 5601)"
		printf '  %-14s %s\n' "Elasticsearch" "http://${host}:$(env_setting ELASTICSEARCH_PORT 9200)"
	fi
	profile_enabled full traces && printf '  %-14s %s\n' "Jaeger" "http://${host}:$(env_setting JAEGER_UI_PORT 16686)"
	profile_enabled full uptime && printf '  %-14s %s\n' "Uptime Kuma" "http://${host}:$(env_setting UPTIME_KUMA_PORT 3002)"
	profile_enabled demo &&
		printf '  %-14s %s\n' "Demo platform" "internal, Prometheus job platform; load $(env_setting DEMO_LOAD_RATE 4) requests/s"
	printf '  %-14s %s\n' "Exporters" "http://${host}:$(env_setting REVENUE_EXPORTER_PORT 9101)/metrics  :$(env_setting SIGNALS_EXPORTER_PORT 9102)  :$(env_setting PORTFOLIO_EXPORTER_PORT 9103)"
	printf '\nCredentials: %s (mode 0600; sudo may be needed to read them).\n' "${SECRETS_DIR}"
	printf 'Health: ./start-monitoring.sh health    Logs: ./start-monitoring.sh logs [SERVICE]\n'
}

cmd_start() {
	wants_help "$@" && {
		usage_start
		return 0
	}
	(($# == 0)) || {
		usage_start >&2
		die 2 "start takes no arguments"
	}
	info "preflight (profiles: ${PROFILES})"
	require_docker
	check_memory
	check_disk
	check_map_count
	check_ports
	pull_images
	generate_secrets
	info "building the stack's own images"
	compose build --quiet
	write_scrape_targets
	info "starting containers"
	compose up --detach --no-build --remove-orphans
	wait_for_health || exit 1
	print_urls
}

cmd_stop() {
	wants_help "$@" && {
		usage_stop
		return 0
	}
	require_docker
	info "stopping the stack (volumes and secrets are kept)"
	compose_all down --remove-orphans
}

cmd_restart() {
	wants_help "$@" && {
		usage_restart
		return 0
	}
	cmd_stop "$@"
	cmd_start "$@"
}

cmd_status() {
	wants_help "$@" && {
		usage_status
		return 0
	}
	local json=0
	[[ ${1-} == --json ]] && json=1
	require_docker
	local -a flags=()
	((json == 1)) && flags+=(--json)
	compose_all ps --all --format json | helper compose_json status "${flags[@]}"
}

cmd_health() {
	wants_help "$@" && {
		usage_health
		return 0
	}
	local json=0
	[[ ${1-} == --json ]] && json=1
	require_docker
	local states expected
	states="$(container_states)"
	expected="$(compose config --services | tr '\n' ' ')"
	local -a flags=()
	((json == 1)) && flags+=(--json)
	STATES="${states}" EXPECTED="${expected}" helper health --profiles "${PROFILES}" --bind-address "${BIND_ADDRESS}" \
		--secrets "${SECRETS_DIR}" "${flags[@]}"
}

cmd_logs() {
	wants_help "$@" && {
		usage_logs
		return 0
	}
	require_docker
	compose_all logs --tail 200 "$@"
}

cmd_validate() {
	wants_help "$@" && {
		usage_validate
		return 0
	}
	helper validate --root "${ROOT}"
}

# ---- drill ---------------------------------------------------------------------------------

readonly DRILL_RECEIVER=drill

# One HTTP request (a JSON body makes it a POST); prints the response body. curl where it is
# installed, else Python's urllib, which exits with curl's codes: 7 nothing listening, 28 timed
# out, 22 an HTTP error status.
http_request() {
	local url=$1 body=${2-}
	if command -v curl >/dev/null 2>&1; then
		local -a argv=(curl --silent --show-error --fail --max-time 5)
		[[ -n ${body} ]] && argv+=(--header 'Content-Type: application/json' --data-binary "${body}")
		"${argv[@]}" "${url}"
		return
	fi
	python3 -c '
import socket, sys, urllib.error, urllib.request
url, body = sys.argv[1], sys.argv[2].encode()
headers = {"Content-Type": "application/json"} if body else {}
try:
    with urllib.request.urlopen(urllib.request.Request(url, body or None, headers), timeout=5) as r:
        sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as err:
    print(f"HTTP {err.code} from {url}", file=sys.stderr)
    sys.exit(22)
except (urllib.error.URLError, OSError) as err:
    reason = getattr(err, "reason", err)
    sys.exit(28 if isinstance(reason, (TimeoutError, socket.timeout)) else 7)
' "${url}" "${body}"
}

http_failure() {
	case "$1" in
	7) printf 'is not listening' ;;
	22) printf 'answered with an HTTP error' ;;
	28) printf 'timed out' ;;
	*) printf 'failed (exit %s)' "$1" ;;
	esac
}

# The drill alert as Alertmanager's API takes it: firing for 10 minutes, or resolved now.
drill_alert() {
	local drill_id=$1 state=$2 started=$3
	python3 -c '
import json, sys
from datetime import datetime, timedelta, timezone
drill_id, state, started = sys.argv[1], sys.argv[2], int(sys.argv[3])
now = datetime.now(timezone.utc)
end = now + timedelta(minutes=10) if state == "firing" else now
print(json.dumps([{
    "labels": {
        "alertname": "MonitoringDrill", "severity": "warning", "team": "sre",
        "category": "meta", "service": "alertmanager", "drill_id": drill_id,
    },
    "annotations": {
        "summary": "monitoring drill " + drill_id,
        "description": "A synthetic alert from ./start-monitoring.sh drill; nothing is wrong.",
    },
    "startsAt": datetime.fromtimestamp(started, timezone.utc).isoformat(),
    "endsAt": end.isoformat(),
    "generatorURL": "http://localhost/start-monitoring.sh/drill",
}]))
' "${drill_id}" "${state}" "${started}"
}

# Reads JSON on stdin. "receivers": the receivers Alertmanager routed the listed alerts to;
# "firing" or "resolved": the alert-sink path that received the drill in that state, if any.
drill_parse() {
	python3 -c '
import json, sys
mode, drill_id = sys.argv[1], sys.argv[2]
data = json.load(sys.stdin)
if mode == "receivers":
    print(",".join(sorted({r["name"] for a in data for r in a.get("receivers", [])})))
    sys.exit(0)
for entry in data:
    body = entry.get("body")
    alerts = body.get("alerts", []) if isinstance(body, dict) else []
    if any(a.get("status") == mode and a.get("labels", {}).get("drill_id") == drill_id
           for a in alerts):
        print(entry["path"])
        break
' "$@"
}

drill_fail() {
	local json=$1 step=$2
	shift 2
	fail "$*"
	if ((json == 1)); then
		printf '{"ok": false, "step": "%s"}\n' "${step}"
	fi
	exit 1
}

# Where a drill waited in vain: the two services' last log lines, and what to try next.
drill_diagnose() {
	local logs
	if command -v docker >/dev/null 2>&1 &&
		logs="$(compose logs --no-color --tail 20 alertmanager alert-sink 2>/dev/null)"; then
		fail "last log lines of alertmanager and alert-sink:"
		printf '%s\n' "${logs}" >&2
	fi
	fail "next: ./start-monitoring.sh health, then ./start-monitoring.sh logs alertmanager"
}

# poll every 1s, at most DRILL_TIMEOUT seconds, until the alert-sink holds the drill in `state`;
# prints "<path> <seconds waited>".
wait_for_drill() {
	local sink=$1 drill_id=$2 state=$3 started=${SECONDS} listed path="" rc=0
	while ((SECONDS - started < DRILL_TIMEOUT)); do
		rc=0
		listed="$(http_request "${sink}/notifications?receiver=${DRILL_RECEIVER}" 2>/dev/null)" || rc=$?
		if ((rc == 0)); then
			path="$(drill_parse "${state}" "${drill_id}" <<<"${listed}")" || path=""
			if [[ -n ${path} ]]; then
				printf '%s %s\n' "${path}" "$((SECONDS - started))"
				return 0
			fi
		fi
		sleep 1
	done
	((rc == 0)) || fail "alert-sink at ${sink} $(http_failure "${rc}")"
	return 1
}

cmd_drill() {
	wants_help "$@" && {
		usage_drill
		return 0
	}
	local json=0 arg
	for arg in "$@"; do
		case "${arg}" in
		--json) json=1 ;;
		*)
			usage_drill >&2
			die 2 "unknown drill option: ${arg}"
			;;
		esac
	done
	local host=${BIND_ADDRESS/0.0.0.0/127.0.0.1}
	local am sink started drill_id rc=0 receivers="" delivered resolved
	am="http://${host}:$(env_setting ALERTMANAGER_PORT 9093)"
	sink="http://${host}:$(env_setting ALERT_SINK_PORT 9095)"
	started="$(date +%s)"
	drill_id="drill-$(date -u +%Y%m%dT%H%M%SZ)-${RANDOM}"

	http_request "${am}/api/v2/alerts" "$(drill_alert "${drill_id}" firing "${started}")" >/dev/null || rc=$?
	((rc == 0)) || drill_fail "${json}" post \
		"Alertmanager at ${am} $(http_failure "${rc}"): is the stack running? ./start-monitoring.sh status"
	info "posted MonitoringDrill (drill_id=${drill_id}) to Alertmanager at ${am}"

	receivers="$(http_request "${am}/api/v2/alerts?filter=drill_id%3D%22${drill_id}%22" |
		drill_parse receivers "${drill_id}")" || true
	[[ ${receivers} == "${DRILL_RECEIVER}" ]] || drill_fail "${json}" route \
		"routed to '${receivers}', expected ${DRILL_RECEIVER}: check the MonitoringDrill route in alertmanager/alertmanager.yml"
	info "routed to ${receivers}"

	if ! delivered="$(wait_for_drill "${sink}" "${drill_id}" firing)"; then
		drill_diagnose
		drill_fail "${json}" deliver "not delivered to alert-sink at ${sink} within ${DRILL_TIMEOUT}s"
	fi
	info "delivered to alert-sink (${delivered% *}) after ${delivered##* }s"

	http_request "${am}/api/v2/alerts" "$(drill_alert "${drill_id}" resolved "${started}")" >/dev/null || rc=$?
	((rc == 0)) || drill_fail "${json}" resolve "Alertmanager at ${am} $(http_failure "${rc}") when resolving"
	info "resolution posted (endsAt now)"
	if ! resolved="$(wait_for_drill "${sink}" "${drill_id}" resolved)"; then
		drill_diagnose
		drill_fail "${json}" resolve "the resolution did not reach alert-sink within ${DRILL_TIMEOUT}s"
	fi
	info "resolved: alert-sink (${resolved% *}) got the resolution after ${resolved##* }s"
	if ((json == 1)); then
		printf '{"ok": true, "drill_id": "%s", "receiver": "%s", "path": "%s", "delivered_after_seconds": %s, "resolved_after_seconds": %s}\n' \
			"${drill_id}" "${receivers}" "${delivered% *}" "${delivered##* }" "${resolved##* }"
	fi
}

main() {
	local subcommand="${1:-help}"
	shift $(($# > 0))
	case "${subcommand}" in
	start | stop | restart | status | health | logs | validate | drill)
		"cmd_${subcommand}" "$@"
		;;
	help | -h | --help)
		if [[ -n ${1-} ]] && declare -F "usage_${1}" >/dev/null; then
			"usage_${1}"
		else
			usage
		fi
		;;
	*)
		usage >&2
		die 2 "unknown command: ${subcommand}"
		;;
	esac
}

main "$@"
