//! `spikerc run ARTIFACT --input IN --output OUT [--engine event|interp] [--threads N]
//! [--tile N --overlap N] [--stats FILE]`
//!
//! Runs a compiled artifact on an image or tensor file of any size (reflect-padded to the
//! model's divisor and cropped back), a batch (`.safetensors` `[N, 3, H, W]`), or a directory
//! of images (one output per input, with a progress bar). The default engine is the
//! event-driven runtime; `--engine interp` runs the reference interpreter (the oracle).

use anyhow::{bail, Context};
use clap::{Args as ClapArgs, ValueEnum};
use serde_json::{json, Value};
use spikerc_check::engine::{self, artifact_engine, EngineKind};
use spikerc_compiler::interp::Array;
use spikerc_compiler::Artifact;
use spikerc_runtime::{max_threads, tile, OpCounts, Program, RunOptions, RunResult, RuntimeError};
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::io::{check_output_path, encode_output, is_deep_image, is_input_file, read_input};
use crate::outputs::Outputs;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// The event-driven runtime (AC kernels on spikes, multi-threaded).
    Event,
    /// The reference interpreter (the oracle; slow, single-threaded).
    Interp,
}

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
    #[arg(long, value_enum, default_value = "event")]
    pub engine: Engine,
    /// Accumulate convolutions in f64 (interpreter only): for judging against a float64
    /// reference, not the deployed arithmetic.
    #[arg(long)]
    pub wide: bool,
    /// Worker threads of the event engine (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Run in tiles of TILE x TILE pixels (event engine), bounding peak memory by the tile.
    #[arg(long)]
    pub tile: Option<usize>,
    /// Pixels of context added around each tile (with --tile, or when tiling automatically).
    #[arg(long, default_value_t = 16)]
    pub overlap: usize,
    /// Memory budget of a run (e.g. 8G, 512M, bytes; default half the available RAM): images
    /// whose estimated peak exceeds it run in the largest tiles that fit, or are refused.
    #[arg(long)]
    pub max_memory: Option<String>,
    /// Write spike counts per LIF module (`spikes`) and op counts per module (`ops`) as JSON.
    #[arg(long)]
    pub stats: Option<PathBuf>,
}

/// Runs one input array with the chosen engine; any H x W.
fn run_one(
    a: &Args,
    art: &Artifact,
    program: Option<&Program>,
    input: &Array,
) -> anyhow::Result<RunResult> {
    match (a.engine, program) {
        (Engine::Event, Some(p)) => {
            let opts = RunOptions {
                threads: a.threads,
                profile: false,
            };
            let (n, h, w) = match input.shape[..] {
                [n, _, h, w] => (n, h, w),
                _ => return Ok(tile::run_image(p, input, &opts)?),
            };
            let budget = budget(a)?;
            let plan = tile::plan(p, (n, h, w), a.tile, a.overlap, budget, a.threads)
                .map_err(|e| flag_error(a, e))?;
            if let (None, Some((t, o))) = (a.tile, plan.tile) {
                eprintln!(
                    "note: a whole {h}x{w} input would exceed the memory budget of {} (--max-memory): running in {t}x{t} tiles with overlap {o} (estimated peak {})",
                    spikerc_runtime::gib(budget),
                    spikerc_runtime::gib(plan.bytes)
                );
            }
            Ok(tile::run_planned(p, input, &plan, &opts).map_err(|e| flag_error(a, e))?)
        }
        _ => {
            // The interpreter through the engine library (pad, run, crop written once; it
            // counts ops by the runtime's definitions).
            let engine = artifact_engine(EngineKind::Interp, art, 1, a.wide, None, None)?;
            let r = engine::run(engine.as_ref(), input, None, &engine::nothing)?;
            Ok(RunResult {
                outputs: r.outputs,
                spikes: r.spikes,
                ops: r.ops,
                timeline: vec![],
            })
        }
    }
}

/// The memory budget: `--max-memory`, else half the available RAM.
fn budget(a: &Args) -> anyhow::Result<u64> {
    match &a.max_memory {
        None => Ok(tile::default_budget()),
        Some(s) => tile::parse_size(s).ok_or_else(|| {
            anyhow::anyhow!("--max-memory {s}: not a size (bytes, or a number with K, M, G or T)")
        }),
    }
}

