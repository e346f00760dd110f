#!/usr/bin/env bash
# Builds the Go programs behind the stand-in images (and the promtool and amtool the config tests
# use, and the Thanos of the scale-out tests) at exactly the versions the compose files pin, from
# their upstream modules on the Go module proxy, as static binaries. Nothing is typed twice: each
# program's version is read from its image's default in docker-compose.yml or the scale-out
# override docker-compose.scale.yml (`${PROMETHEUS_IMAGE:-prom/prometheus:v3.5.0}`), so a bumped
# pin builds the new version. Modules and builds are cached under /var/cache/ai-finance/go;
# a program already built at its version is reused. Prints the path of each binary on stdout, one
# a line, in the order asked; progress goes to stderr.
#
# Each module is fetched with `go mod download` (checked against the module's go.sum hash in the
# checksum database, except where the database does not know it: see GONOSUMDB_MODULES) and built
# inside a copy of it, because several of them (Prometheus, Jaeger) carry replace directives that
# `go install module@version` refuses. The version flags (`--version`) are set the way the
# upstream release builds set them: from the module's VERSION file where it has one, else from
# the version the module proxy served.
set -euo pipefail
shopt -s inherit_errexit

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
# Where the pins are read: COMPOSE_FILE_PATH (one file), else both compose files.
readonly REPO_ROOT="${SCRIPT_DIR}/../../.."
if [[ -n ${COMPOSE_FILE_PATH:-} ]]; then
    readonly -a COMPOSE_FILES=("${COMPOSE_FILE_PATH}")
else
    readonly -a COMPOSE_FILES=("${REPO_ROOT}/docker-compose.yml" "${REPO_ROOT}/docker-compose.scale.yml")
fi
readonly CACHE="${AI_FINANCE_GO_CACHE:-/var/cache/ai-finance/go}"
readonly BIN_CACHE="${CACHE}/bin"
readonly BUILD_TIMEOUT="${AI_FINANCE_GO_BUILD_TIMEOUT:-1200}"
readonly PROGRESS_EVERY=30
# Modules the checksum database has no record of (sum.golang.org answers 404 for them); their
# go.sum entries still pin every dependency.
readonly GONOSUMDB_MODULES=github.com/oliver006/redis_exporter

# name: image variable | module | package | how the pin maps to the module version | version flags
#       [| build tags, comma-separated, as the upstream release build sets them (.promu.yml)]
# Version schemes: same (module version = image tag), prometheus3 (Prometheus 3.M.P is module
# v0.3MM.P), jaeger2 (Jaeger 2.M.P is module v1.(M+63).P: v2.0.0 was released as v1.63.0).
# Version flags: common (github.com/prometheus/common/version), redis (main.Build*), jaeger
# (internal/version). Thanos needs slicelabels: its labelpb casts labels.Labels as a slice, and
# with Prometheus' default (stringlabels) layout it crashes on its first gRPC answer.
declare -rA PROGRAMS=(
    [prometheus]="PROMETHEUS_IMAGE|github.com/prometheus/prometheus|./cmd/prometheus|prometheus3|common"
    [promtool]="PROMETHEUS_IMAGE|github.com/prometheus/prometheus|./cmd/promtool|prometheus3|common"
    [alertmanager]="ALERTMANAGER_IMAGE|github.com/prometheus/alertmanager|./cmd/alertmanager|same|common"
    [amtool]="ALERTMANAGER_IMAGE|github.com/prometheus/alertmanager|./cmd/amtool|same|common"
    [node_exporter]="NODE_EXPORTER_IMAGE|github.com/prometheus/node_exporter|.|same|common"
    [postgres_exporter]="POSTGRES_EXPORTER_IMAGE|github.com/prometheus-community/postgres_exporter|./cmd/postgres_exporter|same|common"
    [redis_exporter]="REDIS_EXPORTER_IMAGE|github.com/oliver006/redis_exporter|.|same|redis"
    [jaeger]="JAEGER_IMAGE|github.com/jaegertracing/jaeger|./cmd/jaeger|jaeger2|jaeger"
    [json_exporter]="JSON_EXPORTER_IMAGE|github.com/prometheus-community/json_exporter|.|same|common"
    [thanos]="THANOS_IMAGE|github.com/thanos-io/thanos|./cmd/thanos|same|common|netgo,slicelabels"
)

export GOMODCACHE="${CACHE}/mod" GOCACHE="${CACHE}/build" GOPATH="${CACHE}/path"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -mod=readonly"
export GONOSUMDB="${GONOSUMDB_MODULES}"

