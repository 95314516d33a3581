#!/usr/bin/env bash
# Run the test suite (installs what it needs first). Extra arguments go to pytest, e.g.
#   bash scripts/test.sh -m slow         # the long tier
#   bash scripts/test.sh tests/models    # one folder
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
# CI and smoke runs: notebooks and recipes take their seconds-long settings.
if [ "${CI:-}" = "true" ]; then export BIOSEQ_SMOKE=1; fi
exec python -m pytest -m "not slow and not gpu" -p no:cacheprovider "$@"
