#!/usr/bin/env bash
# Build the stand-in images of the live-container tests: one folder here per upstream image
# (tests/live/images/NAME/Dockerfile), each built FROM the Debian base image and tagged
# ai-finance-standin/NAME:test, so compose can run with X_IMAGE set to it where no container
# registry is reachable. The Go programs (Prometheus, Alertmanager, node-, postgres- and
# redis-exporter, Jaeger) are the upstream releases at the versions docker-compose.yml pins,
# built from their Go modules by pinned-go.sh; Postgres and Redis come from Debian's packages.
# Each Go stand-in is labelled with its pin (org.ai-finance.standin.version) and the module it
# was built from (org.ai-finance.standin.module).
#
# An image whose label org.ai-finance.standin-sha256 matches its build context (its folder's
# files, the binaries and the base image) is skipped; --force rebuilds without the build cache. Each build runs under a time limit
# with a progress line on stderr every PROGRESS_EVERY seconds; its output goes to a log file that
# is printed in part, and kept, when it fails. The tags are printed on stdout, one a line.
# Stand-in images a rebuild left untagged are pruned when no container uses them. smoke.sh
# beside this script runs each image against its upstream contract.
set -euo pipefail
shopt -s inherit_errexit

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
readonly ENGINE_SCRIPT="${SCRIPT_DIR}/../docker-engine.sh"
readonly DEFAULT_DOCKER_HOST=unix:///run/ai-finance-docker/docker.sock
readonly DEFAULT_BASE_IMAGE=ai-finance/debian:bookworm
readonly BASE_IMAGE="${BASE_IMAGE:-${DEFAULT_BASE_IMAGE}}"
readonly TAG_PREFIX=ai-finance-standin
readonly TAG_SUFFIX=test
readonly HASH_LABEL=org.ai-finance.standin-sha256
readonly BUILD_TIMEOUT="${AI_FINANCE_STANDIN_BUILD_TIMEOUT:-900}"
readonly PROGRESS_EVERY=30
readonly ALL_IMAGES=(prometheus alertmanager node-exporter postgres postgres-exporter redis redis-exporter jaeger)
readonly PINNED_GO="${SCRIPT_DIR}/pinned-go.sh"
readonly VERSION_LABEL=org.ai-finance.standin.version
readonly MODULE_LABEL=org.ai-finance.standin.module
# The stand-ins of Go programs: the binaries each image gets, built by pinned-go.sh at the version
# docker-compose.yml pins (the first one names the image's pin and module)...
declare -rA GO_BINARIES=(
    [prometheus]="prometheus promtool"
    [alertmanager]="alertmanager amtool"
    [node-exporter]="node_exporter"
    [postgres-exporter]="postgres_exporter"
    [redis-exporter]="redis_exporter"
    [jaeger]="jaeger"
)
# ...and the files upstream's Dockerfile copies from the module's tree, into module/.
declare -rA MODULE_FILES=(
    [prometheus]="documentation/examples/prometheus.yml"
    [alertmanager]="examples/ha/alertmanager.yml"
    [jaeger]="cmd/jaeger/sampling-strategies.json"
)

export DOCKER_HOST="${DOCKER_HOST:-${DEFAULT_DOCKER_HOST}}"
# The engine has no buildx plugin: use the classic builder, and say so, rather than have the
# CLI guess.
export DOCKER_BUILDKIT=0

LOG_DIR=""
KEEP_LOGS=false