# Module copies being built; removed on exit (a failed build's log, beside its copy, is kept).
SCRATCH=()
cleanup() {
    local dir
    for dir in "${SCRATCH[@]}"; do
        rm -rf -- "${dir}"
    done
}
trap cleanup EXIT

usage() {
    cat <<EOF
Usage: tests/live/images/pinned-go.sh [--describe] NAME...

Build (or reuse) each program at the version pinned in docker-compose.yml or
docker-compose.scale.yml and print its path.
NAME is one of: $(printf '%s\n' "${!PROGRAMS[@]}" | sort | tr '\n' ' ')

  --describe    Print "NAME PIN MODULE@VERSION" a line instead of building.
  --module-dir  Print the (read-only, cached) source directory of each program's module instead
                of building: the files an upstream Dockerfile copies from its tree are there.

Cache: ${CACHE} (AI_FINANCE_GO_CACHE). Needs Go (1.26 here) and the Go module proxy.
EOF
}

info() { printf '[+] %s\n' "$*" >&2; }
die() {
    printf '[x] %s\n' "$*" >&2
    exit 1
}

field() { # field SPEC N: the Nth |-separated field of SPEC (empty if it has fewer)
    local -a parts
    IFS='|' read -r -a parts <<<"$1"
    printf '%s\n' "${parts[$2]:-}"
}

# The tag of an image variable's default in the compose files; it must be typed exactly once.
# Only a flat default is read here: a nested one (`${KIBANA_IMAGE:-…:${ELASTIC_VERSION:-8.18.2}}`,
# parsed in full by tests/support/compose_vars.py) is refused rather than misread.
pinned_tag() {
    local variable="$1" found
    found="$(cat -- "${COMPOSE_FILES[@]}" | grep -oE "\\\$\\{${variable}:-[^}]+\\}" | sort -u)"
    [[ -n "${found}" ]] || die "${COMPOSE_FILES[*]}: no \${${variable}:-image:tag} default"
    [[ "$(wc -l <<<"${found}")" -eq 1 ]] ||
        die "${COMPOSE_FILES[*]} give ${variable} different defaults: ${found//$'\n'/, }"
    found="${found#*:-}"
    [[ "${found}" != *"\${"* ]] ||
        die "${variable}'s default nests another variable (${found}}); pinned-go.sh reads only flat pins"
    found="${found%\}}"
    [[ "${found##*/}" == *:* ]] || die "${variable}'s default ${found} has no tag"
    printf '%s\n' "${found##*:}"
}

module_version() { # module_version SCHEME TAG
    local scheme="$1" tag="${2#v}" major minor patch
    [[ "${tag}" =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)$ ]] || die "pin ${2} is not MAJOR.MINOR.PATCH"
    major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}" patch="${BASH_REMATCH[3]}"
    case "${scheme}" in
        same) printf 'v%s.%s.%s\n' "${major}" "${minor}" "${patch}" ;;
        prometheus3)
            ((major == 3)) || die "Prometheus ${2}: only 3.x maps to a module version here"
            printf 'v0.3%02d.%s\n' "${minor}" "${patch}"
            ;;
        jaeger2)
            ((major == 2)) || die "Jaeger ${2}: only 2.x maps to a module version here"
            printf 'v1.%s.%s\n' "$((minor + 63))" "${patch}"
            ;;
        *) die "unknown version scheme ${scheme}" ;;
    esac
}

# -ldflags for the version the binary reports. $1 flags style, $2 module dir, $3 module version,
# $4 pinned tag (Jaeger's v2 version is not in its module: it comes from the release tag).
version_ldflags() {
    local style="$1" dir="$2" modver="$3" tag="$4" version
    case "${style}" in
        common)
            version="${modver#v}"
            [[ -r "${dir}/VERSION" ]] && version="$(tr -d '[:space:]' <"${dir}/VERSION")"
            local pkg=github.com/prometheus/common/version
            printf '%s ' "-X ${pkg}.Version=${version}" "-X ${pkg}.Revision=module-${modver}" \
                "-X ${pkg}.Branch=go-module-proxy" "-X ${pkg}.BuildUser=ai-finance-standin"
            ;;
        redis)
            printf '%s ' "-X main.BuildVersion=${modver}" "-X main.BuildCommitSha=module-${modver}" \
                "-X main.BuildDate=unknown"
            ;;
        jaeger)
            local pkg=github.com/jaegertracing/jaeger/internal/version
            printf '%s ' "-X ${pkg}.latestVersion=v${tag#v}" "-X ${pkg}.commitSHA=module-${modver}" \
                "-X ${pkg}.date=unknown"
            ;;
        *) die "unknown version flags ${style}" ;;
    esac
}

