//! `spikerc.evaluate`: PSNR and SSIM of an artifact over a test folder, per image and mean, as
//! `spikerc eval` computes them (`spikerc_models::eval`: 8-bit RGB, seeded per-image noise).

use pyo3::prelude::*;
use serde_json::{json, Value};
use spikerc_compiler::interp;
use spikerc_models::eval::{evaluate as eval_cases, Task};
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
/// runtime, `threads` workers) or `"interp"`. Returns `{"task", "images": [{"name", "height",
/// "width", "input_psnr", "psnr", "ssim"}], "mean_input_psnr", "mean_psnr", "mean_ssim",
/// "engine", "precision", "data", "wall_seconds"}`.
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
                |_, _| {},
            )?)
        })
        .map_err(err)?;
    let mut doc = serde_json::to_value(&report).map_err(|e| fail(e.to_string()))?;
    if let Value::Object(m) = &mut doc {
        m.insert("engine".into(), json!(engine));
        m.insert("precision".into(), json!(art.meta.precision.to_string()));
        m.insert("data".into(), json!(data.display().to_string()));
        m.insert("wall_seconds".into(), json!(t0.elapsed().as_secs_f64()));
    }
    to_python(py, &doc)
}
