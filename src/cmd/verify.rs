//! `spikerc verify WEIGHTS [--config FILE] [--artifact ART] [--input IN] [--precision f32|f16]`
//!
//! Does the deployed artifact still compute the user's PyTorch model? Runs the libtorch
//! reference of the checkpoint (eval mode, `spikerc_models::torch`) and the artifact (ART, or
//! one compiled now from WEIGHTS) on the same input — a built-in Kodak crop when none is given —
//! and compares the output (max abs difference, PSNR) and the spike count of every LIF module
//! against stated tolerances. Exit code 0 = pass, 1 = fail (with the failing checks named).

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use serde::Serialize;
use spikerc_compiler::interp::{self, Array};
use spikerc_compiler::passes::Precision;
use spikerc_compiler::{Artifact, Verified};
use spikerc_models::torch::{ReferenceRun, SpikerIr};
use spikerc_models::{Checkpoint, HyperParams};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::run::Engine;
use super::HyperOpts;
use crate::io::{read_input, write_atomic};
use spikerc_runtime::{Program, RunOptions};

pub use super::demo::{builtin_image, BUILTIN_NAME};

#[derive(ClapArgs)]
pub struct Args {
    /// Checkpoint (.safetensors or PyTorch .pt) the reference runs.
    pub weights: PathBuf,
    #[command(flatten)]
    pub hyper: HyperOpts,
    /// Compiled artifact to check (default: compile WEIGHTS now at --precision).
    #[arg(long)]
    pub artifact: Option<PathBuf>,
    /// Input image or .safetensors (tensor `input`); default: a built-in Kodak crop.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Precision to compile at when no --artifact is given (an artifact brings its own).
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
    /// Max abs output difference, always applied (default: 1e-4 for f32 when no spike count
    /// differs, otherwise none).
    #[arg(long)]
    pub max_abs_diff: Option<f64>,
    /// Minimum output PSNR in dB, peak 1.0 (default 35 for f32, 28 for f16).
    #[arg(long)]
    pub min_psnr: Option<f64>,
    /// Minimum spike-count agreement per LIF module, 1 - |a-b|/max(a,b) (default 0.995 for
    /// f32, 0.97 for f16).
    #[arg(long)]
    pub min_spike_agreement: Option<f64>,
    /// Engine that runs the artifact.
    #[arg(long, value_enum, default_value = "event")]
    pub engine: Engine,
    /// Write the full comparison as JSON.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// Pass/fail limits of a comparison.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Tolerances {
    /// Max abs output difference, always applied.
    pub max_abs_diff: Option<f64>,
    /// Max abs output difference applied when every LIF module's spike count is equal (no
    /// spike flipped, so the outputs may differ by f32 rounding only).
    pub max_abs_diff_spike_exact: Option<f64>,
    /// Minimum PSNR (dB, peak 1.0) of the artifact output against the reference.
    pub min_psnr: Option<f64>,
    /// Minimum spike-count agreement `1 - |a-b|/max(a,b)` of every LIF module.
    pub min_spike_agreement: f64,
}

impl Tolerances {
    /// f32: libtorch and the artifact accumulate in different orders, so a membrane potential
    /// within rounding distance of the threshold can flip a spike, and on untrained (chaotic)
    /// networks one flip spreads. The rule: spike-exact runs must agree within 1e-4; runs with
    /// flips must keep every module's count within 0.5 % and the output above 35 dB.
    /// f16: every weight is rounded; random-weight fixtures land at 31-36 dB and >= 98.9 %
    /// per module, so the default asks for 28 dB and 97 %.
    pub fn default_for(p: Precision) -> Tolerances {
        match p {
            Precision::F32 => Tolerances {
                max_abs_diff: None,
                max_abs_diff_spike_exact: Some(1e-4),
                min_psnr: Some(35.0),
                min_spike_agreement: 0.995,
            },
            Precision::F16 => Tolerances {
                max_abs_diff: None,
                max_abs_diff_spike_exact: None,
                min_psnr: Some(28.0),
                min_spike_agreement: 0.97,
            },
        }
    }
}

