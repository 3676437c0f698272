//! `spikerc verify WEIGHTS [--config FILE] [--artifact ART] [--input IN] [--precision f32|f16]
//! [--engine event|interp] [--wide] [--layerwise] [--json FILE]`
//!
//! Does the deployed artifact still compute the user's PyTorch model? Argument parsing and
//! printing only: `spikerc_check::verify` runs the libtorch reference and the artifact (ART,
//! or one compiled now from WEIGHTS) on the same input — a built-in Kodak crop when none is
//! given —, compares outputs and spikes, localises the first divergence and classifies the
//! run `pass`, `flip` (an accumulation-order flip) or `mismatch`. Exit code 0 for pass and
//! flip, 1 for mismatch (with the reasons named).

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use spikerc_check::assets::{builtin_image, BUILTIN_NAME};
use spikerc_check::compare::{agreement, Comparison, Tolerances};
use spikerc_check::torch::Torch;
use spikerc_check::verify::{self, Verification};
use spikerc_check::EngineKind;
use spikerc_compiler::interp::Array;
use spikerc_compiler::passes::Precision;
use spikerc_compiler::Artifact;
use spikerc_models::Checkpoint;
use std::path::{Path, PathBuf};

use super::HyperOpts;
use crate::io::{read_input, write_atomic};

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
    /// Engine that runs the artifact: event or interp.
    #[arg(long, default_value = "event")]
    pub engine: EngineKind,
    /// Run the artifact on the interpreter with f64 convolution accumulation (implies
    /// `--engine interp`).
    #[arg(long)]
    pub wide: bool,
    /// Also run the teacher-forced layer-wise check: every module fed the reference's own
    /// inputs, its own outputs compared.
    #[arg(long)]
    pub layerwise: bool,
    /// Write the verdict, the localisation and the full comparison as JSON (schema in
    /// docs/json-verify.md).
    #[arg(long, alias = "report")]
    pub json: Option<PathBuf>,
}

fn load_input(p: &Option<PathBuf>) -> anyhow::Result<(Array, String)> {
    match p {
        Some(p) => Ok((read_input(p)?, p.display().to_string())),
        None => Ok((builtin_image()?, BUILTIN_NAME.to_string())),
    }
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let hp = a.hyper.resolve(Some(&a.weights))?;
    let ckpt = Checkpoint::load(&a.weights)?;
    let reference = Torch::new(&ckpt, &hp)?;
    let (art, art_label) = match &a.artifact {
        Some(p) => (Artifact::load(p)?, p.display().to_string()),
        None => {
            let name = file_name(&a.weights);
            let art = spikerc_models::compile(&ckpt, &hp, a.precision, &name)?;
            (art, format!("compiled now from {name} ({})", a.precision))
        }
    };
    verify::check_compatible(&art, &reference)?;
    let (input, input_label) = load_input(&a.input)?;
    if input.shape.len() != 4 || input.shape[1] != reference.net.arch.in_channels {
        bail!(
            "{input_label}: input has shape {:?}, expected [N, {}, H, W]",
            input.shape,
            reference.net.arch.in_channels
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
    let engine = if a.wide { EngineKind::Interp } else { a.engine };
    let opts = verify::Options { engine, wide: a.wide, layerwise: a.layerwise, tolerances: tol };
    let v = verify::verify(&reference, &art, &input, &opts)?;
    let engine_label = format!("{engine}{}", if a.wide { " (f64 accumulation)" } else { "" });
    print!("{}", render(&a.weights, &art_label, &art, &engine_label, &input_label, &input, &tol, &v.comparison));
    print!("{}", verify::explain(&v));
    if let Some(r) = &a.json {
        let mut json = verify::json(&v);
        let extra = serde_json::json!({
            "weights": a.weights.display().to_string(),
            "artifact": art_label,
            "precision": art.meta.precision.to_string(),
            "input": input_label,
            "input_shape": input.shape,
            "engine": engine.name(),
            "wide": a.wide,
        });
        if let (Some(o), Some(e)) = (json.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        write_atomic(r, &serde_json::to_vec_pretty(&json)?)
            .with_context(|| format!("writing {}", r.display()))?;
    }
    fail_on_mismatch(&v)
}

fn fail_on_mismatch(v: &Verification) -> anyhow::Result<()> {
    if v.verdict == verify::Verdict::Mismatch {
        bail!(
            "verification FAILED (mismatch): {}",
            v.reasons.first().map(String::as_str).unwrap_or("see above")
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

/// The human-readable comparison table (the verdict follows, from `verify::explain`).
#[allow(clippy::too_many_arguments)]
pub fn render(
    weights: &Path,
    art_label: &str,
    art: &Artifact,
    engine: &str,
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
        engine
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
        let _ = writeln!(s, "tolerances: within");
    } else {
        let _ = writeln!(s, "tolerances: outside");
        for f in &cmp.failures {
            let _ = writeln!(s, "  {f}");
        }
    }
    s
}
