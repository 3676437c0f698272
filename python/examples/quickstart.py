# %% [markdown]
# # spikerc from Python: quick start
#
# A notebook-style walk through the package (cells are `# %%` blocks: open it in Jupyter with
# jupytext, VS Code or Spyder, or run it as a script). It uses what ships with the repository:
# the trained denoiser `models/trained/denoise-l3-d8` and the Kodak crop in `assets/`, plus the
# CBSD68 test set from the shared data folder (`$SPIKERC_SHARED/data`, default `../shared`).
#
#     python python/examples/quickstart.py [--out DIR]

# %%
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import spikerc

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "trained" / "denoise-l3-d8"
IMAGE = REPO / "assets" / "kodim23-crop-128x96.png"
SHARED = Path(os.environ.get("SPIKERC_SHARED", REPO.parent / "shared"))

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--out", type=Path, default=REPO / "out" / "python-quickstart")
parser.add_argument("--eval-images", type=int, default=3, help="CBSD68 images to score (0: skip)")
args = parser.parse_args()
args.out.mkdir(parents=True, exist_ok=True)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two [0, 1] images."""
    return float(10 * np.log10(1.0 / np.mean((np.clip(a, 0, 1) - b) ** 2)))


# %% [markdown]
# ## Compile
# A checkpoint (`.safetensors`, or `.pt` where torch is installed) or a state_dict of arrays,
# with the hyperparameters from its `meta.json` (keywords override them). f16 is what the
# accelerator runs.

# %%
art = spikerc.compile(MODEL / "model.safetensors", config=MODEL / "meta.json", precision="f16")
print(art)
q = art.report["quantization"]
print(f"f16 quantization: max abs weight error {q['max_abs_error']:.2e} over {len(q['layers'])} layers")

# %% [markdown]
# ## Run on a noisy image
# Inputs are float32 `[N, 3, H, W]` in `[0, 1]`, any size. The stats are `spikerc run --stats`.

# %%
clean = spikerc.read_image(IMAGE)
rng = np.random.default_rng(0)
noisy = (clean + rng.normal(0, 25 / 255, clean.shape)).astype(np.float32)
restored, stats = art.run(noisy, threads=2)
total = stats["ops"]["total"]
print(f"noisy {psnr(noisy, clean):.2f} dB -> restored {psnr(restored, clean):.2f} dB")
print(f"{sum(stats['spikes'].values())} spikes, firing rate {total['spikes_out'] / total['neuron_updates']:.3f}, "
      f"{total['ac']} AC, {total['mac']} MAC, {stats['wall_ms']:.0f} ms on {stats['simd']}")

# %% [markdown]
# ## Save and load

# %%
art.save(args.out / "denoise-f16.spk")
again = spikerc.load(args.out / "denoise-f16.spk")
assert again.to_bytes() == art.to_bytes()

# %% [markdown]
# ## Deploy on the Lynxi-style accelerator and simulate
# The simulator runs the runtime's kernels: the output bits equal `run`'s.

# %%
h, w = clean.shape[2:]
dep = art.deploy(target="lynxi:ka200-like", input_size=(h, w))
print(dep)
y_sim, report = dep.simulate(noisy, report_html=args.out / "sim-report.html")
assert np.array_equal(y_sim.view(np.uint32), restored.view(np.uint32))
print(f"latency {report['latency_ms']:.3f} ms, energy {report['energy_pj'] / 1e9:.3f} mJ per image "
      f"(paper Eq. 1: {report['paper_energy_pj'] / 1e9:.3f} mJ, ANN equivalent "
      f"{report['ann_equivalent_energy_pj'] / 1e9:.3f} mJ)")
dep.save(args.out / "deploy")

# %% [markdown]
# ## Evaluate on CBSD68 (sigma 25)
# Per-image and mean PSNR/SSIM, with the same seeded noise as `spikerc eval`.

# %%
if args.eval_images > 0:
    scores = spikerc.evaluate(art, data=SHARED / "data" / "test" / "CBSD68", task="denoise", sigma=25,
                              limit=args.eval_images)
    for s in scores["images"]:
        print(f"  {s['name']}: {s['input_psnr_db']:.2f} -> {s['psnr_db']:.2f} dB, SSIM {s['ssim']:.4f}")
    print(f"mean PSNR {scores['mean_psnr_db']:.3f} dB, SSIM {scores['mean_ssim']:.4f} "
          f"over {len(scores['images'])} images")
print(f"outputs in {args.out}")