/// One LIF module's spike counts side by side.
#[derive(Clone, Debug, Serialize)]
pub struct SpikeRow {
    pub module: String,
    pub reference: u64,
    pub artifact: u64,
    pub agreement: f64,
}

/// The comparison of an artifact run against the reference.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub max_abs_diff: f64,
    pub mean_abs_diff: f64,
    /// PSNR (dB, peak 1.0) of the artifact output against the reference output; `None` if
    /// they are identical.
    pub psnr: Option<f64>,
    pub spikes: Vec<SpikeRow>,
    pub reference_total: u64,
    pub artifact_total: u64,
    /// Every LIF module emitted the same number of spikes in both runs.
    pub spike_exact: bool,
    /// Failed checks, human readable; empty = pass.
    pub failures: Vec<String>,
}

/// `1 - |a - b| / max(a, b)`, 1 when both are 0.
pub fn agreement(a: u64, b: u64) -> f64 {
    let m = a.max(b);
    if m == 0 {
        1.0
    } else {
        1.0 - a.abs_diff(b) as f64 / m as f64
    }
}

/// PSNR in dB of `b` against `a` with peak 1.0; `None` when equal.
pub fn psnr(a: &Array, b: &Array) -> Option<f64> {
    let mse = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.data.len().max(1) as f64;
    (mse > 0.0).then(|| -10.0 * mse.log10())
}

/// Compares outputs and spike counts; fills `failures` from `tol`.
pub fn compare(
    reference: (&Array, &BTreeMap<String, u64>),
    artifact: (&Array, &BTreeMap<String, u64>),
    tol: &Tolerances,
) -> Comparison {
    let (ro, rs) = reference;
    let (ao, as_) = artifact;
    let mut failures = Vec::new();
    let (max_abs, mean_abs) = if ro.shape == ao.shape {
        let d: Vec<f64> = ro
            .data
            .iter()
            .zip(&ao.data)
            .map(|(x, y)| (x - y).abs() as f64)
            .collect();
        (
            d.iter().cloned().fold(0.0, f64::max),
            d.iter().sum::<f64>() / d.len().max(1) as f64,
        )
    } else {
        failures.push(format!(
            "output shape: reference {:?}, artifact {:?}",
            ro.shape, ao.shape
        ));
        (f64::INFINITY, f64::INFINITY)
    };
    let psnr = if ro.shape == ao.shape {
        psnr(ro, ao)
    } else {
        Some(0.0)
    };
    let spike_exact = rs == as_;
    if let Some(m) = tol
        .max_abs_diff
        .filter(|&m| max_abs.is_nan() || max_abs > m)
    {
        failures.push(format!("output max abs diff {max_abs:.3e} > {m:.0e}"));
    } else if let Some(m) = tol
        .max_abs_diff_spike_exact
        .filter(|&m| spike_exact && (max_abs.is_nan() || max_abs > m))
    {
        failures.push(format!(
            "output max abs diff {max_abs:.3e} > {m:.0e} although every spike count is equal"
        ));
    }
    if let (Some(m), Some(p)) = (tol.min_psnr, psnr) {
        if p < m {
            failures.push(format!("output PSNR {p:.2} dB < {m} dB"));
        }
    }
    let mut spikes = Vec::new();
    let modules: std::collections::BTreeSet<&String> = rs.keys().chain(as_.keys()).collect();
    for m in modules {
        match (rs.get(m), as_.get(m)) {
            (Some(&r), Some(&a)) => {
                let ag = agreement(r, a);
                if ag < tol.min_spike_agreement {
                    failures.push(format!(
                        "spikes of `{m}`: reference {r}, artifact {a} (agreement {:.4}% < {:.4}%)",
                        ag * 100.0,
                        tol.min_spike_agreement * 100.0
                    ));
                }
                spikes.push(SpikeRow {
                    module: m.clone(),
                    reference: r,
                    artifact: a,
                    agreement: ag,
                });
            }
            (Some(_), None) => failures.push(format!("LIF module `{m}` missing in the artifact")),
            (None, _) => failures.push(format!("LIF module `{m}` is not in the reference")),
        }
    }
    Comparison {
        max_abs_diff: max_abs,
        mean_abs_diff: mean_abs,
        psnr,
        reference_total: rs.values().sum(),
        artifact_total: as_.values().sum(),
        spike_exact,
        spikes,
        failures,
    }
}

