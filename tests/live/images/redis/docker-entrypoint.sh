#!/usr/bin/env bash
# Entrypoint of the redis:7 stand-in (Debian's redis-server 7.0), doing what upstream's does:
#
#   * A first argument that is an option (-...) or a config file (*.conf) means
#     "redis-server ARGS".
#   * redis-server started as root: chown what in the working directory (/data) is not redis's,
#     then run this script again as redis (uid 999) with gosu. Anything else runs as given.
#   * umask 0022 becomes 0077, so the RDB/AOF files are the redis user's alone.
#   * Protected mode defaults to off, as in upstream's build (which patches the compiled-in
#     default): "--protected-mode no" goes right after the config file (or after redis-server
#     when there is none), so a "protected-mode" line in that file or a later
#     "--protected-mode yes" still wins (a config read from stdin, "-", is left alone). Debian's redis-server would otherwise refuse clients
#     from other containers while the default user has no password.
set -Eeuo pipefail

if [[ "${1:-}" == -* || "${1:-}" == *.conf ]]; then
    set -- redis-server "$@"
fi

if [[ "${1:-}" == redis-server && "$(id -u)" == 0 ]]; then
    find . \! -user redis -exec chown redis '{}' +
    exec gosu redis "${BASH_SOURCE[0]}" "$@"
fi

if [[ "${1:-}" == redis-server ]]; then
    shift
    case "${1:-}" in
        -v | --version | -h | --help | --test-memory | --check-system | -) ;;
        -?*) set -- --protected-mode no "$@" ;;
        "") set -- --protected-mode no ;;
        *)
            conf="$1"
            shift
            if grep -qsE '^[[:space:]]*protected-mode[[:space:]]' "${conf}"; then
                set -- "${conf}" "$@"
            else
                set -- "${conf}" --protected-mode no "$@"
            fi
            ;;
    esac
    set -- redis-server "$@"
fi

if [[ "$(umask)" == 0022 ]]; then
    umask 0077
fi
exec "$@"
