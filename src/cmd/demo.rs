//! `spikerc demo [--out DIR] [--model DIR] [--input IMAGE] [--sigma S]`: the main job end to
//! end on a shipped model and a shipped image.
//!
//! Picks the shipped trained denoiser (`models/trained/denoise-l3-d16`, falling back to the
//! shared `spikerir-l3-d16` fixture when the repository has none), takes the built-in Kodak
//! crop (or `--input`), adds the model's Gaussian noise (deterministic seed) when it is a
//! denoiser, compiles the checkpoint to f32 and to f16 (the deployment precision), runs both
//! with the event-driven runtime, deploys the f16 artifact on the Lynxi-style accelerator and
//! simulates it (latency, energy), and — in builds with feature `torch` — checks the f16
//! artifact against the libtorch reference. Writes `clean.png`, `noisy.png`, `restored.png`,
//! `model-f16.spk`, `deploy/`, `sim-report.{json,html}` and `report.json` into DIR and prints a
//! summary.

/// Version of the demo's `report.json` document (fields: docs/json.md).
const DEMO_SCHEMA_VERSION: u32 = 1;

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use serde_json::{json, Value};
use spikerc_compiler::interp::Array;
use spikerc_compiler::passes::Precision;
use spikerc_models::eval::metrics::{psnr, quantize_u8};
use spikerc_models::eval::noise::{add_gaussian, image_seed};
use spikerc_models::{Checkpoint, HyperParams};
use spikerc_check::{engine, Event, RunOutput, Simulator};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::io::{read_input, write_atomic, write_output};

pub use spikerc_check::assets::{builtin_image, BUILTIN_NAME};

/// The shipped trained model, relative to the repository.
pub const SHIPPED_MODEL: &str = "models/trained/denoise-l3-d16";

#[derive(ClapArgs)]
pub struct Args {
    /// Output directory (created).
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Model directory holding `model.safetensors` (or `model.pt`) and `meta.json`
    /// (default: the shipped trained denoiser, else the shared l3 fixture).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Clean input image (default: the built-in Kodak crop).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Gaussian noise sigma (0-255 scale) added to the input; default: the model's training
    /// sigma for denoisers, 0 otherwise.
    #[arg(long)]
    pub sigma: Option<f32>,
    /// Noise seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Accelerator the f16 artifact is deployed on and simulated (`lynxi:PRESET` or
    /// `lynxi:FILE.toml`).
    #[arg(long, default_value = "lynxi:ka200-like")]
    pub target: String,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shared_dir() -> PathBuf {
    std::env::var_os("SPIKERC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared"))
}

/// `(directory, weights file)` of the demo model.
fn pick_model(arg: &Option<PathBuf>) -> anyhow::Result<(PathBuf, PathBuf)> {
    let dir = match arg {
        Some(d) => d.clone(),
        None => {
            let shipped = repo_root().join(SHIPPED_MODEL);
            if shipped.join("meta.json").is_file() {
                shipped
            } else {
                shared_dir().join("fixtures/spikerir-l3-d16")
            }
        }
    };
    for name in ["model.safetensors", "model.pt"] {
        if dir.join(name).is_file() && dir.join("meta.json").is_file() {
            return Ok((dir.clone(), dir.join(name)));
        }
    }
    bail!(
        "{}: no model.safetensors (or model.pt) with a meta.json there (pass --model DIR, or set SPIKERC_SHARED to the shared data directory)",
        dir.display()
    )
}

/// The training sigma of a denoiser's `meta.json` (`training.val_sigma` or
/// `training.degradation.sigma[0]`), if it is one.
fn training_sigma(meta: &Value) -> Option<f32> {
    let t = meta.get("training")?;
    if t.get("task").and_then(Value::as_str) != Some("denoise") {
        return None;
    }
    t.get("val_sigma")
        .and_then(Value::as_f64)
        .or_else(|| t.pointer("/degradation/sigma/0").and_then(Value::as_f64))
        .map(|s| s as f32)
}

fn run(art: &spikerc_compiler::Artifact, x: &Array) -> anyhow::Result<(RunOutput, f64)> {
    let e = Event::new(&art.graph, 0);
    let t = Instant::now();
    let r = engine::run(&e, x, None, &engine::nothing)?;
    Ok((r, t.elapsed().as_secs_f64()))
}

