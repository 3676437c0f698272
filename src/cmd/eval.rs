//! `spikerc eval MODEL --data DIR --task denoise|derain|dehaze [--sigma 25] [--seed 0]
//! [--engine auto|interp|torch] [--precision f32|f16] [--limit N] [--json FILE]`
//!
//! PSNR and SSIM of a model over a test set, per image and mean (definitions in
//! `spikerc_models::eval`). MODEL is a compiled artifact (run by the event-driven runtime, or the
//! reference interpreter with `--engine interp`) or a checkpoint (run by libtorch with feature
//! `torch`, or compiled now at `--precision` and run by the runtime / interpreter). Denoising noise is seeded per image from `--seed`
//! and the file name, so every run gives the same numbers.

use anyhow::{bail, Context};
use clap::{Args as ClapArgs, ValueEnum};
use serde_json::json;
use spikerc_compiler::passes::Precision;
use spikerc_compiler::Artifact;
use spikerc_models::eval::{evaluate, Task};
use std::path::PathBuf;
use std::time::Instant;

use super::HyperOpts;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EvalTask {
    /// Additive white Gaussian noise on clean images (`--sigma`).
    Denoise,
    /// `input/` + `target/` pairs.
    Derain,
    /// `input/` + `target/` pairs.
    Dehaze,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EvalEngine {
    /// Artifacts: the runtime; checkpoints: libtorch (feature `torch`), else the runtime.
    Auto,
    /// The event-driven runtime (bit-identical to the interpreter, much faster).
    Runtime,
    /// The reference interpreter (checkpoints are compiled first at `--precision`).
    Interp,
    /// The libtorch reference (checkpoints only; feature `torch`).
    Torch,
}

#[derive(ClapArgs)]
pub struct Args {
    /// A compiled artifact or a checkpoint (.safetensors / .pt).
    pub model: PathBuf,
    /// Test folder: images (denoise) or `input/` + `target/` (derain, dehaze).
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long, value_enum, default_value = "denoise")]
    pub task: EvalTask,
    /// Noise standard deviation on the 0-255 scale (denoise).
    #[arg(long, default_value_t = 25.0)]
    pub sigma: f32,
    /// Base seed of the per-image noise (denoise).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value = "auto")]
    pub engine: EvalEngine,
    /// Precision to compile a checkpoint at for `--engine interp`.
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
    #[command(flatten)]
    pub hyper: HyperOpts,
    /// Evaluate the first N images only (sorted by name).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Write the report (per image and mean) as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Runtime worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print only the summary line.
    #[arg(long)]
    pub quiet: bool,
}

fn is_artifact(path: &std::path::Path) -> anyhow::Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 8];
    let mut f =
        std::fs::File::open(path).with_context(|| format!("{}: cannot open", path.display()))?;
    let n = f
        .read(&mut head)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(Artifact::sniff(&head[..n]))
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let mut outs = crate::outputs::Outputs::new();
    outs.input(&a.model).input(&a.data);
    if let Some(p) = &a.json {
        outs.claim(p, "--json")?;
    }
    let task = match a.task {
        EvalTask::Denoise => Task::Denoise {
            sigma: a.sigma,
            seed: a.seed,
        },
        EvalTask::Derain => Task::Derain,
        EvalTask::Dehaze => Task::Dehaze,
    };
    let mut cases = task.cases(&a.data)?;
    if let Some(l) = a.limit {
        if l == 0 {
            bail!("--limit must be at least 1");
        }
        cases.truncate(l);
    }
    let artifact = is_artifact(&a.model)?;
    use spikerc_check::{Engine, EngineKind};
    let art: Option<Artifact> = match (artifact, a.engine) {
        (true, EvalEngine::Torch) => bail!(
            "{}: is a compiled artifact; --engine torch needs a checkpoint",
            a.model.display()
        ),
        (true, _) => Some(Artifact::load(&a.model)?),
        (false, EvalEngine::Auto | EvalEngine::Torch) => None,
        (false, _) => Some(spikerc_models::compile_checkpoint(
            &a.model,
            &a.hyper.resolve()?,
            a.precision,
        )?),
    };
    let engine: Box<dyn Engine> = match &art {
        Some(art) => {
            let kind = if a.engine == EvalEngine::Interp { EngineKind::Interp } else { EngineKind::Event };
            spikerc_check::engine::artifact_engine(kind, art, a.threads, false, None, None)?
        }
        #[cfg(feature = "torch")]
        None => Box::new(spikerc_check::torch::Torch::new(
            &spikerc_models::Checkpoint::load(&a.model)?,
            &a.hyper.resolve()?,
        )?),
        #[cfg(not(feature = "torch"))]
        None => bail!("--engine torch needs spikerc built with the `torch` feature"),
    };
    let (engine_name, precision, divisor) = match &art {
        Some(art) => (
            if a.engine == EvalEngine::Interp { "interp" } else { "runtime" },
            art.meta.precision.to_string(),
            art.graph.spatial_divisor(),
        ),
        None => ("torch", "f32".to_string(), engine.divisor()),
    };
    let t0 = Instant::now();
    let quiet = a.quiet;
    let report = evaluate(
        task,
        &cases,
        divisor,
        |x| {
            engine
                .run_padded(x, &spikerc_check::engine::nothing)
                .map(|mut r| r.outputs.swap_remove(0))
                .map_err(|e| format!("{e:#}"))
        },
        |i, s| {
            if !quiet {
                eprintln!(
                    "[{}/{}] {}: PSNR {:.3} dB (input {:.3}) SSIM {:.4}",
                    i + 1,
                    cases.len(),
                    s.name,
                    s.psnr,
                    s.input_psnr,
                    s.ssim
                );
            }
        },
    )?;
    let wall = t0.elapsed().as_secs_f64();
    let task_desc = match task {
        Task::Denoise { sigma, seed } => format!("denoise sigma {sigma} seed {seed}"),
        Task::Derain => "derain".into(),
        Task::Dehaze => "dehaze".into(),
    };
    if let Some(p) = &a.json {
        let doc = json!({
            "model": a.model.display().to_string(),
            "engine": engine_name,
            "precision": precision,
            "data": a.data.display().to_string(),
            "report": report,
            "metrics": "PSNR and SSIM on 8-bit RGB (output clamped to [0,1], x255, rounded); SSIM: 11x11 Gaussian sigma 1.5, K1 0.01, K2 0.03, valid windows, mean over R,G,B",
            "wall_seconds": wall,
        });
        outs.write(p, &serde_json::to_vec_pretty(&doc)?)?;
    }
    outs.commit()?;
    println!(
        "{} [{engine_name} {precision}] on {} ({}, {} images): PSNR {:.3} dB (input {:.3}), SSIM {:.4} in {:.1}s",
        a.model.display(),
        a.data.display(),
        task_desc,
        report.images.len(),
        report.mean_psnr,
        report.mean_input_psnr,
        report.mean_ssim,
        wall
    );
    Ok(())
}
