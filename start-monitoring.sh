#!/usr/bin/env bash
# start-monitoring.sh: run the AI Finance monitoring stack with Docker Compose. See `help`.
# Bash keeps usage, dispatch, the lock and the order of the steps; each step is one call into
# the stack's operations package (stack/src/finance_stack, standard library only).
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
readonly ROOT
readonly DRY_RUN="${DRY_RUN:-0}"

if [[ -t 2 ]]; then
	readonly GREEN=$'\e[32m' RED=$'\e[31m' RESET=$'\e[0m'
else
	readonly GREEN='' RED='' RESET=''
fi

info() { printf '%s[+]%s %s\n' "${GREEN}" "${RESET}" "$*" >&2; }
fail() { printf '%s[x]%s %s\n' "${RED}" "${RESET}" "$*" >&2; }
die() {
	local code=$1
	shift
	fail "$*"
	exit "${code}"
}

# One step of the operations package: python3 -m finance_stack STEP --root ROOT [ARGS].
stack() {
	local step=$1
	shift
	PYTHONPATH="${ROOT}/stack/src${PYTHONPATH:+:${PYTHONPATH}}" python3 -m finance_stack "${step}" --root "${ROOT}" "$@"
}

# A step that acts on the chosen profiles.
stack_profiles() {
	local step=$1
	shift
	stack "${step}" --profiles "${PROFILES}" "$@"
}

# PROFILES (and where they came from), BIND_ADDRESS, WAIT_TIMEOUT, DRILL_TIMEOUT, TRACES_TO:
# resolved once, from the environment, the last start (.state/profiles), .env and the defaults.
load_settings() {
	command -v python3 >/dev/null 2>&1 || die 1 "python3 not found: install Python 3.11 or newer and re-run"
	local assignments
	assignments="$(stack settings)" || exit 1
	eval "${assignments}"
}

# help must work even with a broken .env: the settings it shows are then unknown.
load_settings_for_help() {
	local assignments
	if assignments="$(stack settings 2>/dev/null)"; then
		eval "${assignments}"
	fi
	: "${PROFILES:=?}" "${PROFILES_ORIGIN:=a broken .env}" "${BIND_ADDRESS:=?}" "${TRACES_TO:=?}"
	: "${WAIT_TIMEOUT:=?}" "${DRILL_TIMEOUT:=?}"
}

# Every docker compose call that changes something goes through here: DRY_RUN=1 prints it.
compose() {
	local -a argv=(docker compose --project-directory "${ROOT}" --file "${ROOT}/docker-compose.yml" "$@")
	if [[ ${DRY_RUN} == 1 ]]; then
		printf 'arg=%s\n' "${argv[@]}"
		return 0
	fi
	command -v docker >/dev/null 2>&1 ||
		die 1 "docker not found: install Docker Engine (https://docs.docker.com/engine/install/) and re-run"
	COMPOSE_PROFILES="${PROFILES}" "${argv[@]}"
}

# Compose with every profile enabled: stop and logs must see all services.
compose_all() {
	compose --profile '*' "$@"
}

dry_flag() {
	if [[ ${DRY_RUN} == 1 ]]; then printf -- '--dry-run\n'; fi
}

# start, stop and restart of one project never overlap: the second waits for nothing, it says so.
LOCKED=0
take_lock() {
	((LOCKED == 0)) || return 0
	[[ -d ${ROOT}/.state ]] || mkdir -m 0700 "${ROOT}/.state"
	exec {LOCK_FD}>"${ROOT}/.state/lock"
	if ! flock --nonblock "${LOCK_FD}"; then
		die 1 "another start, stop or restart of this stack is running (pid $(cat "${ROOT}/.state/lock.pid" 2>/dev/null || printf '?')): wait until it ends, then re-run"
	fi
	printf '%s\n' "$$" >"${ROOT}/.state/lock.pid"
	LOCKED=1
}

