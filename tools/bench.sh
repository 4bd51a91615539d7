#!/usr/bin/env bash
# Runs the benchmark (the tools/bench package) in .venv, with matplotlib for the plot.
# Arguments go to the benchmark, e.g. tools/bench.sh --sizes 1000,5000
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/venv.sh
python -m pip install --quiet -r requirements-bench.txt
exec python -m tools.bench "$@"
