#!/usr/bin/env bash
# Creates the project-local virtual environment with torch==2.13.0 (what tch 0.26 needs)
# unless it is already there. Idempotent; needs python3 >= 3.10 and access to PyPI.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${SPIKERC_VENV:-$root/.venv}"
want="2.13.0"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import torch,sys; sys.exit(0 if torch.__version__.split('+')[0]=='$want' else 1)" 2>/dev/null; then
  exit 0
fi
echo "setup-torch: installing torch==$want into $venv (about 2.6 GB, once)" >&2
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet "torch==$want" "numpy" "safetensors"
"$venv/bin/python" -c "import torch; print('setup-torch: torch', torch.__version__)" >&2
