//! `spikerc run ARTIFACT --input IN --output OUT [--engine event|interp] [--threads N]
//! [--tile N --overlap N] [--stats FILE]`
//!
//! Runs a compiled artifact on an image or tensor file of any size (reflect-padded to the
//! model's divisor and cropped back), a batch (`.safetensors` `[N, 3, H, W]`), or a directory
//! of images (one output per input, with a progress bar on a terminal; `--shard K/N` runs every
//! N-th file by name). `--sigma S [--seed N]` adds eval's Gaussian noise to each input first. The default engine is the
//! event-driven runtime; `--engine interp` runs the reference interpreter (the oracle).

use anyhow::{bail, Context};
use clap::{Args as ClapArgs, Subcommand, ValueEnum};
use spikerc_check::engine::{self, artifact_engine, EngineKind};
use spikerc_compiler::interp::Array;
use spikerc_compiler::Artifact;
use spikerc_check::stats::{self, InputStats, RunInfo};
use spikerc_runtime::{max_threads, tile, Program, RunOptions, RunResult, RuntimeError};
use std::path::{Path, PathBuf};

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
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    pub merge: Option<Sub>,
    /// Compiled artifact.
    #[arg(required = true)]
    pub artifact: Option<PathBuf>,
    /// Input: .safetensors (tensor `input`, [N,3,H,W] f32 in [0,1]), an image (PNG/JPEG), or a
    /// directory of those.
    #[arg(long, required = true)]
    pub input: Option<PathBuf>,
    /// Output: .safetensors (tensor `output`) or an image; a directory when the input is one.
    #[arg(long, required = true)]
    pub output: Option<PathBuf>,
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
    /// Write spike counts per LIF module (`spikes`), op counts per module (`ops`), the threads
    /// used and one entry per input (`images`) as JSON (fields: docs/json.md).
    #[arg(long)]
    pub stats: Option<PathBuf>,
    /// Add Gaussian noise of standard deviation S (0-255 scale) to each input first, seeded
    /// from --seed and the file name: the noise `spikerc eval --sigma S --seed N` adds.
    #[arg(long, value_name = "S")]
    pub sigma: Option<f32>,
    /// Base seed of the --sigma noise.
    #[arg(long, default_value_t = 0, requires = "sigma")]
    pub seed: u64,
    /// Run only shard K of N of a directory input (every N-th file by name, 1 <= K <= N).
    #[arg(long)]
    pub shard: Option<spikerc_models::shard::Shard>,
}

impl Args {
    /// ARTIFACT (required unless `merge`).
    fn artifact(&self) -> &Path {
        self.artifact.as_deref().unwrap_or(Path::new(""))
    }
    /// `--input` (required unless `merge`).
    fn input(&self) -> &Path {
        self.input.as_deref().unwrap_or(Path::new(""))
    }
    /// `--output` (required unless `merge`).
    fn output(&self) -> &Path {
        self.output.as_deref().unwrap_or(Path::new(""))
    }
}

#[derive(Subcommand)]
pub enum Sub {
    /// Join the --stats documents of `run DIR --shard K/N` runs (every shard once) into the
    /// document of one run over the whole directory.
    Merge(MergeArgs),
}

#[derive(ClapArgs)]
pub struct MergeArgs {
    /// The shards' `run --stats` documents.
    #[arg(required = true)]
    pub parts: Vec<PathBuf>,
    /// The merged document.
    #[arg(long)]
    pub stats: PathBuf,
}

/// `spikerc run merge`.
fn merge_main(m: MergeArgs) -> anyhow::Result<()> {
    let mut outs = Outputs::new();
    for p in &m.parts {
        outs.input(p);
    }
    outs.claim(&m.stats, "--stats")?;
    let mut docs = vec![];
    for p in &m.parts {
        let name = p.display().to_string();
        let bytes = std::fs::read(p).with_context(|| format!("{name}: cannot read"))?;
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| anyhow::anyhow!("{name}: not JSON: {e}"))?;
        docs.push((name, v));
    }
    let doc = stats::merge(&docs).map_err(anyhow::Error::msg)?;
    outs.write(&m.stats, &serde_json::to_vec_pretty(&doc)?)?;
    outs.commit()?;
    println!(
        "merged {} shards ({} inputs, {} spikes) -> {}",
        docs.len(),
        doc["images"].as_array().map_or(0, Vec::len),
        doc["ops"]["total"]["spikes_out"],
        m.stats.display()
    );
    Ok(())
}