/// Runs a compiled graph on a padded input with `engine`; returns the output and the spike
/// counts per LIF module.
pub fn run_artifact(
    g: &Verified,
    padded: &Array,
    engine: Engine,
) -> anyhow::Result<(Array, BTreeMap<String, u64>)> {
    let (outputs, spikes) = match engine {
        Engine::Interp => {
            let e = interp::run(g, padded)?;
            (e.outputs, e.spikes)
        }
        Engine::Event => {
            let opts = RunOptions {
                threads: 0,
                profile: false,
            };
            let r = Program::new(g).run(padded, &opts)?;
            (r.outputs, r.spikes)
        }
    };
    let out = outputs
        .into_iter()
        .next()
        .context("the artifact has no output")?;
    Ok((out, spikes))
}

/// Checks that an artifact was compiled from a model of this architecture and T.
pub fn check_compatible(art: &Artifact, net: &SpikerIr, hp: &HyperParams) -> anyhow::Result<()> {
    let summary = net.arch.summary();
    if art.meta.model != summary {
        bail!(
            "the artifact holds `{}` but the checkpoint is `{summary}`: it was compiled from another model",
            art.meta.model
        );
    }
    if art.meta.time_steps != hp.time_steps {
        bail!(
            "the artifact runs T = {} time steps but the config says T = {}",
            art.meta.time_steps,
            hp.time_steps
        );
    }
    Ok(())
}

/// Reference and artifact on the same (padded) input, both outputs cropped back.
pub fn run_both(
    net: &SpikerIr,
    art: &Artifact,
    input: &Array,
    engine: Engine,
) -> anyhow::Result<(ReferenceRun, Array, BTreeMap<String, u64>)> {
    let div = art.graph.spatial_divisor();
    let (h, w) = (input.shape[2], input.shape[3]);
    let padded = input.pad_reflect_to_multiple(div);
    let mut reference = net
        .run_reference(&padded)
        .map_err(|e| anyhow::anyhow!("libtorch reference: {e}"))?;
    reference.output = reference.output.crop(h, w);
    let (out, spikes) = run_artifact(&art.graph, &padded, engine)?;
    Ok((reference, out.crop(h, w), spikes))
}

