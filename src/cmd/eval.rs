//! `spikerc eval MODEL --data DIR --task denoise|derain|dehaze [--sigma 25] [--seed 0]
//! [--engine auto|interp|torch] [--precision f32|f16] [--limit N] [--shard K/N] [--save DIR]
//! [--json FILE]` and `spikerc eval merge A.json B.json ... --json ALL.json`
//!
//! PSNR and SSIM of a model over a test set, per image and mean (definitions in
//! `spikerc_models::eval`). MODEL is a compiled artifact (run by the event-driven runtime, or the
//! reference interpreter with `--engine interp`) or a checkpoint (run by libtorch with feature
//! `torch`, or compiled now at `--precision` and run by the runtime / interpreter). Denoising noise is seeded per image from `--seed`
//! and the file name, so every run gives the same numbers; `--shard K/N` scores every N-th image
//! by name (`spikerc_models::shard`) and `merge` joins the shards' documents into the one an
//! unsharded run writes (`spikerc_models::eval::merge`).

use anyhow::{bail, Context};
use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use spikerc_compiler::passes::Precision;
use spikerc_compiler::Artifact;
use spikerc_models::eval::{evaluate, merge, EvalDocument, Task};
use spikerc_models::shard::Shard;
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
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Examples:\n  spikerc eval model.spk --data ../shared/data/test/CBSD68 --sigma 25 --json cbsd68.json\n  spikerc eval model.spk --data DIR --shard 2/4 --json part2.json   # one of 4 jobs\n  spikerc eval merge part1.json part2.json part3.json part4.json --json all.json"
)]
pub struct Args {
    #[command(subcommand)]
    pub merge: Option<Sub>,
    /// A compiled artifact or a checkpoint (.safetensors / .pt).
    #[arg(required = true)]
    pub model: Option<PathBuf>,
    /// Test folder: images (denoise) or `input/` + `target/` (derain, dehaze).
    #[arg(long, required = true)]
    pub data: Option<PathBuf>,
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
    /// Write the report (per image and mean) as JSON (fields: docs/json.md).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Score only shard K of N (every N-th image by file name, 1 <= K <= N); join the shards'
    /// --json documents with `spikerc eval merge`.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Save the restored images into DIR (8-bit PNG, named after the input).
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Runtime worker threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Print only the summary line.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Subcommand)]
pub enum Sub {
    /// Join the --json documents of `eval --shard K/N` runs (every shard once) into the
    /// document of the whole evaluation.
    Merge(MergeArgs),
}

#[derive(ClapArgs)]
pub struct MergeArgs {
    /// The shards' `eval --json` documents.
    #[arg(required = true)]
    pub parts: Vec<PathBuf>,
    /// The merged document.
    #[arg(long)]
    pub json: PathBuf,
}