fn psnr_u8(a: &Array, b: &Array) -> f64 {
    psnr(&quantize_u8(&a.data), &quantize_u8(&b.data))
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let (model_dir, weights) = pick_model(&a.model)?;
    let meta_path = model_dir.join("meta.json");
    let hp = HyperParams::from_file(&meta_path)?;
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(&meta_path)?)
        .with_context(|| format!("{}: not JSON", meta_path.display()))?;
    let (clean, input_label) = match &a.input {
        Some(p) => (read_input(p)?, p.display().to_string()),
        None => (builtin_image()?, BUILTIN_NAME.to_string()),
    };
    if clean.shape[0] != 1 {
        bail!(
            "the demo takes one image; {} holds {}",
            input_label,
            clean.shape[0]
        );
    }
    let sigma = a.sigma.or_else(|| training_sigma(&meta)).unwrap_or(0.0);
    if !(0.0..=255.0).contains(&sigma) {
        bail!("--sigma {sigma}: expected 0 to 255");
    }
    let noisy = if sigma > 0.0 {
        let seed = image_seed(a.seed, "demo");
        Array::new(clean.shape.clone(), add_gaussian(&clean.data, sigma, seed))
    } else {
        clean.clone()
    };
    let ckpt = Checkpoint::load(&weights)?;
    let name = weights
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let t = Instant::now();
    let art16 = spikerc_models::compile(&ckpt, &hp, Precision::F16, &name)?;
    let art32 = spikerc_models::compile(&ckpt, &hp, Precision::F32, &name)?;
    let compile_s = t.elapsed().as_secs_f64();

    let (h, w) = (noisy.shape[2], noisy.shape[3]);
    let padded = noisy.pad_reflect_to_multiple(art16.graph.spatial_divisor());
    let (r16, t16) = run(&art16, &noisy)?;
    let (r32, t32) = run(&art32, &noisy)?;
    let out16 = r16.output()?.clone();
    let out32 = r32.output()?.clone();
    let ops = r16.total_ops();
    let neurons: u64 = r16
        .ops
        .values()
        .map(|o| o.neuron_updates)
        .sum::<u64>()
        .max(1);

    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("{}: cannot create", a.out.display()))?;
    let art_path = a.out.join("model-f16.spk");
    write_atomic(&art_path, &art16.to_bytes())?;
    write_output(&a.out.join("clean.png"), &clean)?;
    write_output(&a.out.join("noisy.png"), &noisy)?;
    write_output(&a.out.join("restored.png"), &out16)?;

    let reference = reference_check(&weights, &hp, &art16, &noisy)?;
    let target = a.target.as_str();
    let sim = simulate(&art16, target, &padded, &a.out.join("deploy"))
        .with_context(|| format!("simulating on {target}"))?;
    let sr = &sim.report;
    write_atomic(
        &a.out.join("sim-report.json"),
        &serde_json::to_vec_pretty(&sr.document())?,
    )?;
    write_atomic(&a.out.join("sim-report.html"), sr.html().as_bytes())?;
    let denoiser = training_sigma(&meta).is_some();
    let report = json!({
        "schema_version": DEMO_SCHEMA_VERSION,
        "model": model_dir.display().to_string(),
        "architecture": art16.meta.model,
        "trained_denoiser": denoiser,
        "input": input_label,
        "size": [h, w],
        "sigma": sigma,
        "seed": a.seed,
        "psnr_db": {
            "noisy": (sigma > 0.0).then(|| psnr_u8(&noisy, &clean)),
            "restored_f16": psnr_u8(&out16, &clean),
            "restored_f32": psnr_u8(&out32, &clean),
            "f16_vs_f32": psnr_u8(&out16, &out32),
        },
        "spikes": ops.spikes_out,
        "firing_rate": ops.spikes_out as f64 / neurons as f64,
        "ops": {"ac": ops.ac, "mac": ops.mac, "neuron_updates": ops.neuron_updates},
        "wall_ms": {"compile_f16_and_f32": compile_s * 1e3, "run_f16": t16 * 1e3, "run_f32": t32 * 1e3},
        "libtorch_check": reference,
        "simulator": {
            "target": target,
            "latency_ms": sr.latency_ms,
            "latency_cycles": sr.latency_cycles,
            "energy_pj": sr.energy_pj,
            "snn_ann_energy_ratio": sr.snn_ann_ratio,
            "cores_used": sr.cores_used,
            "output_matches_runtime": sim.outputs.first().map(|o| o.crop(h, w) == out16),
        },
        "files": ["clean.png", "noisy.png", "restored.png", "model-f16.spk", "deploy/", "sim-report.json", "sim-report.html", "report.json"],
    });
    write_atomic(
        &a.out.join("report.json"),
        &serde_json::to_vec_pretty(&report)?,
    )?;

    let f = |v: &Value| v.as_f64().map_or("-".into(), |x| format!("{x:.2} dB"));
    let p = &report["psnr_db"];
    println!("model:    {} ({})", model_dir.display(), art16.meta.model);
    println!(
        "input:    {input_label} {h}x{w}, Gaussian noise sigma {sigma} (seed {})",
        a.seed
    );
    if !denoiser {
        println!("note:     this model is not a trained denoiser (random calibrated weights): the output shows the pipeline, not restoration quality");
    }
    println!(
        "PSNR:     noisy {}  ->  restored f16 {}  (f32 {}; f16 vs f32 {})",
        f(&p["noisy"]),
        f(&p["restored_f16"]),
        f(&p["restored_f32"]),
        f(&p["f16_vs_f32"])
    );
    println!(
        "runtime:  f16 {:.3} s, f32 {:.3} s (event engine); {} spikes, firing rate {:.3}, {} AC, {} MAC",
        t16, t32, ops.spikes_out, report["firing_rate"].as_f64().unwrap_or(0.0), ops.ac, ops.mac
    );
    if let Some(s) = reference.get("summary").and_then(Value::as_str) {
        println!("libtorch: {s}");
    }
    println!(
        "{target}: latency {:.3} ms ({} cycles), energy {:.3} mJ per image, SNN/ANN energy {:.3}, {} cores",
        sr.latency_ms,
        sr.latency_cycles,
        sr.energy_pj / 1e9 / sr.images.max(1) as f64,
        sr.snn_ann_ratio,
        sr.cores_used
    );
    println!(
        "wrote:    {}/{{clean,noisy,restored}}.png, model-f16.spk, deploy/, sim-report.{{json,html}}, report.json",
        a.out.display()
    );
    Ok(())
}