fn load_input(p: &Option<PathBuf>) -> anyhow::Result<(Array, String)> {
    match p {
        Some(p) => Ok((read_input(p)?, p.display().to_string())),
        None => Ok((builtin_image()?, BUILTIN_NAME.to_string())),
    }
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let hp = a.hyper.resolve()?;
    let ckpt = Checkpoint::load(&a.weights)?;
    let (_vs, net) =
        SpikerIr::from_checkpoint(&ckpt, &hp, spikerc_models::torch::tch::Device::Cpu)?;
    let (art, art_label) = match &a.artifact {
        Some(p) => (Artifact::load(p)?, p.display().to_string()),
        None => {
            let name = file_name(&a.weights);
            let art = spikerc_models::compile(&ckpt, &hp, a.precision, &name)?;
            (art, format!("compiled now from {name} ({})", a.precision))
        }
    };
    check_compatible(&art, &net, &hp)?;
    let (input, input_label) = load_input(&a.input)?;
    if input.shape.len() != 4 || input.shape[1] != net.arch.in_channels {
        bail!(
            "{input_label}: input has shape {:?}, expected [N, {}, H, W]",
            input.shape,
            net.arch.in_channels
        );
    }
    let mut tol = Tolerances::default_for(art.meta.precision);
    if a.max_abs_diff.is_some() {
        tol.max_abs_diff = a.max_abs_diff;
    }
    if a.min_psnr.is_some() {
        tol.min_psnr = a.min_psnr;
    }
    if let Some(s) = a.min_spike_agreement {
        tol.min_spike_agreement = s;
    }
    let (reference, out, spikes) = run_both(&net, &art, &input, a.engine)?;
    let cmp = compare(
        (&reference.output, &reference.spikes),
        (&out, &spikes),
        &tol,
    );
    print!(
        "{}",
        render(
            &a.weights,
            &art_label,
            &art,
            a.engine,
            &input_label,
            &input,
            &tol,
            &cmp
        )
    );
    if let Some(r) = &a.report {
        let json = serde_json::json!({
            "weights": a.weights.display().to_string(),
            "artifact": art_label,
            "precision": art.meta.precision.to_string(),
            "input": input_label,
            "input_shape": input.shape,
            "engine": format!("{:?}", a.engine).to_lowercase(),
            "tolerances": tol,
            "comparison": cmp,
            "pass": cmp.failures.is_empty(),
        });
        write_atomic(r, &serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", r.display()))?;
    }
    if !cmp.failures.is_empty() {
        bail!(
            "verification FAILED ({} check(s)): {}",
            cmp.failures.len(),
            cmp.failures[0]
        );
    }
    Ok(())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn fmt_opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

/// The human-readable report.
pub fn render(
    weights: &Path,
    art_label: &str,
    art: &Artifact,
    engine: Engine,
    input_label: &str,
    input: &Array,
    tol: &Tolerances,
    cmp: &Comparison,
) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "reference: {} (libtorch, f32, eval)", weights.display());
    let _ = writeln!(
        s,
        "artifact:  {art_label} [{}, {}, T={}], engine {}",
        art.meta.model,
        art.meta.precision,
        art.meta.time_steps,
        format!("{engine:?}").to_lowercase()
    );
    let _ = writeln!(s, "input:     {input_label} {:?}", input.shape);
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<40} {:>10} {:>10} {:>8} {:>10}",
        "LIF module", "reference", "artifact", "diff", "agreement"
    );
    for r in &cmp.spikes {
        let mark = if r.agreement < tol.min_spike_agreement {
            "  <-- FAIL"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "{:<40} {:>10} {:>10} {:>+8} {:>9.4}%{mark}",
            r.module,
            r.reference,
            r.artifact,
            r.artifact as i64 - r.reference as i64,
            r.agreement * 100.0
        );
    }
    let _ = writeln!(
        s,
        "{:<40} {:>10} {:>10} {:>+8} {:>9.4}%",
        "total",
        cmp.reference_total,
        cmp.artifact_total,
        cmp.artifact_total as i64 - cmp.reference_total as i64,
        agreement(cmp.reference_total, cmp.artifact_total) * 100.0
    );
    let _ = writeln!(s);
    let abs_tol = match (tol.max_abs_diff, tol.max_abs_diff_spike_exact) {
        (Some(v), _) => format!("{v:.0e}"),
        (None, Some(v)) if cmp.spike_exact => format!("{v:.0e}, spike-exact"),
        _ => "-".into(),
    };
    let _ = writeln!(
        s,
        "output: max abs diff {:.3e} (tolerance {abs_tol}), mean abs diff {:.3e}, PSNR {} (tolerance {})",
        cmp.max_abs_diff,
        cmp.mean_abs_diff,
        cmp.psnr
            .map(|v| format!("{v:.2} dB"))
            .unwrap_or_else(|| "inf (identical)".into()),
        fmt_opt(tol.min_psnr, |v| format!(">= {v} dB")),
    );
    let _ = writeln!(
        s,
        "spikes: {}, worst module agreement {:.4}% (tolerance >= {:.4}%)",
        if cmp.spike_exact {
            "every module equal"
        } else {
            "counts differ"
        },
        cmp.spikes.iter().map(|r| r.agreement).fold(1.0, f64::min) * 100.0,
        tol.min_spike_agreement * 100.0
    );
    if cmp.failures.is_empty() {
        let _ = writeln!(s, "PASS");
    } else {
        let _ = writeln!(s, "FAIL:");
        for f in &cmp.failures {
            let _ = writeln!(s, "  {f}");
        }
    }
    s
}
