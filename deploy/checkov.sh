#!/usr/bin/env bash
# Runs checkov on deploy/ exactly as CI does: every check must pass, and every
# skip carries its reason on the line that skips it (#checkov:skip=ID:reason).
#
#   deploy/checkov.sh [extra checkov arguments]
#
# checkov has heavy dependencies, so it lives in a venv of its own:
# $CHECKOV_VENV (default ${TMPDIR:-/tmp}/checkov-venv), created and filled on
# first use from PyPI. The version is pinned so that a new release's checks
# cannot fail a build that did not change.
set -euo pipefail

version=3.3.30
venv=${CHECKOV_VENV:-${TMPDIR:-/tmp}/checkov-venv}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if ! "$venv/bin/checkov" --version 2>/dev/null | grep -qx "$version"; then
  echo "checkov.sh: installing checkov $version into $venv" >&2
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$version"
fi

cd "$repo"
# --skip-download: use the checks shipped with checkov and ask no platform.
exec "$venv/bin/checkov" -d deploy --quiet --compact --skip-download "$@"