usage() {
	cat <<EOF
Usage: ./start-monitoring.sh COMMAND [OPTIONS]

Run the AI Finance monitoring stack (Prometheus, Alertmanager, Grafana, Elasticsearch,
Logstash, Kibana, Jaeger, Uptime Kuma and the business-metric exporters) with Docker Compose.

Commands:
  start             check the machine and every config, generate secrets, pull and build images,
                    start, wait for health
  stop              stop and remove the containers (volumes and secrets are kept)
  restart           stop, then start the same profiles
  status [--json]   one line per container: state, health, published ports
  health [--json]   probe each component's own health endpoint; exit 1 if any is unhealthy
  logs [SERVICE]    the last log lines of every service, or of one (-f to follow)
  validate          check every config offline: .env, compose, Prometheus, Alertmanager, Grafana,
                    Logstash, Elasticsearch, Kibana, Uptime Kuma's monitors
  drill [SCENARIO] [--list] [--json]
                    fire a synthetic alert through Alertmanager, or break the demo platform on
                    purpose (SCENARIO; --list names them); confirm delivery and resolution
  backup [OPTIONS]  archive every store (Prometheus, Alertmanager, Grafana, Elasticsearch, Uptime
                    Kuma, Jaeger, and the secrets if asked) into ./backups, with a manifest
  restore ARCHIVE   verify an archive, put it back, check everything it holds is there again
  upgrade [OPTIONS] after the pins changed (a new checkout, an .env edit): back up under the
                    running versions, start at the new pins, check health; says how to roll back
  help [COMMAND]    this text, or a command's own (also: COMMAND --help)

Environment (also read from .env; every variable is described in .env.example):
  COMPOSE_PROFILES  what runs (now: ${PROFILES}, from ${PROFILES_ORIGIN}); "demo" adds the
                    embedded datastores and the demo platform under load. start remembers its
                    profiles for every later command until stop; setting it overrides that.
  BIND_ADDRESS      host address for published ports (now: ${BIND_ADDRESS})
  OTLP_ENDPOINT     where the demo platform and exporters send traces (now: ${TRACES_TO});
                    unset: Jaeger's OTLP/HTTP endpoint when profile traces or full runs
  WAIT_TIMEOUT      seconds to wait for health on start (now: ${WAIT_TIMEOUT})
  DRILL_TIMEOUT     seconds each synthetic drill step may wait (now: ${DRILL_TIMEOUT})
  DRY_RUN=1         print the commands that would change something instead of running them

Examples:
  ./start-monitoring.sh start
  COMPOSE_PROFILES=demo ./start-monitoring.sh start     # metrics only, with the demo datastores
  ./start-monitoring.sh health --json | jq .
  ./start-monitoring.sh logs revenue-exporter -f
  ./start-monitoring.sh drill
  ./start-monitoring.sh drill payment-provider-down    # a real failure, its real alert
  ./start-monitoring.sh backup --encrypt-key ~/.ai-finance-backup.key
  ./start-monitoring.sh restore backups/ai-finance-backup-20250101T120000Z.tar --yes
  git pull && ./start-monitoring.sh upgrade --encrypt-key ~/.ai-finance-backup.key

Exit status: 0 success, 1 failure, 2 usage error.
EOF
}

usage_start() {
	cat <<EOF
Usage: ./start-monitoring.sh start

Preflight (nothing is changed if one fails): Docker engine and Compose v2, .env readable and
private when it holds a password, every port variable a port, enough memory and disk,
vm.max_map_count when Elasticsearch runs, published ports free. Then missing images are pulled,
every config is validated (a broken one stops the start), secrets are generated into ./secrets
on first start (mode 0600), the stack's images built, containers started, and a wait (at most
WAIT_TIMEOUT=${WAIT_TIMEOUT}s; a service that keeps crashing fails it at once, with its last log
lines) until every service is healthy. Prints the URLs and where the credentials are.

Environment: COMPOSE_PROFILES, BIND_ADDRESS, WAIT_TIMEOUT, MIN_MEMORY_MB, MIN_DISK_MB, DRY_RUN.
Exit status: 0 all healthy, 1 failure, 2 usage error.
EOF
}

