#!/usr/bin/env bash
# Builds the Python package (python/: PyO3 + maturin, pure Rust) into the project's virtual
# environment with `pip install ./python` and runs its pytest suite (python/tests), the Ray
# example included. The environment is $SPIKERC_VENV (default: .venv of the repository, the one
# scripts/setup-torch.sh makes; created here when missing). Idempotent: test dependencies are
# installed only when missing, and the wheel's cargo build is incremental (python/target).
# Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${SPIKERC_VENV:-$root/.venv}"
export SPIKERC_SHARED="${SPIKERC_SHARED:-$root/../shared}"
if [ ! -d "$SPIKERC_SHARED/fixtures" ]; then
  echo "test-python.sh: the shared fixtures are not at $SPIKERC_SHARED/fixtures; set SPIKERC_SHARED" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "test-python: creating $venv" >&2
  python3 -m venv "$venv"
fi
py="$venv/bin/python"
missing=()
for m in numpy pytest; do
  "$py" -c "import $m" 2>/dev/null || missing+=("$m")
done
if [ ${#missing[@]} -gt 0 ]; then
  "$py" -m pip install --quiet "${missing[@]}"
fi
if ! "$py" -c "import ray" 2>/dev/null; then
  t0=$(date +%s)
  if "$py" -m pip install --quiet ray; then
    echo "test-python: installed ray in $(( $(date +%s) - t0 )) s" >&2
  else
    echo "test-python: could not install ray; the Ray example's test will be skipped" >&2
  fi
fi
t0=$(date +%s)
# Build isolation fetches maturin (the build backend) from PyPI; --no-deps: numpy is there.
"$py" -m pip install --quiet --force-reinstall --no-deps "$root/python"
echo "test-python: pip install ./python took $(( $(date +%s) - t0 )) s" >&2
# From the repository root, so `import spikerc` is the installed package, not python/spikerc.
cd "$root"
exec "$py" -m pytest python/tests -rs "$@"
