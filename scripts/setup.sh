#!/usr/bin/env bash
# Prepares a fresh Debian 12 machine (as root) to develop and test bondctl.
# Idempotent and fast on a machine that is already set up: re-run it freely.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

# podman and friends are for the CNI end-to-end tests, which run inside User-Mode Linux:
# the host kernel has no bonding driver, UML's has.
packages=(
    iproute2 user-mode-linux kmod
    podman crun conmon containernetworking-plugins golang-github-containers-common
    busybox-static uidmap libteam-utils strace
    gcc libc6-dev
    ifupdown2 netplan.io libnm0
)

missing=()
for pkg in "${packages[@]}"; do
    if [[ $(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) != installed ]]; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# `nmcli --offline` checks the NetworkManager keyfiles bondctl exports. Installing the
# network-manager package would pull in udev and start it on this host: take only nmcli out
# of it (its library, libnm0, is installed above).
nmcli_dir=/var/cache/bondctl/nmcli
if [[ ! -x $nmcli_dir/usr/bin/nmcli ]]; then
    tmp=$(mktemp -d) && chmod 0755 "$tmp"  # apt-get download runs as _apt
    (cd "$tmp" && apt-get download -q network-manager)
    dpkg-deb -x "$tmp"/network-manager_*.deb "$tmp/root"
    install -D -m 0755 "$tmp/root/usr/bin/nmcli" "$nmcli_dir/usr/bin/nmcli"
    rm -rf "$tmp"
fi

# modprobe -d /usr/lib/uml looks in /usr/lib/uml/lib/modules/$(uname -r); the package ships
# the modules in /usr/lib/uml/modules/VERSION.
if [[ -d /usr/lib/uml/modules ]]; then
    mkdir -p /usr/lib/uml/lib/modules
    for dir in /usr/lib/uml/modules/*/; do
        version=$(basename "$dir")
        [[ -e /usr/lib/uml/lib/modules/$version ]] || ln -s "${dir%/}" "/usr/lib/uml/lib/modules/$version"
    done
fi

if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
# Reinstall only when the declared dependencies changed: pip is slow even as a no-op.
stamp=.venv/.bondctl-setup-stamp
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [[ ! -f $stamp || $(<"$stamp") != "$want" ]]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    echo "$want" >"$stamp"
fi

# The example third-party plugin (plugins/bondctl-pyroute2) joins the conformance suite, and its
# isolated-install test needs the wheels cached: UML has no network.
bash scripts/plugins.sh

# The self-contained bond plugin for /opt/cni/bin (a no-op when it is up to date); the kernel
# suite installs it and drives it through podman inside User-Mode Linux.
bash packaging/build-artifact.sh
