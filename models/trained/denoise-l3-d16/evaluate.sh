#!/usr/bin/env bash
# Reproduces the scores of this model card: the f16 artifact on the event runtime (and, with
# ENGINES="runtime torch", the checkpoint on libtorch f32) on CBSD68 and Kodak24 at sigma 15,
# 25 and 50 (noise seed 0), one eval-<set>-s<sigma>-<engine>.json per run, then the
# simulated latency and energy of one 256x256 image on ka200-like (sim-ka200-256.json).
# Usage: models/trained/denoise-l3-d16/evaluate.sh [OUT_DIR]   (default: this directory)
# Needs a build of spikerc (SPIKERC_BIN, default target/release/spikerc; feature torch for the
# libtorch runs).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${1:-$here}"
bin="${SPIKERC_BIN:-$root/target/release/spikerc}"
shared="${SPIKERC_SHARED:-$root/../shared}"
engines="${ENGINES:-runtime}"
sets="${SETS:-CBSD68 Kodak24}"
sigmas="${SIGMAS:-15 25 50}"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$bin" compile "$here/model.safetensors" --config "$here/meta.json" --precision f16 -o "$tmp/m16.spk" >/dev/null
for set in $sets; do
  lower="$(echo "$set" | tr '[:upper:]' '[:lower:]')"
  for sigma in $sigmas; do
    for engine in $engines; do
      case "$engine" in
        runtime) model=("$tmp/m16.spk"); tag="runtime-f16" ;;
        torch) model=("$here/model.safetensors" --config "$here/meta.json"); tag="torch-f32" ;;
        *) echo "evaluate.sh: unknown engine $engine" >&2; exit 1 ;;
      esac
      json="$out/eval-$lower-s$sigma-$tag.json"
      "$bin" eval "${model[@]}" --data "$shared/data/test/$set" --sigma "$sigma" --seed 0 \
        --threads 2 --quiet --json "$json" >/dev/null
      python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(f\"$set sigma $sigma $tag: {d['mean_psnr_db']:.3f} dB, SSIM {d['mean_ssim']:.4f} (input {d['mean_input_psnr_db']:.3f} dB, {len(d['images'])} images, {d['wall_ms']/1e3:.0f} s)\")" "$json"
    done
  done
done
if [ "${SIM:-1}" = 1 ]; then
  # The centre 256x256 crop of Kodak kodim01 (Pillow in the project venv), deployed as f16.
  py="${SPIKERC_VENV:-$root/.venv}/bin/python"
  "$py" -c "import PIL" 2>/dev/null || "$py" -m pip install --quiet pillow
  "$py" -c "
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert('RGB'); w, h = im.size; l, t = (w - 256) // 2, (h - 256) // 2
im.crop((l, t, l + 256, t + 256)).save(sys.argv[2])" "$shared/data/test/Kodak24/kodim01.png" "$tmp/crop.png"
  "$bin" compile "$here/model.safetensors" --config "$here/meta.json" --precision f16 \
    --target lynxi:ka200-like --input-size 256x256 -o "$tmp/dep" >/dev/null
  "$bin" simulate "$tmp/dep" --input "$tmp/crop.png" --report "$out/sim-ka200-256.json" >/dev/null
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"ka200-like, 256x256: {r['latency_ms']:.3f} ms, {r['energy_pj']/1e9:.3f} mJ per image ({r['paper_energy_pj']/1e9:.3f} mJ by the paper's Eq. 1), mean core utilisation {100*r['mean_utilisation']:.1f} %\")" "$out/sim-ka200-256.json"
fi
