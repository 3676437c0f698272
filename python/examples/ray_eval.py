"""A dataset x artifact sweep fanned out as Ray tasks through the spikerc Python package.

Every (artifact, dataset) pair is one Ray task that calls `spikerc.evaluate` (the engines run
with the GIL released, each task on its own core); artifacts travel to the workers through
Ray's object store as their `.spk` bytes (they pickle as `spikerc.loads(bytes)`). On a laptop
this is a local Ray instance; pointed at a cluster (`--address`), the same code fans out over
its nodes, given the package and the data on each.

    python python/examples/ray_eval.py [--model DIR] [--data CBSD68 Kodak24] [--limit 4]
                                       [--sigma 25] [--num-cpus 2] [--json OUT.json]

Prints a table (mean PSNR / SSIM per artifact and dataset) and optionally writes every
per-image score as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Optional

import spikerc

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SPIKERC_SHARED", REPO.parent / "shared"))


def sweep(artifacts: dict, datasets: dict, sigma: float = 25.0, limit: Optional[int] = None) -> list:
    """Scores every artifact on every dataset, one Ray task per pair (Ray must be initialised).

    Returns one dict per pair: `artifact`, `dataset` and the `spikerc.evaluate` result.
    """
    import ray

    @ray.remote(num_cpus=1)
    def score(art: spikerc.Artifact, art_name: str, data_name: str, data: str) -> dict:
        r = spikerc.evaluate(art, data, task="denoise", sigma=sigma, limit=limit, threads=1)
        return {"artifact": art_name, "dataset": data_name, **r}

    refs = {name: ray.put(art) for name, art in artifacts.items()}  # shipped once, shared by tasks
    tasks = [score.remote(refs[a], a, d, str(path)) for a in artifacts for d, path in datasets.items()]
    return ray.get(tasks)


def table(results: list) -> str:
    rows = [f"{'artifact':<10} {'dataset':<10} {'images':>6} {'input dB':>9} {'PSNR dB':>8} {'SSIM':>7}"]
    for r in results:
        rows.append(f"{r['artifact']:<10} {r['dataset']:<10} {len(r['images']):>6} "
                    f"{r['mean_input_psnr_db']:>9.3f} {r['mean_psnr_db']:>8.3f} {r['mean_ssim']:>7.4f}")
    return "\n".join(rows)


def main(argv: Optional[list] = None) -> list:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=REPO / "models" / "trained" / "denoise-l3-d8",
                   help="folder with model.safetensors and meta.json")
    p.add_argument("--data", nargs="+", default=["CBSD68", "Kodak24"],
                   help="test sets: names under $SPIKERC_SHARED/data/test or folders")
    p.add_argument("--limit", type=int, default=4, help="images per dataset (first N by name)")
    p.add_argument("--sigma", type=float, default=25.0)
    p.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray instance")
    p.add_argument("--address", default=None, help="an existing Ray cluster instead of a local one")
    p.add_argument("--json", type=Path, default=None, help="write every per-image score here")
    a = p.parse_args(argv)

    import ray

    artifacts = {
        prec: spikerc.compile(a.model / "model.safetensors", config=a.model / "meta.json", precision=prec)
        for prec in ("f32", "f16")
    }
    datasets = {Path(d).name: (Path(d) if Path(d).is_dir() else SHARED / "data" / "test" / d) for d in a.data}
    started = not ray.is_initialized()
    if started:
        if a.address:
            ray.init(address=a.address)
        else:
            # A loaded 2-core machine can take longer than Ray's default to start its raylet.
            os.environ.setdefault("RAY_raylet_start_wait_time_s", "120")
            ray.init(num_cpus=a.num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        results = sweep(artifacts, datasets, sigma=a.sigma, limit=a.limit)
    finally:
        if started:
            ray.shutdown()
    print(table(results))
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