/// Reads one input and adds the `--sigma` noise (eval's definition: seeded from `--seed` and
/// the file name).
fn read_noisy(a: &Args, path: &std::path::Path) -> anyhow::Result<Array> {
    let mut x = read_input(path)?;
    if let Some(sigma) = a.sigma {
        use spikerc_models::eval::noise;
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        x.data = noise::add_gaussian(&x.data, sigma, noise::image_seed(a.seed, &name));
    }
    Ok(x)
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

pub fn main(a: Args) -> anyhow::Result<()> {
    if let Some(Sub::Merge(m)) = a.merge {
        return merge_main(m);
    }
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
    if let Some(s) = a.sigma {
        if !(s.is_finite() && s >= 0.0) {
            bail!("--sigma {s}: must be a finite number >= 0");
        }
    }
    if a.shard.is_some() && !a.input().is_dir() {
        bail!("--shard needs a directory --input ({} is a file)", a.input().display());
    }
    // Every destination is checked before any work; outputs land together at the end.
    let mut outs = Outputs::new();
    outs.input(a.artifact()).input(a.input());
    let input_is_dir = a.input().is_dir();
    if input_is_dir {
        outs.claim_dir(a.output(), "--output")?;
    } else {
        if a.output().is_dir() {
            bail!(
                "{}: output is a directory but the input {} is a file",
                a.output().display(),
                a.input().display()
            );
        }
        check_output_path(a.output())?;
        outs.claim(a.output(), "--output")?;
    }
    if let Some(p) = &a.stats {
        outs.claim(p, "--stats")?;
    }
    let art = Artifact::load(a.artifact())?;
    let program = (a.engine == Engine::Event).then(|| Program::new(&art.graph));
    if let (Some(p), Some(t)) = (&program, a.tile) {
        tile::check_tile(p, t, a.overlap).map_err(|e| flag_error(&a, e))?;
    }
    let start = std::time::Instant::now();
    let inputs = if input_is_dir {
        run_dir(&a, &art, program.as_ref(), &mut outs)?
    } else {
        let input = read_noisy(&a, a.input())?;
        let t0 = std::time::Instant::now();
        let res = run_one(&a, &art, program.as_ref(), &input)?;
        let bytes = encode_output(a.output(), &res.outputs[0], is_deep_image(a.input()))?;
        outs.write(a.output(), &bytes)?;
        vec![input_stats(a.input(), &input, res, t0)]
    };
    let elapsed = start.elapsed();
    let info = RunInfo {
        engine: match a.engine {
            Engine::Event => "event",
            Engine::Interp => "interp",
        },
        wide: a.wide,
        threads: match a.engine {
            Engine::Event => spikerc_runtime::threads_used(a.threads),
            Engine::Interp => 1,
        },
        simd: program.as_ref().map(|p| p.level().name()),
        shard: a.shard,
    };
    let doc = stats::document(&info, &inputs, elapsed.as_secs_f64() * 1e3);
    if let Some(p) = &a.stats {
        outs.write(p, &serde_json::to_vec_pretty(&doc)?)?;
    }
    outs.commit()?;
    let total = &doc["ops"]["total"];
    let spikes: u64 = inputs.iter().flat_map(|i| i.spikes.values()).sum();
    println!(
        "ran {} ({:?} engine) on {} input(s) -> {} in {:.3}s ({} spikes, firing rate {:.3}, {} AC, {} MAC)",
        a.artifact().display(),
        a.engine,
        inputs.len(),
        a.output().display(),
        elapsed.as_secs_f64(),
        spikes,
        doc["firing_rate"].as_f64().unwrap_or(0.0),
        total["ac"],
        total["mac"]
    );
    Ok(())
}

/// The stats entry of one input (`t0`: when its run started).
fn input_stats(path: &std::path::Path, input: &Array, res: RunResult, t0: std::time::Instant) -> InputStats {
    InputStats {
        name: path.file_name().map(|n| n.to_string_lossy().into_owned()),
        shape: input.shape.clone(),
        spikes: res.spikes,
        ops: res.ops,
        wall_ms: t0.elapsed().as_secs_f64() * 1e3,
    }
}

/// Runs every image/tensor file of a directory, staging same-named outputs into `a.output()`.
/// Files that are neither images nor tensors are named in one note (never skipped silently).
fn run_dir(
    a: &Args,
    art: &Artifact,
    program: Option<&Program>,
    outs: &mut Outputs,
) -> anyhow::Result<Vec<InputStats>> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(a.input())
        .with_context(|| format!("{}: cannot list", a.input().display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    all.sort();
    let (files, other): (Vec<PathBuf>, Vec<PathBuf>) =
        all.into_iter().partition(|p| p.is_file() && is_input_file(p));
    let n_files = files.len();
    let files = spikerc_models::shard::select(a.shard, files, |p| {
        p.file_name().unwrap_or_default().to_string_lossy().into_owned()
    });
    if let (Some(s), true) = (a.shard, files.is_empty() && n_files > 0) {
        bail!("--shard {s}: no files in this shard ({} holds {n_files})", a.input().display());
    }
    if files.is_empty() {
        bail!(
            "{}: no image (.png, .jpg, .tif, .bmp, .webp) or .safetensors files in the directory",
            a.input().display()
        );
    }
    if !other.is_empty() {
        let names: Vec<String> = other
            .iter()
            .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned())
            .collect();
        eprintln!(
            "note: {}: {} entr{} not run (not an image or .safetensors file): {}",
            a.input().display(),
            names.len(),
            if names.len() == 1 { "y" } else { "ies" },
            names.join(", ")
        );
    }
    // Name every destination and read every input first, so a bad file fails before any work.
    let dests: Vec<PathBuf> = files
        .iter()
        .map(|f| a.output().join(f.file_name().expect("listed files have names")))
        .collect();
    for d in &dests {
        outs.claim(d, "an output of --output")?;
    }
    let inputs: Vec<Array> = files
        .iter()
        .map(|f| read_noisy(a, f))
        .collect::<anyhow::Result<_>>()?;
    let bar = crate::progress::Progress::items(files.len() as u64, "files");
    let mut stats = vec![];
    for ((f, input), out) in files.iter().zip(&inputs).zip(&dests) {
        bar.message(f.file_name().unwrap_or_default().to_string_lossy());
        let t0 = std::time::Instant::now();
        let res = run_one(a, art, program, input)?;
        outs.write(out, &encode_output(out, &res.outputs[0], is_deep_image(f))?)?;
        stats.push(input_stats(f, input, res, t0));
        bar.inc();
    }
    drop(bar);
    Ok(stats)
}