/// A runtime refusal with the flag that governs it named.
fn flag_error(a: &Args, e: RuntimeError) -> anyhow::Error {
    match e {
        RuntimeError::OverBudget { .. } => anyhow::anyhow!("{e} (--max-memory)"),
        RuntimeError::Alloc { .. } => anyhow::anyhow!("{e} (lower --max-memory or pass --tile)"),
        RuntimeError::Tile { reason, .. } => {
            anyhow::anyhow!("--tile {} --overlap {}: {reason}", a.tile.unwrap_or(0), a.overlap)
        }
        e => e.into(),
    }
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

pub fn main(a: Args) -> anyhow::Result<()> {
    if a.engine == Engine::Interp && a.tile.is_some() {
        bail!("--tile needs the event engine (drop --engine interp)");
    }
    if a.wide && a.engine != Engine::Interp {
        bail!("--wide (f64 accumulation) needs the interpreter (--engine interp)");
    }
    if a.threads > max_threads() {
        bail!(
            "--threads {}: more than {} (4 x the {} available cores)",
            a.threads,
            max_threads(),
            max_threads() / 4
        );
    }
    budget(&a)?;
    // Every destination is checked before any work; outputs land together at the end.
    let mut outs = Outputs::new();
    outs.input(&a.artifact).input(&a.input);
    let input_is_dir = a.input.is_dir();
    if input_is_dir {
        outs.claim_dir(&a.output, "--output")?;
    } else {
        if a.output.is_dir() {
            bail!(
                "{}: output is a directory but the input {} is a file",
                a.output.display(),
                a.input.display()
            );
        }
        check_output_path(&a.output)?;
        outs.claim(&a.output, "--output")?;
    }
    if let Some(p) = &a.stats {
        outs.claim(p, "--stats")?;
    }
    let art = Artifact::load(&a.artifact)?;
    let program = (a.engine == Engine::Event).then(|| Program::new(&art.graph));
    if let (Some(p), Some(t)) = (&program, a.tile) {
        tile::check_tile(p, t, a.overlap).map_err(|e| flag_error(&a, e))?;
    }
    let start = std::time::Instant::now();
    let (result, shapes) = if input_is_dir {
        run_dir(&a, &art, program.as_ref(), &mut outs)?
    } else {
        let input = read_input(&a.input)?;
        let res = run_one(&a, &art, program.as_ref(), &input)?;
        let bytes = encode_output(&a.output, &res.outputs[0], is_deep_image(&a.input))?;
        outs.write(&a.output, &bytes)?;
        (res, vec![input.shape.clone()])
    };
    let elapsed = start.elapsed();
    if let Some(p) = &a.stats {
        let s = json!({
            "engine": format!("{:?}", a.engine).to_lowercase(),
            "wide": a.wide,
            "threads": spikerc_runtime::threads_used(a.threads),
            "simd": program.as_ref().map(|p| p.level().name()),
            "input_shapes": shapes,
            "spikes": result.spikes,
            "ops": ops_json(&result.ops),
            "seconds": elapsed.as_secs_f64(),
        });
        outs.write(p, &serde_json::to_vec_pretty(&s)?)?;
    }
    outs.commit()?;
    let total = result.total_ops();
    let spikes: u64 = result.spikes.values().sum();
    println!(
        "ran {} ({:?} engine) on {} input(s) -> {} in {:.3}s ({} spikes, firing rate {:.3}, {} AC, {} MAC)",
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

/// Runs every image/tensor file of a directory, staging same-named outputs into `a.output`.
/// Files that are neither images nor tensors are named in one note (never skipped silently).
fn run_dir(
    a: &Args,
    art: &Artifact,
    program: Option<&Program>,
    outs: &mut Outputs,
) -> anyhow::Result<(RunResult, Vec<Vec<usize>>)> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(&a.input)
        .with_context(|| format!("{}: cannot list", a.input.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    all.sort();
    let (files, other): (Vec<PathBuf>, Vec<PathBuf>) =
        all.into_iter().partition(|p| p.is_file() && is_input_file(p));
    if files.is_empty() {
        bail!(
            "{}: no image (.png, .jpg, .tif, .bmp, .webp) or .safetensors files in the directory",
            a.input.display()
        );
    }
    if !other.is_empty() {
        let names: Vec<String> = other
            .iter()
            .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned())
            .collect();
        eprintln!(
            "note: {}: {} entr{} not run (not an image or .safetensors file): {}",
            a.input.display(),
            names.len(),
            if names.len() == 1 { "y" } else { "ies" },
            names.join(", ")
        );
    }
    // Name every destination and read every input first, so a bad file fails before any work.
    let dests: Vec<PathBuf> = files
        .iter()
        .map(|f| a.output.join(f.file_name().expect("listed files have names")))
        .collect();
    for d in &dests {
        outs.claim(d, "an output of --output")?;
    }
    let inputs: Vec<Array> = files
        .iter()
        .map(|f| read_input(f))
        .collect::<anyhow::Result<_>>()?;
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} {elapsed_precise} eta {eta} {msg}",
        )
        .expect("valid template"),
    );
    let mut total = RunResult::default();
    let mut shapes = vec![];
    for ((f, input), out) in files.iter().zip(&inputs).zip(&dests) {
        bar.set_message(
            f.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
        let res = run_one(a, art, program, input)?;
        outs.write(out, &encode_output(out, &res.outputs[0], is_deep_image(f))?)?;
        total.merge_counts(&res);
        shapes.push(input.shape.clone());
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((total, shapes))
}
