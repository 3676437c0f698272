# Source this file: sets what `tch` (feature `torch`) needs to build and run against the
# project-local libtorch 2.13.0 installed by scripts/setup-torch.sh.
SPIKERC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export SPIKERC_VENV="${SPIKERC_VENV:-$SPIKERC_ROOT/.venv}"
export PATH="$SPIKERC_VENV/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
export LIBTORCH_BYPASS_VERSION_CHECK="${LIBTORCH_BYPASS_VERSION_CHECK:-0}"
_torch_lib="$(ls -d "$SPIKERC_VENV"/lib/python3*/site-packages/torch/lib 2>/dev/null | head -n1)"
if [ -n "$_torch_lib" ]; then
  export SPIKERC_TORCH_LIB="$_torch_lib"
  export LD_LIBRARY_PATH="$_torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
unset _torch_lib
export SPIKERC_SHARED="${SPIKERC_SHARED:-$SPIKERC_ROOT/../shared}"
