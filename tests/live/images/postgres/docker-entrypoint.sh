#!/usr/bin/env bash
# Entrypoint of the postgres:15 stand-in (Debian's postgresql-15): the part of upstream's
# docker-entrypoint.sh that the live tests rely on, written for this image.
#
#   * A first argument starting with "-" means "postgres ARGS"; any other command but postgres,
#     or a help/version request, is run as given.
#   * POSTGRES_PASSWORD, POSTGRES_USER (default postgres), POSTGRES_DB (default the user) and
#     POSTGRES_INITDB_ARGS may each come from a file named by the same variable with _FILE. The
#     files are read while still root, so a secret the postgres user cannot read still works.
#   * As root: PGDATA and /var/run/postgresql are made and handed to postgres, then the script
#     runs itself again as postgres (gosu).
#   * With no PG_VERSION in PGDATA: initdb (trust on the local socket and loopback, as initdb
#     makes it), a "host all all all scram-sha-256" line (POSTGRES_HOST_AUTH_METHOD), a
#     socket-only server to create POSTGRES_DB and run /docker-entrypoint-initdb.d/*.sh, *.sql
#     and *.sql.gz, then that server stops.
#   * Last, the server: exec postgres with the arguments given after "postgres".
# shellcheck disable=SC2154 # POSTGRES_USER and POSTGRES_DB are exported by file_env below.
set -Eeuo pipefail
shopt -s nullglob

log() { printf '%s [entrypoint] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ || true)" "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# file_env VAR [DEFAULT]: export VAR from VAR, or from the file that VAR_FILE names; not both.
file_env() {
    local var="$1" default="${2:-}"
    local file_var="${var}_FILE"
    local value="${default}"
    if [[ -n "${!var:-}" && -n "${!file_var:-}" ]]; then
        die "both ${var} and ${file_var} are set (but are exclusive)"
    fi
    if [[ -n "${!var:-}" ]]; then
        value="${!var}"
    elif [[ -n "${!file_var:-}" ]]; then
        [[ -r "${!file_var}" ]] || die "${file_var}=${!file_var} is not a readable file"
        value="$(<"${!file_var}")"
    fi
    export "${var}=${value}"
    unset "${file_var}"
}

# Arguments that make postgres print something and exit: no set-up for those.
want_help() {
    local arg
    for arg in "$@"; do
        case "${arg}" in
            -'?' | --help | --describe-config | -V | --version) return 0 ;;
            *) ;;
        esac
    done
    return 1
}

init_cluster() {
    local -a initdb_args=() server_args=("$@")
    local script exists
    if [[ -n "${POSTGRES_INITDB_ARGS}" ]]; then
        read -r -a initdb_args <<<"${POSTGRES_INITDB_ARGS}"
    fi
    log "initialising ${PGDATA} (superuser ${POSTGRES_USER}, database ${POSTGRES_DB})"
    if [[ -n "${POSTGRES_PASSWORD}" ]]; then
        initdb --username="${POSTGRES_USER}" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD}") \
            "${initdb_args[@]}"
    else
        initdb --username="${POSTGRES_USER}" "${initdb_args[@]}"
    fi
    {
        printf '\n'
        if [[ "${POSTGRES_HOST_AUTH_METHOD}" == trust ]]; then
            printf '# warning trust is enabled for all connections\n'
        fi
        printf 'host all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD}"
    } >>"${PGDATA}/pg_hba.conf"

    # A server on the socket only, with the same server arguments, for the set-up below.
    export PGPASSWORD="${PGPASSWORD:-${POSTGRES_PASSWORD}}"
    server_args+=(-c "listen_addresses=" -p "${PGPORT:-5432}")
    PGUSER="${PGUSER:-${POSTGRES_USER}}" \
        pg_ctl -D "${PGDATA}" -o "$(printf '%q ' "${server_args[@]}")" -w start

    local -a psql=(psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER}" --no-password --no-psqlrc)
    if [[ "${POSTGRES_DB}" != postgres ]]; then
        exists="$("${psql[@]}" --dbname postgres --tuples-only --no-align --set db="${POSTGRES_DB}" \
            <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")"
        if [[ -z "${exists}" ]]; then
            "${psql[@]}" --dbname postgres --set db="${POSTGRES_DB}" <<<'CREATE DATABASE :"db";'
        fi
    fi
    for script in /docker-entrypoint-initdb.d/*; do
        case "${script}" in
            *.sh)
                if [[ -x "${script}" ]]; then
                    log "running ${script}"
                    "${script}"
                else
                    log "sourcing ${script}"
                    # shellcheck source=/dev/null
                    . "${script}"
                fi
                ;;
            *.sql)
                log "running ${script}"
                "${psql[@]}" --dbname "${POSTGRES_DB}" -f "${script}"
                ;;
            *.sql.gz)
                log "running ${script}"
                gunzip -c "${script}" | "${psql[@]}" --dbname "${POSTGRES_DB}"
                ;;
            *) log "ignoring ${script}" ;;
        esac
    done

    pg_ctl -D "${PGDATA}" -m fast -w stop
    unset PGPASSWORD
    log "init process complete; ready for start up"
}

if [[ "${1:-}" == -* ]]; then
    set -- postgres "$@"
fi
if [[ "${1:-}" != postgres ]] || want_help "$@"; then
    exec "$@"
fi

file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "${POSTGRES_USER}"
file_env POSTGRES_INITDB_ARGS
export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
export POSTGRES_HOST_AUTH_METHOD="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"

if [[ "$(id -u)" == 0 ]]; then
    mkdir -p "${PGDATA}" /var/run/postgresql
    chmod 00700 "${PGDATA}" || :
    chmod 03775 /var/run/postgresql || :
    find "${PGDATA}" /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
    exec gosu postgres "${BASH_SOURCE[0]}" "$@"
fi

if [[ ! -s "${PGDATA}/PG_VERSION" ]]; then
    if [[ -z "${POSTGRES_PASSWORD}" && "${POSTGRES_HOST_AUTH_METHOD}" != trust ]]; then
        die "the database is uninitialised and no superuser password is set: set" \
            "POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (or POSTGRES_HOST_AUTH_METHOD=trust)"
    fi
    shift
    init_cluster "$@"
    set -- postgres "$@"
else
    log "${PGDATA} already holds a cluster; skipping initialisation"
fi

# The password has done its work; keep it out of the server's environment.
unset POSTGRES_PASSWORD
exec "$@"
