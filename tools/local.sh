#!/usr/bin/env bash
# Runs the whole job locally on the emulators (see tools/local_stack.py):
# creates .venv if needed, then starts everything, syncs demo builds, and stops
# everything again; with --keep it runs until Ctrl-C for you to drive by hand.
# Arguments go to tools/local_stack.py (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/prerequisites.sh
check_prerequisites || exit 2
source tools/venv.sh
exec python -m tools.local_stack "$@"
