#!/usr/bin/env bash
# Locks the functions' deployed dependencies: resolves functions/requirements.in
# for the functions' runtime (CPython 3.12 on x86_64 Linux, as python312 in
# deploy/functions.tf) with uv's `pip compile --generate-hashes`, and writes
# the result as every functions/<name>/requirements.txt: exact versions, and
# the hashes pip then checks when Cloud Build installs them.
#
#   tools/lock.sh
#
# Run it after changing functions/requirements.in (it needs the package
# index). Each lock's header records the SHA-256 of the input it was made
# from; tests/deploy/test_packaging.py fails while a lock is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/venv.sh >/dev/null

input=functions/requirements.in
digest=$(sha256sum "$input" | cut -d' ' -f1)
resolved=$(mktemp)
trap 'rm -f "$resolved"' EXIT
# Start from the current lock: uv keeps its pins where they still satisfy the
# input, so adding one requirement does not upgrade everything else.
grep -v '^#' functions/sync/requirements.txt >"$resolved" || true
uv pip compile "$input" --quiet --no-header --generate-hashes \
  --python-version 3.12 --python-platform x86_64-manylinux_2_28 --output-file "$resolved"
for name in planner shard sync; do
  {
    echo "# Locked by tools/lock.sh from functions/requirements.in (sha256 $digest)"
    echo "# for CPython 3.12 on x86_64 Linux. Do not edit: change the .in file and rerun."
    cat "$resolved"
  } >"functions/$name/requirements.txt"
done
echo "lock.sh: locked functions/{planner,shard,sync}/requirements.txt" >&2
