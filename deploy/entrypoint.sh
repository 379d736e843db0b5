#!/bin/sh
# The bond-cni-installer container: install the bond plugin onto the node, then stay up.
# The install runs with the artifact's own bundled runtime (the image has no other Python) and
# is atomic and idempotent: a restarted or upgraded pod re-runs it safely while pods are being
# networked. Settings (the DaemonSet passes them):
#   BOND_ARTIFACT       the launcher in the image          (default /opt/bond/bond)
#   BOND_CNI_BIN_DIR    the node's CNI bin dir, mounted     (default /host/opt/cni/bin)
#   BOND_FORCE_INSTALL  "true" replaces a bond plugin that is not ours (bond-cni's Go binary)
set -eu

artifact=${BOND_ARTIFACT:-/opt/bond/bond}
dest=${BOND_CNI_BIN_DIR:-/host/opt/cni/bin}
runtime=$(dirname "$artifact")/.bond-runtime

set -- "$artifact" "$dest"
if [ "${BOND_FORCE_INSTALL:-false}" = true ]; then
    set -- "$@" --force
fi
"$runtime/lib/ld.so" --library-path "$runtime/lib" "$runtime/bin/python" -I -S -B \
    -m bondctl.cni_install "$@"

# A DaemonSet pod must keep running; exit promptly when the kubelet stops it.
trap 'exit 0' TERM INT
while :; do
    sleep 3600 &
    wait $! || true
done
