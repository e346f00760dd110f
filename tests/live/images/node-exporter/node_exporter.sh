#!/usr/bin/env bash
# /bin/node_exporter of the prom/node-exporter stand-in: Debian's prometheus-node-exporter (1.5)
# with upstream's defaults put back where Debian's packaging changed them, unless the arguments
# set those flags themselves (node_exporter refuses a flag given twice):
#
#   * the systemd collector is off (Debian turns it on; with no D-Bus in a container it fails
#     on every scrape and logs an error);
#   * no network device is excluded (Debian excludes lo, and its non-empty default makes
#     --collector.netdev.device-include fail as "mutually exclusive").
set -euo pipefail

systemd_default=true
netdev_default=true
for arg in "$@"; do
    case "${arg}" in
        --collector.systemd | --no-collector.systemd) systemd_default=false ;;
        --collector.netdev.device-exclude*) netdev_default=false ;;
        *) ;;
    esac
done
if [[ "${netdev_default}" == true ]]; then
    set -- --collector.netdev.device-exclude= "$@"
fi
if [[ "${systemd_default}" == true ]]; then
    set -- --no-collector.systemd "$@"
fi
exec /usr/bin/prometheus-node-exporter "$@"
