# Sourced by the setup scripts: create or reuse the project's virtual environment and install the project.
# KSEFNET_VENV chooses the venv folder (default: .venv in the repository).
# Sourced scripts keep their own error handling: no `set -e` here (it would leak into them).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${KSEFNET_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating virtual environment $VENV"
  "$PY" -m venv "$VENV" || exit 1
fi
STAMP="$VENV/.ksefnet-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ] || [ "$ROOT/requirements.txt" -nt "$STAMP" ]; then
  echo "==> installing the project and its test tools into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip || exit 1
  "$VENV/bin/python" -m pip install -q -r "$ROOT/requirements.txt" || exit 1
  "$VENV/bin/python" -m pip install -q -e "$ROOT[test]" || exit 1
  touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
