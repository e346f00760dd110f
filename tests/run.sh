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

# Debian packages: PostgreSQL 15 and Redis servers for the fixtures, promtool and amtool for the
# configs, shellcheck for the scripts. The live-container tests install Docker themselves
# (tests/live/docker-engine.sh).
install_debian_packages() {
	local -a missing=()
	[[ -x /usr/lib/postgresql/15/bin/initdb ]] || missing+=(postgresql-15)
	command -v redis-server >/dev/null || missing+=(redis-server)
	command -v promtool >/dev/null || missing+=(prometheus)
	command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
	command -v shellcheck >/dev/null || missing+=(shellcheck)
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
		-r "${ROOT}/requirements-dev.txt" -e "${ROOT}/exporters" -e "${ROOT}/demo"
}

main() {
	cd "${ROOT}"
	install_debian_packages
	install_python_packages
	step "ruff format --check, ruff check"
	"${VENV}/bin/ruff" format --check --quiet .
	"${VENV}/bin/ruff" check --quiet .
	step "mypy"
	"${VENV}/bin/mypy" --no-error-summary
	step "pytest"
	# The virtualenv first on PATH: the scripts under test call python3 and expect PyYAML.
	PATH="${VENV}/bin:${PATH}" "${VENV}/bin/pytest" "$@"
}

main "$@"
