#!/usr/bin/env bash
# Runs the whole job locally on the emulators (see tools/local_stack.py):
# creates .venv if needed, then starts everything, syncs demo builds, and stops
# everything again; with --keep it runs until Ctrl-C for you to drive by hand.
# Arguments go to tools/local_stack.py (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v gcloud >/dev/null; then
  echo "gcloud is not installed: install the Google Cloud CLI with the datastore and pubsub emulators" >&2
  exit 2
fi
source tools/venv.sh
exec python -m tools.local_stack "$@"
