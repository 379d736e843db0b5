#!/usr/bin/env bash
# Builds the self-contained bond CNI plugin: dist/bond + dist/.bond-runtime (see
# packaging/build_artifact.py for the layout). Needs the project's .venv (scripts/setup.sh)
# and a C compiler with a static libc (gcc, libc6-dev). A no-op when nothing changed.
#   bash packaging/build-artifact.sh [--out DIR] [--force]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec "$repo/.venv/bin/python" -I "$repo/packaging/build_artifact.py" "$@"
