#!/usr/bin/env bash
# Runs the whole test suite: creates .venv if needed, installs requirements.txt,
# then runs pytest (the tests start and stop the emulators themselves).
# Extra arguments go to pytest, e.g. tools/test.sh -k sync -x
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/prerequisites.sh
check_prerequisites redis || echo "Until then the tests that need them are skipped, each with a warning; the rest run." >&2
source tools/venv.sh
exec python -m pytest "$@"