usage_stop() { printf 'Usage: ./start-monitoring.sh stop\n\nStop and remove all containers of the stack, whatever their profile, and forget the\nprofiles start remembered. Volumes and ./secrets are kept; remove volumes with:\ndocker compose down --volumes\n'; }
usage_restart() { printf 'Usage: ./start-monitoring.sh restart\n\nstop, then start the profiles that were running (see start --help).\n'; }
usage_status() { printf 'Usage: ./start-monitoring.sh status [--json]\n\nOne line per container (service, state, health, ports); --json prints a JSON array.\nExit status: 0 containers listed, 1 none exists (the stack is not running).\n'; }
usage_health() {
	cat <<'EOF'
Usage: ./start-monitoring.sh health [--json]

One line per service of the running profiles, from its own health endpoint (HTTP on the
published port, as its ai-finance.health label in docker-compose.yml says) or, for internal
services, from its container healthcheck; the exporters also report whether their datastores
answer (finance_exporter_up). --json prints a JSON array of {"component", "healthy", "detail"}.
Exit status: 0 all healthy, 1 any unhealthy.
EOF
}
usage_logs() { printf 'Usage: ./start-monitoring.sh logs [SERVICE] [-f]\n\nThe last 200 lines of every service, or of SERVICE; -f follows.\n'; }
usage_validate() {
	cat <<'EOF'
Usage: ./start-monitoring.sh validate

Check every config offline: .env, docker compose config, promtool check config (rules
included), amtool check-config (from PATH, or from the pinned images when the engine has them),
Grafana provisioning and dashboards, Logstash pipelines, Elasticsearch and Kibana settings,
and uptime-kuma/monitors.yml against what docker-compose.yml generates. Each problem names the file and, where the tool gives it, the line.
Exit status: 0 all valid, 1 a config is invalid.
EOF
}
usage_drill() {
	cat <<EOF
Usage: ./start-monitoring.sh drill [SCENARIO] [--list] [--json]

Prove the alerting path end to end on the running stack.

With no SCENARIO (or "synthetic"): post a synthetic alert (MonitoringDrill, severity warning,
team sre, category meta, service alertmanager, a unique drill_id) to Alertmanager's API on its
published port, check it is routed to the drill receiver, wait until the local alert-sink has
received it, then resolve it and wait for the resolution too. Every wait polls once a second for
at most DRILL_TIMEOUT=${DRILL_TIMEOUT}s. It never reaches Slack or PagerDuty: its receiver is
always the alert-sink.

With a SCENARIO (needs the demo profile): break the demo platform on purpose (a share of one
service's requests failing, added latency, the payment provider failing, the market-data feed
stalled, signal accuracy dropping, the platform killed), wait for the real alert to fire in
Alertmanager and reach its team's receiver at the alert-sink, turn the fault off, and wait for
the resolution. Each scenario's waits are derived from its rule's for: (--list shows them; some
take most of an hour). The fault is always turned off again, also when a step fails or on
Ctrl-C. A scenario raises a real alert: with real Slack or PagerDuty configured, the team is
notified for real (docs/operations.md, Drills).

Each step prints a [+] line with its time on stderr; --json also prints a summary object (with
--list, the scenarios) on stdout. --list names every scenario, what it breaks, the alert and
labels it expects and the receiver.

Environment: DRILL_TIMEOUT, COMPOSE_PROFILES.
Exit status: 0 delivered and resolved, 1 a step failed, 2 usage error (an unknown scenario).
EOF
}

usage_backup() {
	cat <<'EOF'
Usage: ./start-monitoring.sh backup [--to DIR] [--gzip] [--encrypt-key FILE | --include-secrets]
                                    [--only STORE,...] [--json]

One archive, DIR/ai-finance-backup-<UTC time>.tar (DIR: ./backups, mode 0700; the archive 0600),
of every store whose service runs: prometheus (paused for a hard-link snapshot of its TSDB,
the pause printed), alertmanager (silences and notification log), grafana, uptime-kuma and
jaeger (each paused while its files are read), elasticsearch (its snapshot API) and, with
--encrypt-key FILE (openssl, AES-256, the passphrase the file's first line) or
--include-secrets (plain text), ./secrets. manifest.json comes first: versions, image pins,
every file's size and SHA-256, and what each store holds (series and samples, silences,
documents per index, ...). A store whose service is not running is skipped and said so.
--json prints the manifest's summary on stdout. See docs/operations.md.
Exit status: 0 archive written, 1 failure (no archive), 2 usage error.
EOF
}
usage_upgrade() {
	cat <<EOF
Usage: ./start-monitoring.sh upgrade [--to DIR] [--gzip] [--encrypt-key FILE | --include-secrets]
                                     [--only STORE,...]

Run it after the pins changed under the running stack (a checkout pulled, an *_IMAGE set in
.env). Says which images change (service: running -> pinned), then backs up every store as
backup does, recording the versions that run (the ones that wrote the data), so the archive
restores after a rollback. Then start (pull, validate, recreate what changed, wait for health,
at most WAIT_TIMEOUT=${WAIT_TIMEOUT}s) and health. If any step after the backup fails, it says
how to roll back: the previous pins, start, restore ARCHIVE. Nothing changes if the backup fails.
The archive's path is the last line on stdout. DRY_RUN=1 says what changes, and backs up nothing.
See docs/operations.md, Upgrade.
Exit status: 0 upgraded and healthy, 1 failure (the output says what to do), 2 usage error.
EOF
}

