#!/usr/bin/env bash
# The project's test command: every test of every crate with feature `torch`, then the
# pure-Rust configuration (no `torch` feature: the build users without libtorch get; all
# targets built, the unit tests and the integration tests whose paths differ run), then the
# Python package (built into the project venv) and its pytest suite.
# Installs libtorch (torch==2.13.0 in .venv) first when missing. Extra arguments go to the
# first `cargo test`.
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
echo "test.sh: pure-Rust configuration (no torch feature): every target builds; unit tests and the tests whose code paths differ without torch run" >&2
cargo build --workspace --all-targets
cargo test --workspace --lib --bins --test pt_import --test errors --test runtime_cli --test fuzz_replay --test campaign
if [ -x "$root/scripts/test-python.sh" ]; then
  echo "test.sh: Python package" >&2
  "$root/scripts/test-python.sh"
fi
