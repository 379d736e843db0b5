#!/usr/bin/env bash
# The example third-party backend (plugins/bondctl-pyroute2), for the tests:
#  - installs it into .venv like a user would (not editable), so the kernel conformance suite,
#    which runs over every registered backend, runs over it too;
#  - fills .cache/wheels with wheels of bondctl, the plugin, every dependency and the build
#    tools, so tests/unit/test_plugins.py can install them into a fresh virtualenv offline
#    (User-Mode Linux and the tests have no network).
# Called from scripts/setup.sh; idempotent, and a no-op when nothing it depends on changed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

plugin=plugins/bondctl-pyroute2
wheels=.cache/wheels
python=.venv/bin/python
if [[ ! -x $python ]]; then
    echo "plugins: $python is missing: run scripts/setup.sh first" >&2
    exit 1
fi

stamp=.cache/plugins-stamp
want=$(find pyproject.toml "$plugin" -type f \( -name '*.py' -o -name '*.toml' -o -name '*.md' \) \
    -not -path '*/build/*' -not -path '*.egg-info/*' -print0 | sort -z | xargs -0 sha256sum |
    sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(<"$stamp") == "$want" ]] && ls "$wheels"/pyroute2-*.whl >/dev/null 2>&1 &&
    "$python" -c 'import bondctl_pyroute2' 2>/dev/null; then
    exit 0
fi

mkdir -p "$wheels"
# Our own two wheels are rebuilt every time (same version number, new contents).
rm -f "$wheels"/bondctl-*.whl "$wheels"/bondctl_pyroute2-*.whl
"$python" -m pip wheel -q --wheel-dir "$wheels" . "./$plugin"
# The build backend, so a stale bondctl or plugin wheel can be rebuilt offline by the tests.
"$python" -m pip download -q --dest "$wheels" --only-binary :all: 'setuptools>=77'

# Everything the plugin needs comes from the cache: nothing is looked up by name on an index,
# where someone else could publish a package called bondctl-pyroute2.
"$python" -m pip install -q --no-index --find-links "$wheels" pyroute2
"$python" -m pip install -q --no-index --find-links "$wheels" --no-deps --force-reinstall \
    "./$plugin"
echo "$want" >"$stamp"
echo "plugins: bondctl-pyroute2 installed in .venv; wheels in $wheels"