usage() {
    cat <<EOF
Usage: tests/live/images/build.sh [--force] [NAME...]

Build the stand-in images (tag ${TAG_PREFIX}/NAME:${TAG_SUFFIX}) from ${DEFAULT_BASE_IMAGE}:
the Go programs at the versions docker-compose.yml pins (pinned-go.sh), Postgres and Redis from
Debian's packages. NAME (default: all of them) is one of:
  ${ALL_IMAGES[*]}

  --force     Rebuild, without the build cache, even an image that is up to date.
  -h, --help  This text.

An image is up to date when its ${HASH_LABEL} label matches its build context (the files
of its folder, the binaries built at the pinned versions) and the base image. When the base image is missing (and is the default one) or the engine on
${DEFAULT_DOCKER_HOST} does not answer, tests/live/docker-engine.sh makes them.

Environment: DOCKER_HOST (default ${DEFAULT_DOCKER_HOST}), BASE_IMAGE (default
${DEFAULT_BASE_IMAGE}), AI_FINANCE_STANDIN_BUILD_TIMEOUT (seconds per image, default 900).
EOF
}

info() { printf '[+] %s\n' "$*" >&2; }
warn() { printf '[x] %s\n' "$*" >&2; }
die() {
    warn "$@"
    exit 1
}

cleanup() {
    if [[ -n "${LOG_DIR}" && "${KEEP_LOGS}" == false ]]; then
        rm -rf -- "${LOG_DIR}"
    fi
}

is_known() {
    local name="$1" known
    for known in "${ALL_IMAGES[@]}"; do
        [[ "${known}" == "${name}" ]] && return 0
    done
    return 1
}

ensure_engine() {
    if timeout 20 docker info >/dev/null 2>&1; then
        return 0
    fi
    [[ "${DOCKER_HOST}" == "${DEFAULT_DOCKER_HOST}" ]] ||
        die "no Docker engine answers on ${DOCKER_HOST}"
    info "the engine does not answer; starting it with tests/live/docker-engine.sh"
    "${ENGINE_SCRIPT}" start >/dev/null
}

ensure_base_image() {
    if docker image inspect "${BASE_IMAGE}" >/dev/null 2>&1; then
        return 0
    fi
    [[ "${BASE_IMAGE}" == "${DEFAULT_BASE_IMAGE}" ]] ||
        die "base image ${BASE_IMAGE} is missing"
    info "base image ${BASE_IMAGE} is missing; building it with tests/live/docker-engine.sh"
    "${ENGINE_SCRIPT}" base-image
}

