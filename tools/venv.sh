# Sourced by the tools/*.sh scripts: creates .venv with requirements.txt once,
# refreshes it when requirements change, and activates it. pip's own output is
# kept in .venv/setup.log and shown only when the set-up fails.
PYTHON=${PYTHON:-python3}
stamp=.venv/.requirements-installed
if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ shared/pyproject.toml -nt "$stamp" ]; then
  echo "setting up .venv from requirements.txt (first run, or the requirements changed)…" >&2
  mkdir -p .venv
  if ! {
    { [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv; } \
      && .venv/bin/python -m pip install --upgrade pip \
      && .venv/bin/python -m pip install -r requirements.txt
  } >.venv/setup.log 2>&1; then
    cat .venv/setup.log >&2
    echo "setting up .venv failed; the output above is also in .venv/setup.log" >&2
    exit 1
  fi
  touch "$stamp"
fi
source .venv/bin/activate