# Runs "$@" in the background with a progress line every PROGRESS_EVERY seconds and a limit.
with_progress() {
    local label="$1" log="$2" pid rc=0 started="${SECONDS}" elapsed
    shift 2
    timeout --kill-after=30 "${BUILD_TIMEOUT}" "$@" >"${log}" 2>&1 &
    pid=$!
    while kill -0 "${pid}" 2>/dev/null; do
        sleep 1
        elapsed=$((SECONDS - started))
        if ((elapsed > 0 && elapsed % PROGRESS_EVERY == 0)); then
            info "${label}: still building after ${elapsed}s"
        fi
    done
    wait "${pid}" || rc=$?
    if ((rc != 0)); then
        printf '[x] %s failed (exit %s) after %ss; the end of its log:\n' "${label}" "${rc}" \
            "$((SECONDS - started))" >&2
        tail -n 30 -- "${log}" >&2
        return 1
    fi
    info "${label}: built in $((SECONDS - started))s"
}

# describe NAME: "PIN MODULE MODULE_VERSION PACKAGE FLAGS [TAGS]" of one program.
describe() {
    local spec="${PROGRAMS[$1]:-}" tag
    [[ -n "${spec}" ]] || die "unknown program $1 (see --help)"
    tag="$(pinned_tag "$(field "${spec}" 0)")"
    printf '%s %s %s %s %s %s\n' "${tag}" "$(field "${spec}" 1)" \
        "$(module_version "$(field "${spec}" 3)" "${tag}")" "$(field "${spec}" 2)" \
        "$(field "${spec}" 4)" "$(field "${spec}" 5)"
}

# module_dir MODULE VERSION: download (or find in the cache) a module; print its directory.
module_dir() {
    mkdir -p "${GOMODCACHE}"
    go mod download -json "$1@$2" | python3 -c '
import json, sys
info = json.load(sys.stdin)
if info.get("Error"):
    sys.exit(info["Error"])
print(info["Dir"])' || die "the Go module proxy did not serve $1@$2"
}

build() {
    local name="$1" tag module modver package flags tags out dir src log ldflags
    read -r tag module modver package flags tags < <(describe "${name}")
    # Build tags are part of the cache key: the same version built with other tags is another
    # binary (thanos@v0.42.4+netgo+slicelabels).
    out="${BIN_CACHE}/${module##*/}@${modver}${tags:++${tags//,/+}}/${name}"
    if [[ -x "${out}" ]]; then
        info "${name} ${tag} (${module}@${modver}) is built: ${out}"
        printf '%s\n' "${out}"
        return 0
    fi
    mkdir -p "${BIN_CACHE}" "${GOCACHE}"
    info "${name} ${tag}: downloading ${module}@${modver}"
    dir="$(module_dir "${module}" "${modver}")"
    src="$(mktemp -d "${CACHE}/src.XXXXXX")"
    SCRATCH+=("${src}")
    cp -r "${dir}/." "${src}/"
    chmod -R u+w "${src}"
    ldflags="-s -w $(version_ldflags "${flags}" "${src}" "${modver}" "${tag}")"
    log="${src}.log"
    info "${name} ${tag}: go build ${package} in ${module}@${modver} (limit ${BUILD_TIMEOUT}s)"
    (cd "${src}" && with_progress "${name}" "${log}" go build -trimpath -tags "${tags}" \
        -ldflags "${ldflags}" -o "${src}/.out/${name}" "${package}") ||
        die "could not build ${name}; log: ${log}"
    mkdir -p "$(dirname "${out}")"
    mv "${src}/.out/${name}" "${out}.tmp"
    mv "${out}.tmp" "${out}"
    rm -rf -- "${log}" "${src}"
    printf '%s\n' "${out}"
}

main() {
    local mode=build name tag module modver
    local -a names=()
    for name in "$@"; do
        case "${name}" in
            --describe) mode=describe ;;
            --module-dir) mode=module_dir ;;
            -h | --help)
                usage
                return 0
                ;;
            -*) die "unknown option ${name} (see --help)" ;;
            *) names+=("${name}") ;;
        esac
    done
    ((${#names[@]} > 0)) || die "name at least one program (see --help)"
    command -v go >/dev/null || die "go not found: install Go 1.26 (https://go.dev/doc/install)"
    for name in "${names[@]}"; do
        case "${mode}" in
            describe) printf '%s %s\n' "${name}" "$(describe "${name}" | awk '{ print $1, $2 "@" $3 }')" ;;
            module_dir)
                read -r tag module modver _ < <(describe "${name}")
                module_dir "${module}" "${modver}"
                ;;
            *) build "${name}" ;;
        esac
    done
}

main "$@"
