#!/usr/bin/env bash
# The project's main job on a fresh machine: installs torch 2.13.0 into .venv when missing (what
# `tch` needs), builds spikerc with feature `torch`, and runs `spikerc demo`: the shipped trained
# denoiser (models/trained/) on the shipped Kodak crop (assets/) — noise, compile to f16 and f32,
# run on the event-driven runtime, check against the libtorch reference — writing the restored
# image and report.json to out/demo (or `--out DIR`; other `spikerc demo` flags pass through).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
"$root/scripts/setup-torch.sh"
# shellcheck source=env.sh
source "$root/scripts/env.sh"
cd "$root"
cargo run --quiet --features torch -- demo "$@"
