#!/bin/sh
# The bond-cni image's entrypoint:
#   (no argument)  install the bond plugin onto the node, then stay up (the install container)
#   agent          run the node agent, `bondctl agent` (the agent container; docs/deploy.md)
#   probe          exit 0 when the agent answers on its socket (the liveness probe)
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
python() {
    "$runtime/lib/ld.so" --library-path "$runtime/lib" "$runtime/bin/python" -I -S -B "$@"
}

case "${1:-}" in
agent) shift; exec "$runtime/lib/ld.so" --library-path "$runtime/lib" "$runtime/bin/python" \
    -I -S -B -m bondctl.cni.agent "$@" ;;
probe) exec "$runtime/lib/ld.so" --library-path "$runtime/lib" "$runtime/bin/python" \
    -I -S -B -m bondctl.cni.agent --probe ;;
esac

set -- "$artifact" "$dest"
if [ "${BOND_FORCE_INSTALL:-false}" = true ]; then
    set -- "$@" --force
fi
python -m bondctl.cni.install "$@"

# A DaemonSet pod must keep running; exit promptly when the kubelet stops it.
trap 'exit 0' TERM INT
while :; do
    sleep 3600 &
    wait $! || true
done
