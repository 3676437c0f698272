#!/usr/bin/env bash
# The README's accelerator table: the paper configuration (gen-model --levels 4 --dim 48
# --blocks 2 --seed 1, 23.6 M parameters, T = 4) compiled for a preset with every schedule
# and simulated on the centre 256x256 crop of Kodak kodim01. Prints one Markdown row per
# schedule (latency, energy, DRAM share, DRAM moved, mean core utilisation, compile wall
# time) and the lower bound, with the host CPU. Also checks each simulated output against
# `spikerc run` of the same f16 artifact (bit for bit).
#
# Usage: scripts/paper-mapping.sh [PRESET] [OUT_DIR]   (default ka200-like, target/paper-mapping)
# Needs a release build (cargo build --release) and Pillow in the venv for the crop.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
preset="${1:-ka200-like}"
out="${2:-$root/target/paper-mapping}"
bin="${SPIKERC_BIN:-$root/target/release/spikerc}"
py="${SPIKERC_VENV:-$root/.venv}/bin/python"
shared="${SPIKERC_SHARED:-$root/../shared}"
mkdir -p "$out"
cd "$out"
[ -f paper.safetensors ] || "$bin" gen-model --levels 4 --dim 48 --blocks 2 --seed 1 -o paper.safetensors >/dev/null
"$py" -c "import PIL" 2>/dev/null || "$py" -m pip install --quiet pillow
"$py" - "$shared/data/test/Kodak24/kodim01.png" kodim01-256.png <<'EOF'
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
w, h = im.size
l, t = (w - 256) // 2, (h - 256) // 2
im.crop((l, t, l + 256, t + 256)).save(sys.argv[2])
EOF
"$bin" compile paper.safetensors --config paper.json --precision f16 -o paper16.spk >/dev/null
"$bin" run paper16.spk --input kodim01-256.png --output run.safetensors >/dev/null
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "host: $cpu, $(nproc) cores; preset $preset; spikerc $("$bin" --version | cut -d' ' -f2)"
echo "| schedule | latency | energy / image | DRAM share | DRAM moved | mean core util. | hops/byte placed (serpentine) | compile |"
echo "|---|---|---|---|---|---|---|---|"
for s in layer-serial pipelined fused auto; do
  rm -rf "dep-$s"
  t0=$(date +%s.%N)
  "$bin" compile paper.safetensors --config paper.json --target "lynxi:$preset" --input-size 256x256 --schedule "$s" -o "dep-$s" >/dev/null
  t1=$(date +%s.%N)
  "$bin" simulate "dep-$s" --input kodim01-256.png --output "sim-$s.safetensors" --report "r-$s.json" >/dev/null
  "$py" - "r-$s.json" "$s" "$(echo "$t1 - $t0" | bc)" "sim-$s.safetensors" run.safetensors <<'EOF'
import json, sys
from safetensors.numpy import load_file
r = json.load(open(sys.argv[1]))
a, b = load_file(sys.argv[4])["output"], load_file(sys.argv[5])["output"]
same = a.shape == b.shape and a.tobytes() == b.tobytes()
dram = sum(v for k, v in r["energy_by_action_pj"].items() if "dram" in k)
print(f"| `{sys.argv[2]}` | {r['latency_ms']:.1f} ms | {r['energy_pj'] / 1e12:.3f} J | {100 * dram / r['energy_pj']:.1f} % "
      f"| {r['ops']['dram_bytes'] / 2**30:.2f} GiB | {100 * r['mean_utilisation']:.1f} % "
      f"| {r['hops_per_byte_placed_estimate']:.2f} ({r['hops_per_byte_serpentine_estimate']:.2f}) | {float(sys.argv[3]):.1f} s |"
      + ("" if same else " OUTPUT DIFFERS FROM run"))
if sys.argv[2] == "auto":
    lb = r["lower_bound"]
    print(f"| lower bound | {lb['latency_ms']:.1f} ms | {lb['energy_pj'] / 1e12:.3f} J | | "
          f"{lb['compulsory_dram_bytes'] / 2**30:.2f} GiB compulsory | | | |")
    modes = {}
    for st in r["stages"]:
        modes[st["mode"]] = modes.get(st["mode"], 0) + 1
    print(f"auto stages: {modes}; measured hops per spike {r['hops_per_spike']:.2f}")
EOF
done
