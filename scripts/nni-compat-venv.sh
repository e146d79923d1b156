#!/usr/bin/env bash
# Create an isolated NNI virtual environment under build/ (never in the project's .venv):
#   scripts/nni-compat-venv.sh            -> build/nni-2.10.1  (the last NNI with OpenPAI support; compat tests)
#   scripts/nni-compat-venv.sh 3.0        -> build/nni-3.0     (what the experiments service runs; PAI_NNI_PYTHON)
# Idempotent: an existing venv whose nnictl answers the right version is kept. Prints the venv path.
set -euo pipefail
VERSION="${1:-2.10.1}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${NNI_VENV_DIR:-$ROOT/build/nni-$VERSION}"
PY="${PYTHON:-python3}"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import nni, sys; sys.exit(nni.__version__ != '$VERSION')" 2>/dev/null; then
  echo "$VENV"; exit 0
fi
rm -rf "$VENV"
"$PY" -m venv "$VENV" >&2
"$VENV/bin/pip" install -q --disable-pip-version-check "nni==$VERSION" >&2
"$VENV/bin/python" -c "import nni; assert nni.__version__ == '$VERSION', nni.__version__" >&2
echo "$VENV"
