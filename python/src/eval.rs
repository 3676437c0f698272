//! `spikerc.evaluate`: PSNR and SSIM of an artifact over a test folder, per image and mean, as
//! `spikerc eval` computes them (`spikerc_models::eval`: 8-bit RGB, seeded per-image noise).

use pyo3::prelude::*;
use spikerc_compiler::interp;
use spikerc_models::eval::{evaluate as eval_cases, EvalDocument, Task};
use spikerc_runtime::RunOptions;
use std::path::PathBuf;
use std::time::Instant;

use crate::artifact::Artifact;
use crate::convert::to_python;
use crate::{err, fail};

/// Scores `artifact` on the images of `data`.
///
/// `task` is `"denoise"` (clean images; Gaussian noise of `sigma` on the 0-255 scale, seeded
/// from `seed` and each file name) or `"derain"` / `"dehaze"` (`data/input` paired with
/// `data/target`). `limit` keeps the first N images by name. `engine` is `"event"` (the
/// runtime, `threads` workers) or `"interp"`. Returns the `spikerc eval --json` document
/// (`docs/json.md`): `{"schema_version", "task", "sigma", "seed", "images": [{"name",
/// "height", "width", "input_psnr_db", "psnr_db", "ssim"}], "mean_input_psnr_db",
/// "mean_psnr_db", "mean_ssim", "model", "engine", "precision", "data", "shard", "metrics",
/// "wall_ms"}`.
#[pyfunction]
#[pyo3(signature = (artifact, data, task="denoise", sigma=25.0, seed=0, limit=None, threads=0, engine="event"))]
#[allow(clippy::too_many_arguments)]
pub fn evaluate<'py>(
    py: Python<'py>,
    artifact: &Artifact,
    data: PathBuf,
    task: &str,
    sigma: f32,
    seed: u64,
    limit: Option<usize>,
    threads: usize,
    engine: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let task = match task {
        "denoise" => Task::Denoise { sigma, seed },
        "derain" => Task::Derain,
        "dehaze" => Task::Dehaze,
        _ => {
            return Err(fail(format!(
                "task `{task}`: expected \"denoise\", \"derain\" or \"dehaze\""
            )))
        }
    };
    if engine != "event" && engine != "interp" {
        return Err(fail(format!(
            "engine `{engine}`: expected \"event\" or \"interp\""
        )));
    }
    if limit == Some(0) {
        return Err(fail("limit must be at least 1"));
    }
    let art = &artifact.art;
    let opts = RunOptions {
        threads,
        profile: false,
    };
    let t0 = Instant::now();
    let report = py
        .detach(|| -> anyhow::Result<_> {
            let mut cases = task.cases(&data)?;
            if let Some(l) = limit {
                cases.truncate(l);
            }
            let program = (engine == "event").then(|| artifact.program());
            let restore = |x: &interp::Array| match &program {
                Some(p) => p
                    .run(x, &opts)
                    .map(|mut r| r.outputs.swap_remove(0))
                    .map_err(|e| e.to_string()),
                None => interp::run(&art.graph, x)
                    .map(|mut e| e.outputs.swap_remove(0))
                    .map_err(|e| e.to_string()),
            };
            Ok(eval_cases(
                task,
                &cases,
                art.graph.spatial_divisor(),
                restore,
                |_, _, _| {},
            )?)
        })
        .map_err(err)?;
    let doc = EvalDocument::new(
        art.meta.source.clone(),
        if engine == "event" { "runtime" } else { "interp" }.to_string(),
        art.meta.precision.to_string(),
        data.display().to_string(),
        None,
        report,
        t0.elapsed().as_secs_f64() * 1e3,
    );
    to_python(py, &doc)
}