/// `spikerc eval merge`.
fn merge_main(m: MergeArgs) -> anyhow::Result<()> {
    let mut outs = crate::outputs::Outputs::new();
    for p in &m.parts {
        outs.input(p);
    }
    outs.claim(&m.json, "--json")?;
    let mut docs = vec![];
    for p in &m.parts {
        let text = std::fs::read_to_string(p).with_context(|| format!("{}: cannot read", p.display()))?;
        let name = p.display().to_string();
        docs.push((name.clone(), EvalDocument::parse(&text, &name).map_err(anyhow::Error::msg)?));
    }
    let doc = merge(&docs).map_err(anyhow::Error::msg)?;
    outs.write(&m.json, &serde_json::to_vec_pretty(&doc)?)?;
    outs.commit()?;
    println!(
        "merged {} shards of {} on {} ({} images): PSNR {:.3} dB (input {:.3}), SSIM {:.4} -> {}",
        docs.len(),
        doc.model,
        doc.data,
        doc.report.images.len(),
        doc.report.mean_psnr,
        doc.report.mean_input_psnr,
        doc.report.mean_ssim,
        m.json.display()
    );
    Ok(())
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
    if let Some(Sub::Merge(m)) = a.merge {
        return merge_main(m);
    }
    let (Some(model), Some(data)) = (a.model.clone(), a.data.clone()) else {
        bail!("eval needs MODEL and --data DIR (or: spikerc eval merge A.json B.json --json ALL.json)");
    };
    let mut outs = crate::outputs::Outputs::new();
    outs.input(&model).input(&data);
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
    let mut cases = task.cases(&data)?;
    if let Some(l) = a.limit {
        if l == 0 {
            bail!("--limit must be at least 1");
        }
        cases.truncate(l);
    }
    let cases = spikerc_models::shard::select(a.shard, cases, |c| c.name.clone());
    if cases.is_empty() {
        bail!(
            "--shard {}: no images in this shard ({} has fewer images than shards)",
            a.shard.map(|s| s.to_string()).unwrap_or_default(),
            data.display()
        );
    }
    // Restored images: `<stem>.png` in --save DIR, every name claimed before any work.
    let saved: Vec<PathBuf> = match &a.save {
        None => vec![],
        Some(dir) => {
            outs.claim_dir(dir, "--save")?;
            let mut v = vec![];
            for c in &cases {
                let stem = std::path::Path::new(&c.name).file_stem().unwrap_or_default().to_os_string();
                let dest = dir.join(stem).with_extension("png");
                outs.claim(&dest, "an image of --save")?;
                v.push(dest);
            }
            v
        }
    };
    let artifact = is_artifact(&model)?;
    use spikerc_check::{Engine, EngineKind};
    let art: Option<Artifact> = match (artifact, a.engine) {
        (true, EvalEngine::Torch) => bail!(
            "{}: is a compiled artifact; --engine torch needs a checkpoint",
            model.display()
        ),
        (true, _) => Some(Artifact::load(&model)?),
        (false, EvalEngine::Auto | EvalEngine::Torch) => None,
        (false, _) => Some(
            spikerc_models::compile_checkpoint(&model, &a.hyper.resolve(Some(&model))?, a.precision)
                .map_err(|e| a.hyper.hint(&model, e.into()))?,
        ),
    };
    let engine: Box<dyn Engine> = match &art {
        Some(art) => {
            let kind = if a.engine == EvalEngine::Interp { EngineKind::Interp } else { EngineKind::Event };
            spikerc_check::engine::artifact_engine(kind, art, a.threads, false, None, None)?
        }
        #[cfg(feature = "torch")]
        None => Box::new(
            spikerc_check::torch::Torch::new(&spikerc_models::Checkpoint::load(&model)?, &a.hyper.resolve(Some(&model))?)
                .map_err(|e| a.hyper.hint(&model, e))?,
        ),
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
    let progress = crate::progress::Progress::items(cases.len() as u64, "images");
    let mut restored_png: Vec<anyhow::Result<Vec<u8>>> = vec![];
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
        |i, s, restored| {
            if let Some(dest) = saved.get(i) {
                restored_png.push(crate::io::encode_output(dest, restored, false));
            }
            if !quiet {
                progress.line(&format!(
                    "[{}/{}] {}: PSNR {:.3} dB (input {:.3}) SSIM {:.4}",
                    i + 1,
                    cases.len(),
                    s.name,
                    s.psnr,
                    s.input_psnr,
                    s.ssim
                ));
            }
            progress.message(s.name.clone());
            progress.inc();
        },
    )?;
    drop(progress);
    for (dest, bytes) in saved.iter().zip(restored_png) {
        outs.write(dest, &bytes?)?;
    }
    let wall = t0.elapsed().as_secs_f64();
    let task_desc = match task {
        Task::Denoise { sigma, seed } => format!("denoise sigma {sigma} seed {seed}"),
        Task::Derain => "derain".into(),
        Task::Dehaze => "dehaze".into(),
    };
    let shard_desc = a.shard.map(|s| format!(", shard {s}")).unwrap_or_default();
    let doc = EvalDocument::new(
        model.display().to_string(),
        engine_name.to_string(),
        precision.clone(),
        data.display().to_string(),
        a.shard,
        report,
        wall * 1e3,
    );
    if let Some(p) = &a.json {
        outs.write(p, &serde_json::to_vec_pretty(&doc)?)?;
    }
    outs.commit()?;
    let report = &doc.report;
    println!(
        "{} [{engine_name} {precision}] on {} ({}{shard_desc}, {} images): PSNR {:.3} dB (input {:.3}), SSIM {:.4} in {:.1}s",
        model.display(),
        data.display(),
        task_desc,
        report.images.len(),
        report.mean_psnr,
        report.mean_input_psnr,
        report.mean_ssim,
        wall
    );
    Ok(())
}