# The digest an image is labelled with: its folder's files (names and contents) and the base.
context_digest() {
    local dir="$1" base_id
    base_id="$(docker image inspect --format '{{.Id}}' "${BASE_IMAGE}")"
    {
        printf 'base %s\n' "${base_id}"
        (cd -- "${dir}" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    } | sha256sum | cut -d' ' -f1
}

built_digest() {
    docker image inspect --format "{{index .Config.Labels \"${HASH_LABEL}\"}}" "$1" 2>/dev/null ||
        true
}

# go_context NAME: a build context for a Go stand-in (its folder, bin/ with the binaries at the
# pinned version, module/ with upstream's files) under LOG_DIR; its path goes to CONTEXT, the
# labels to LABELS.
CONTEXT=""
LABELS=()
go_context() {
    local name="$1" program binary file module_dir pin module
    CONTEXT="${LOG_DIR}/context-${name}"
    rm -rf -- "${CONTEXT}"
    cp -r "${SCRIPT_DIR}/${name}" "${CONTEXT}"
    mkdir -p "${CONTEXT}/bin" "${CONTEXT}/module"
    for program in ${GO_BINARIES[${name}]}; do
        binary="$("${PINNED_GO}" "${program}")" || return 1
        cp "${binary}" "${CONTEXT}/bin/${program}"
    done
    program="${GO_BINARIES[${name}]%% *}"
    if [[ -n "${MODULE_FILES[${name}]:-}" ]]; then
        module_dir="$("${PINNED_GO}" --module-dir "${program}")" || return 1
        for file in ${MODULE_FILES[${name}]}; do
            cp "${module_dir}/${file}" "${CONTEXT}/module/"
        done
    fi
    read -r _ pin module < <("${PINNED_GO}" --describe "${program}")
    LABELS=(--label "${VERSION_LABEL}=${pin}" --label "${MODULE_LABEL}=${module}")
}

# build_one NAME FORCE: build (or skip) one image, with a time limit and progress lines.
build_one() {
    local name="$1" force="$2"
    local dir="${SCRIPT_DIR}/${name}" tag="${TAG_PREFIX}/${name}:${TAG_SUFFIX}"
    local digest log pid started elapsed rc=0 size
    local -a args=()
    [[ -f "${dir}/Dockerfile" ]] || die "${dir}/Dockerfile is missing"
    LABELS=()
    if [[ -n "${GO_BINARIES[${name}]:-}" ]]; then
        go_context "${name}" || {
            warn "${name}: could not build its Go programs at the pinned version"
            return 1
        }
        dir="${CONTEXT}"
    fi
    digest="$(context_digest "${dir}")"
    if [[ "${force}" == false && "$(built_digest "${tag}")" == "${digest}" ]]; then
        info "${tag} is up to date; skipping (--force rebuilds it)"
        printf '%s\n' "${tag}"
        return 0
    fi
    if [[ "${force}" == true ]]; then
        args+=(--no-cache)
    fi
    log="${LOG_DIR}/${name}.log"
    info "building ${tag} from ${BASE_IMAGE} (limit ${BUILD_TIMEOUT}s)"
    started="${SECONDS}"
    # --force-rm: a failed step leaves no stopped container behind.
    timeout --kill-after=30 "${BUILD_TIMEOUT}" docker build --force-rm "${args[@]}" \
        --build-arg "BASE_IMAGE=${BASE_IMAGE}" --label "${HASH_LABEL}=${digest}" "${LABELS[@]}" \
        --tag "${tag}" "${dir}" >"${log}" 2>&1 &
    pid=$!
    while kill -0 "${pid}" 2>/dev/null; do
        sleep 1
        elapsed=$((SECONDS - started))
        if ((elapsed > 0 && elapsed % PROGRESS_EVERY == 0)); then
            info "${name}: still building after ${elapsed}s ($(grep -c '^Step ' "${log}" || true) steps begun)"
        fi
    done
    wait "${pid}" || rc=$?
    elapsed=$((SECONDS - started))
    if ((rc != 0)); then
        KEEP_LOGS=true
        if ((rc == 124 || rc == 137)); then
            warn "${name}: the build passed its ${BUILD_TIMEOUT}s limit"
        fi
        warn "${name}: the build failed (exit ${rc}) after ${elapsed}s; the end of ${log}:"
        tail -n 40 -- "${log}" >&2
        return 1
    fi
    size="$(docker image inspect --format '{{.Size}}' "${tag}")"
    info "built ${tag} in ${elapsed}s ($((size / 1000000)) MB)"
    printf '%s\n' "${tag}"
}

main() {
    local force=false arg name failed=()
    local -a names=()
    for arg in "$@"; do
        case "${arg}" in
            --force) force=true ;;
            -h | --help)
                usage
                return 0
                ;;
            -*) die "unknown option ${arg} (see --help)" ;;
            *)
                is_known "${arg}" || die "unknown image ${arg}; known: ${ALL_IMAGES[*]}"
                names+=("${arg}")
                ;;
        esac
    done
    if ((${#names[@]} == 0)); then
        names=("${ALL_IMAGES[@]}")
    fi
    command -v docker >/dev/null 2>&1 || die "docker CLI not found (tests/live/docker-engine.sh start installs it)"
    ensure_engine
    ensure_base_image
    LOG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/ai-finance-standin.XXXXXX")"
    trap cleanup EXIT
    for name in "${names[@]}"; do
        build_one "${name}" "${force}" || failed+=("${name}")
    done
    # Images a rebuild superseded: untagged, labelled as stand-ins, used by no container.
    docker image prune --force --filter "label=${HASH_LABEL}" >/dev/null 2>&1 ||
        warn "could not prune superseded stand-in images"
    if ((${#failed[@]} > 0)); then
        die "failed: ${failed[*]} (logs kept in ${LOG_DIR})"
    fi
    info "all ${#names[@]} stand-in image(s) ready"
}

main "$@"
