//! `spikerc run ARTIFACT --input IN --output OUT [--engine event|interp] [--threads N]
//! [--tile N --overlap N] [--stats FILE]`
//!
//! Runs a compiled artifact on an image or tensor file of any size (reflect-padded to the
//! model's divisor and cropped back), a batch (`.safetensors` `[N, 3, H, W]`), or a directory
//! of images (one output per input, with a progress bar). The default engine is the
//! event-driven runtime; `--engine interp` runs the reference interpreter (the oracle).

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use serde_json::{json, Value};
use spikerc_check::engine::{self, artifact_engine, Engine, EngineKind, RunOutput, Tiling};
use spikerc_compiler::interp::Array;
use spikerc_compiler::Artifact;
use spikerc_runtime::OpCounts;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::io::{read_input, write_atomic, write_output};

#[derive(ClapArgs)]
pub struct Args {
    /// Compiled artifact.
    pub artifact: PathBuf,
    /// Input: .safetensors (tensor `input`, [N,3,H,W] f32 in [0,1]), an image (PNG/JPEG), or a
    /// directory of those.
    #[arg(long)]
    pub input: PathBuf,
    /// Output: .safetensors (tensor `output`) or an image; a directory when the input is one.
    #[arg(long)]
    pub output: PathBuf,
    /// `event` (the event-driven runtime) or `interp` (the reference interpreter).
    #[arg(long, default_value = "event")]
    pub engine: EngineKind,
    /// f64 convolution accumulation (interpreter only; closer to exact arithmetic, not the
    /// engines' contract).
    #[arg(long)]
    pub wide: bool,
    /// Worker threads of the event engine (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Run in tiles of TILE x TILE pixels (event engine), bounding peak memory by the tile.
    #[arg(long)]
    pub tile: Option<usize>,
    /// Pixels of context added around each tile (with --tile).
    #[arg(long, default_value_t = 16, requires = "tile")]
    pub overlap: usize,
    /// Write spike counts per LIF module (`spikes`) and op counts per module (`ops`) as JSON.
    #[arg(long)]
    pub stats: Option<PathBuf>,
}

/// Runs one input array with the chosen engine; any H x W.
fn run_one(a: &Args, engine: &dyn Engine, input: &Array) -> anyhow::Result<RunOutput> {
    let tiling = a.tile.map(|tile| Tiling { tile, overlap: a.overlap });
    engine::run(engine, input, tiling, &engine::nothing)
}

fn ops_json(ops: &BTreeMap<String, OpCounts>) -> Value {
    let row = |c: &OpCounts| {
        json!({"spikes_in": c.spikes_in, "spikes_out": c.spikes_out, "ac": c.ac, "mac": c.mac,
               "neuron_updates": c.neuron_updates})
    };
    let mut total = OpCounts::default();
    let mut modules = serde_json::Map::new();
    for (m, c) in ops {
        total.add(c);
        if *c != OpCounts::default() {
            modules.insert(m.clone(), row(c));
        }
    }
    json!({"total": row(&total), "modules": modules})
}

fn is_input_file(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        ["png", "jpg", "jpeg", "safetensors"].contains(&e.to_ascii_lowercase().as_str())
    })
}

pub fn main(a: Args) -> anyhow::Result<()> {
    if !matches!(a.engine, EngineKind::Event | EngineKind::Interp) {
        bail!("--engine {}: run takes event or interp", a.engine);
    }
    if a.engine == EngineKind::Interp && a.tile.is_some() {
        bail!("--tile needs the event engine (drop --engine interp)");
    }
    if a.threads > 1024 {
        bail!("--threads {} is not a sensible thread count", a.threads);
    }
    let art = Artifact::load(&a.artifact)?;
    let engine = artifact_engine(a.engine, &art, a.threads, a.wide, None, None)?;
    let start = std::time::Instant::now();
    let (result, shapes) = if a.input.is_dir() {
        run_dir(&a, engine.as_ref())?
    } else {
        if a.output.is_dir() {
            bail!(
                "{}: output is a directory but the input {} is a file",
                a.output.display(),
                a.input.display()
            );
        }
        let input = read_input(&a.input)?;
        let res = run_one(&a, engine.as_ref(), &input)?;
        write_output(&a.output, &res.outputs[0])
            .with_context(|| format!("writing {}", a.output.display()))?;
        (res, vec![input.shape.clone()])
    };
    let elapsed = start.elapsed();
    if let Some(p) = &a.stats {
        let s = json!({
            "engine": a.engine.name(),
            "wide": a.wide,
            "threads": a.threads,
            "simd": (a.engine == EngineKind::Event).then(|| spikerc_runtime::Level::detect().name()),
            "input_shapes": shapes,
            "spikes": result.spikes,
            "ops": ops_json(&result.ops),
            "seconds": elapsed.as_secs_f64(),
        });
        write_atomic(p, &serde_json::to_vec_pretty(&s)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    let total = result.total_ops();
    let spikes: u64 = result.spikes.values().sum();
    println!(
        "ran {} ({} engine) on {} input(s) -> {} in {:.3}s ({} spikes, firing rate {:.3}, {} AC, {} MAC)",
        a.artifact.display(),
        a.engine,
        shapes.len(),
        a.output.display(),
        elapsed.as_secs_f64(),
        spikes,
        spikes as f64 / total.neuron_updates.max(1) as f64,
        total.ac,
        total.mac
    );
    Ok(())
}

/// Runs every image/tensor file of a directory, writing same-named outputs into `a.output`.
fn run_dir(a: &Args, engine: &dyn Engine) -> anyhow::Result<(RunOutput, Vec<Vec<usize>>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(&a.input)
        .with_context(|| format!("{}: cannot list", a.input.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && is_input_file(p))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!(
            "{}: no .png, .jpg, .jpeg or .safetensors files in the directory",
            a.input.display()
        );
    }
    if a.output.exists() && !a.output.is_dir() {
        bail!(
            "{}: the input is a directory, so the output must be a directory too",
            a.output.display()
        );
    }
    // Read everything first so a bad file fails before any output is written.
    let inputs: Vec<Array> = files
        .iter()
        .map(|f| read_input(f))
        .collect::<anyhow::Result<_>>()?;
    std::fs::create_dir_all(&a.output)
        .with_context(|| format!("{}: cannot create", a.output.display()))?;
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} {elapsed_precise} eta {eta} {msg}",
        )
        .expect("valid template"),
    );
    let mut total = RunOutput::default();
    let mut shapes = vec![];
    for (f, input) in files.iter().zip(&inputs) {
        bar.set_message(
            f.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
        let res = run_one(a, engine, input)?;
        let out = a
            .output
            .join(f.file_name().expect("listed files have names"));
        write_output(&out, &res.outputs[0])
            .with_context(|| format!("writing {}", out.display()))?;
        total.merge_counts(&res);
        shapes.push(input.shape.clone());
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((total, shapes))
}
