#!/usr/bin/env bash
# fetch.sh - Prometheus's server and promtool, from Debian's prometheus
# package, for the deployment checks (scripts/validate-deploy.sh runs
# promtool) and the topology test (tests/topology.rs runs the server with
# deploy/prometheus/).
#
#   fetch.sh        make sure both are in the cache; print the cache folder,
#                   which then holds `prometheus` and `promtool`
#
# The package is downloaded and unpacked, not installed, so no Prometheus
# service is set up on the machine. Both binaries come from one download and
# are kept in ${RUNNEL_CACHE:-$HOME/.cache/runnel}/deploy-tools; each is
# renamed into place only when whole, so an interrupted fetch is redone.
set -euo pipefail

readonly tools="${RUNNEL_CACHE:-$HOME/.cache/runnel}/deploy-tools"
readonly binaries=(prometheus promtool)

have_all() {
    local binary
    for binary in "${binaries[@]}"; do
        [ -x "$tools/$binary" ] || return 1
    done
}

fetch() {
    printf '%s\n' "fetch.sh: fetching ${binaries[*]} from Debian's prometheus package (once)" >&2
    local work binary
    work=$(mktemp -d)
    # shellcheck disable=SC2064  # $work is fixed here
    trap "rm -rf '$work'" RETURN
    if ! (cd "$work" && apt-get download prometheus >/dev/null 2>&1); then
        apt-get update -qq
        (cd "$work" && apt-get download prometheus >/dev/null)
    fi
    dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
    for binary in "${binaries[@]}"; do
        install -m 0755 "$work/root/usr/bin/$binary" "$tools/$binary.part"
        mv "$tools/$binary.part" "$tools/$binary"
    done
}

mkdir -p "$tools"
have_all || fetch
echo "$tools"