/// Deploys `art` on `target` (`lynxi`, `lynxi:PRESET` or `lynxi:FILE.toml`) for the padded
/// input's size, writes the deployment to `dir`, reads it back and simulates it.
fn simulate(
    art: &spikerc_compiler::Artifact,
    target: &str,
    padded: &Array,
    dir: &Path,
) -> anyhow::Result<spikerc_targets::Simulation> {
    Simulator { artifact: art, target: target.into(), scratch: dir.into() }.simulate(padded)
}

/// The f16 artifact against the libtorch f32 reference on the same input.
#[cfg(feature = "torch")]
fn reference_check(
    weights: &Path,
    hp: &HyperParams,
    art: &spikerc_compiler::Artifact,
    input: &Array,
) -> anyhow::Result<Value> {
    use spikerc_check::compare::Tolerances;
    use spikerc_check::verify::{verify, Options};
    let ckpt = Checkpoint::load(weights)?;
    let reference = spikerc_check::torch::Torch::new(&ckpt, hp)?;
    let tol = Tolerances::default_for(art.meta.precision);
    let opts = Options { engine: spikerc_check::EngineKind::Event, wide: false, layerwise: false, tolerances: tol };
    let v = verify(&reference, art, input, &opts)?;
    let cmp = &v.comparison;
    let summary = format!(
        "f16 artifact vs PyTorch-equivalent f32 reference: PSNR {}, spike counts {:.3}% in agreement ({})",
        cmp.psnr.map_or("inf".into(), |v| format!("{v:.2} dB")),
        spikerc_check::verify::total_agreement(cmp) * 100.0,
        if cmp.failures.is_empty() { "PASS" } else { "FAIL" }
    );
    Ok(json!({"summary": summary, "comparison": cmp, "tolerances": tol, "verdict": v.verdict}))
}

#[cfg(not(feature = "torch"))]
fn reference_check(
    _: &Path,
    _: &HyperParams,
    _: &spikerc_compiler::Artifact,
    _: &Array,
) -> anyhow::Result<Value> {
    Ok(json!({"summary": "skipped (spikerc built without feature `torch`)"}))
}
