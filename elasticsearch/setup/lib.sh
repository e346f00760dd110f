#!/usr/bin/env bash
# lib.sh: HTTP calls whose failures are explained, for setup.sh and kibana/setup/setup.sh.
#
# The Elasticsearch 8.18 image's curl is 7.68 (Ubuntu 20.04), which has no --fail-with-body
# (curl 7.76): the status and the body are taken with --write-out and --output instead, and a
# failure is reported as the HTTP status and the reply, or curl's exit code with its meaning.
# Credentials never reach an argument list (visible in ps): the user goes through a --config
# file descriptor, request bodies with passwords through standard input.

readonly SECRETS="${SECRETS:-/run/secrets}"
# The last reply: HTTP status ("000" when curl got none), body, and curl's complaint if any.
REPLY_STATUS=""
REPLY_BODY=""
REPLY_ERROR=""

log() { printf '[+] %s\n' "$*" >&2; }

fail() {
	printf '[x] %s\n' "$*" >&2
	exit 1
}

# The secret file's content without its newline; an absent or empty one is fatal.
secret() {
	local file="${SECRETS}/$1" value
	[[ -r ${file} ]] || fail "secret ${file} is missing or unreadable: run ./start-monitoring.sh start (it runs secrets-init)"
	value="$(tr -d '\n' <"${file}")"
	[[ -n ${value} ]] || fail "secret ${file} is empty"
	printf '%s' "${value}"
}

# What a curl exit code means here (man curl, EXIT CODES).
curl_meaning() {
	case $1 in
	6) printf 'could not resolve the host (is its service in this Compose project and network?)' ;;
	7) printf 'connection refused: nothing listens there (yet)' ;;
	28) printf 'timed out' ;;
	52) printf 'the server closed the connection without a reply' ;;
	56) printf 'the connection was reset while receiving' ;;
	*) printf 'curl exit code %s' "$1" ;;
	esac
}

# call USER SECRET METHOD URL [CURL_ARGS...]: one request as USER with the password in SECRET.
# Sets REPLY_STATUS, REPLY_BODY and REPLY_ERROR; returns 0 on a 2xx reply, 1 otherwise.
call() {
	local user=$1 password_secret=$2 method=$3 url=$4
	shift 4
	local body_file err_file code=0 password
	password="$(secret "${password_secret}")"
	body_file="$(mktemp)"
	err_file="$(mktemp)"
	REPLY_STATUS="$(curl --silent --show-error --max-time 30 \
		--config <(printf 'user = "%s:%s"\n' "${user}" "${password}") \
		--request "${method}" --output "${body_file}" --write-out '%{http_code}' \
		"$@" "${url}" 2>"${err_file}")" || code=$?
	REPLY_BODY="$(cat "${body_file}")"
	REPLY_ERROR=""
	if ((code != 0)); then
		REPLY_ERROR="$(curl_meaning "${code}") ($(tr -d '\n' <"${err_file}"))"
	fi
	rm -f "${body_file}" "${err_file}"
	((code == 0)) && [[ ${REPLY_STATUS} == 2* ]]
}

# The last failure in one line: curl's reason, or the HTTP status and the start of the reply.
explain() {
	if [[ -n ${REPLY_ERROR} ]]; then
		printf '%s' "${REPLY_ERROR}"
	else
		printf 'HTTP %s: %s' "${REPLY_STATUS}" "${REPLY_BODY:0:600}"
	fi
}

# must WHAT USER SECRET METHOD URL [CURL_ARGS...]: call, or stop saying what failed and why.
must() {
	local what=$1
	shift
	call "$@" || fail "${what}: $3 $4 failed: $(explain)"
}

# wait_until WHAT BUDGET_SECONDS PREDICATE [ARGS...]: run PREDICATE every 2s until it succeeds,
# at most BUDGET_SECONDS, showing progress; at the end, the last failure. A predicate returns 2
# for a failure that waiting cannot cure, which stops at once.
wait_until() {
	local what=$1 budget=$2 waited=0 status
	shift 2
	while true; do
		status=0
		"$@" || status=$?
		((status == 0)) && return 0
		((status == 2)) && fail "${what}: $(explain)"
		((waited >= budget)) && fail "${what}: no success within ${budget}s; last: $(explain)"
		log "waiting for ${what} (${waited}s of ${budget}s): $(explain)"
		sleep 2
		waited=$((waited + 2))
	done
}
