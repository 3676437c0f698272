#!/usr/bin/env bash
# The project's test command: every test of every crate, feature `torch` included.
# Installs libtorch (torch==2.13.0 in .venv) first when missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup-torch.sh"
# shellcheck source=env.sh
source "$root/scripts/env.sh"
if [ ! -d "$SPIKERC_SHARED/fixtures" ]; then
  echo "test.sh: the shared fixtures are not at $SPIKERC_SHARED/fixtures; set SPIKERC_SHARED to the directory holding fixtures/ and data/ (default: ../shared next to the repository)" >&2
  exit 1
fi
cd "$root"
cargo test --workspace --features torch "$@"