usage_restore() {
	cat <<EOF
Usage: ./start-monitoring.sh restore ARCHIVE [--only STORE,...] [--decrypt-key FILE] [--yes]
                                     [--json]

Verifies ARCHIVE first (manifest, every file's size and SHA-256, nothing extra or missing, the
image pins equal to this checkout's) and refuses it before touching anything. Then stages each
store next to its volume, stops their services, puts the files in place (Elasticsearch through
its snapshot API), starts them, waits for health (at most WAIT_TIMEOUT=${WAIT_TIMEOUT}s) and
checks that what the manifest recorded is back, one line per store. The secrets are restored
only with --only secrets (before the first start on a new machine: docs/operations.md).
--yes: no question asked (needed without a terminal).
Exit status: 0 restored and every check passed, 1 failure, 2 usage error or not confirmed.
EOF
}

wants_help() {
	local arg
	for arg in "$@"; do
		[[ ${arg} == -h || ${arg} == --help ]] && return 0
	done
	return 1
}

# At most one option, --json.
json_flag() {
	local command=$1
	shift
	(($# == 0)) && return 0
	if (($# == 1)) && [[ $1 == --json ]]; then
		printf -- '--json\n'
		return 0
	fi
	"usage_${command}" >&2
	die 2 "${command}: unknown option: $*"
}

# ---- commands ------------------------------------------------------------------------------

cmd_start() {
	(($# == 0)) || {
		usage_start >&2
		die 2 "start takes no arguments"
	}
	take_lock
	local dry exports
	dry="$(dry_flag)"
	info "preflight (profiles: ${PROFILES}, from ${PROFILES_ORIGIN})"
	exports="$(stack_profiles preflight ${dry:+"${dry}"})" || exit 1
	eval "${exports}"
	stack_profiles pull ${dry:+"${dry}"} || exit 1
	info "validating every config"
	stack validate || die 1 "a config is invalid (above): fix it, then ./start-monitoring.sh start again; nothing was started"
	info "secrets: ${ROOT}/secrets (generated on first start, mode 0600)"
	compose --profile setup build --quiet secrets-init
	# Names only: Compose passes each variable's value from this environment, so no URL (nor
	# its password) is ever an argument or a value in the compose file; .env the job reads itself.
	compose --profile setup run --rm --no-deps \
		-e DATABASE_URL -e REDIS_URL -e POSTGRES_EXPORTER_DATABASE_URL -e REDIS_EXPORTER_URL \
		secrets-init >/dev/null
	info "building the stack's own images"
	compose build --quiet
	stack_profiles targets ${dry:+"${dry}"} || exit 1
	[[ ${DRY_RUN} == 1 ]] || stack_profiles remember
	info "starting containers"
	compose up --detach --no-build --remove-orphans
	if [[ ${DRY_RUN} == 1 ]]; then
		info "DRY_RUN=1: nothing was started"
		return 0
	fi
	stack_profiles wait --timeout "${WAIT_TIMEOUT}" || exit 1
	stack_profiles urls
}

cmd_stop() {
	(($# == 0)) || die 2 "stop takes no arguments"
	take_lock
	info "stopping the stack (volumes and secrets are kept)"
	compose_all down --remove-orphans
	[[ ${DRY_RUN} == 1 ]] || stack_profiles forget
}

cmd_restart() {
	(($# == 0)) || die 2 "restart takes no arguments"
	take_lock
	info "restarting profiles ${PROFILES} (from ${PROFILES_ORIGIN})"
	compose_all down --remove-orphans
	cmd_start "$@"
}

cmd_status() {
	local json
	json="$(json_flag status "$@")"
	stack_profiles status ${json:+"${json}"}
}

cmd_health() {
	local json
	json="$(json_flag health "$@")"
	stack_profiles health ${json:+"${json}"}
}

cmd_logs() {
	compose_all logs --tail 200 "$@"
}

cmd_validate() {
	(($# == 0)) || die 2 "validate takes no arguments"
	stack validate
}

cmd_drill() {
	local -a args=()
	local arg scenario=""
	for arg in "$@"; do
		case "${arg}" in
		--json | --list) args+=("${arg}") ;;
		-*)
			usage_drill >&2
			die 2 "drill: unknown option: ${arg}"
			;;
		*)
			[[ -z ${scenario} ]] || {
				usage_drill >&2
				die 2 "drill takes one scenario, not ${scenario} and ${arg}"
			}
			scenario="${arg}"
			;;
		esac
	done
	stack_profiles drill --timeout "${DRILL_TIMEOUT}" "${args[@]}" ${scenario:+"${scenario}"}
}

# backup and restore: the options are the Python step's, checked there (2 on misuse).
cmd_backup() {
	take_lock
	stack_profiles backup "$@"
}

cmd_restore() {
	take_lock
	stack_profiles restore --timeout "${WAIT_TIMEOUT}" "$@"
}

# upgrade: the backup first (under the running versions); then start and health, and, if either
# fails, the way back. An EXIT trap, so that every way start can fail (exit, die) says it.
UPGRADE_ARCHIVE=""
upgrade_failed() {
	local status=$1
	((status == 0)) && return 0
	fail "upgrade failed after the backup (above): the stack may run a mix of old and new versions"
	fail "to roll back: go back to the previous pins (git checkout the previous commit, or undo the .env change), then"
	fail "  ./start-monitoring.sh start && ./start-monitoring.sh restore ${UPGRADE_ARCHIVE} --yes"
	fail "(add --decrypt-key FILE if the archive holds encrypted secrets); docs/operations.md, Upgrade"
}

cmd_upgrade() {
	take_lock
	local dry status=0
	dry="$(dry_flag)"
	info "upgrade: back up under the running versions, then start at this checkout's pins"
	UPGRADE_ARCHIVE="$(stack_profiles upgrade-backup ${dry:+"${dry}"} "$@")" || status=$?
	if ((status == 2)); then
		usage_upgrade >&2
		exit 2
	fi
	((status == 0)) || die 1 "upgrade stopped before changing anything: see above"
	if [[ ${DRY_RUN} == 1 ]]; then
		cmd_start
		return 0
	fi
	info "upgrade: archive of the versions before: ${UPGRADE_ARCHIVE}"
	trap 'upgrade_failed $?' EXIT
	cmd_start
	info "upgrade: health"
	stack_profiles health >&2 || exit 1
	trap - EXIT
	info "upgraded and healthy; the way back, if needed: the previous pins, start, restore ${UPGRADE_ARCHIVE}"
	printf '%s\n' "${UPGRADE_ARCHIVE}"
}

main() {
	local subcommand="${1:-help}"
	shift $(($# > 0))
	case "${subcommand}" in
	start | stop | restart | status | health | logs | validate | drill | backup | restore | upgrade)
		load_settings
		if wants_help "$@"; then
			"usage_${subcommand}"
			return 0
		fi
		"cmd_${subcommand}" "$@"
		;;
	help | -h | --help)
		load_settings_for_help
		if (($# == 0)); then
			usage
		elif declare -F "usage_${1}" >/dev/null; then
			"usage_${1}"
		else
			usage >&2
			die 2 "help: unknown command: ${1}"
		fi
		;;
	*)
		load_settings_for_help
		usage >&2
		die 2 "unknown command: ${subcommand}"
		;;
	esac
}

main "$@"
