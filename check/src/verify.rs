//! An artifact against the libtorch reference of its checkpoint (feature `torch`).
//!
//! Both run on the same reflect-padded input with every LIF module observed. Spike tensors
//! are compared module by module in execution order; the verdict is
//! * `pass` — every spike equal and the output within tolerance;
//! * `flip` — the first diverging module's differing neurons all lie within the flip bound
//!   ([`crate::bound`]) and, when the teacher-forced check ran, every module agrees
//!   layer-wise: the runs differ only by an accumulation-order flip and its consequences;
//! * `mismatch` — anything else: a neuron beyond the bound, a module disagreeing layer-wise,
//!   or an output off by more than rounding while every spike is equal.
//!
//! The output/spike-count tolerances of [`crate::compare`] are still computed and reported.

use crate::compare::{agreement, compare, Comparison, Tolerances};
use crate::engine::{self, artifact_engine, EngineKind, RunOutput};
use crate::localize::{self, Layerwise, ModuleDiff};
use crate::torch::Torch;
use anyhow::bail;
use serde::Serialize;
use spikerc_compiler::interp::Array;
use spikerc_compiler::ir::{Lif, Reset};
use spikerc_compiler::Artifact;
use spikerc_models::HyperParams;

/// The classification of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Flip,
    Mismatch,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Flip => "flip",
            Verdict::Mismatch => "mismatch",
        }
    }
}

/// How to verify.
#[derive(Clone, Debug)]
pub struct Options {
    /// `event` or `interp`.
    pub engine: EngineKind,
    /// f64 accumulation (interpreter only).
    pub wide: bool,
    /// Run the teacher-forced layer-wise check.
    pub layerwise: bool,
    pub tolerances: Tolerances,
}

/// The outcome.
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    pub verdict: Verdict,
    pub first_divergence: Option<ModuleDiff>,
    pub layerwise: Option<Layerwise>,
    pub comparison: Comparison,
    pub tolerances: Tolerances,
    /// Why the verdict is `mismatch`, human readable (empty otherwise).
    pub reasons: Vec<String>,
}

/// Checks that an artifact was compiled from a model of this architecture and T.
pub fn check_compatible(art: &Artifact, reference: &Torch) -> anyhow::Result<()> {
    let summary = reference.net.arch.summary();
    if art.meta.model != summary {
        bail!("the artifact holds `{}` but the checkpoint is `{summary}`: it was compiled from another model", art.meta.model);
    }
    if art.meta.time_steps != reference.hp.time_steps {
        bail!(
            "the artifact runs T = {} time steps but the config says T = {}",
            art.meta.time_steps,
            reference.hp.time_steps
        );
    }
    Ok(())
}

/// The reference's LIF constants.
pub fn reference_lif(hp: &HyperParams) -> Lif {
    Lif {
        tau: hp.tau,
        v_threshold: hp.v_threshold,
        reset: match hp.v_reset {
            Some(v_reset) => Reset::Hard { v_reset },
            None => Reset::Soft,
        },
        decay_input: hp.decay_input,
    }
}

/// Runs reference and artifact on `input` and classifies the difference.
pub fn verify(reference: &Torch, art: &Artifact, input: &Array, opts: &Options) -> anyhow::Result<Verification> {
    check_compatible(art, reference)?;
    if !matches!(opts.engine, EngineKind::Event | EngineKind::Interp) {
        bail!("verify runs the artifact on the event or interp engine, not {}", opts.engine);
    }
    let all = |_: &str| true;
    let padded = input.pad_reflect_to_multiple(art.graph.spatial_divisor());
    let r: RunOutput = engine::Engine::run_padded(reference, &padded, &all)?;
    let a_engine = artifact_engine(opts.engine, art, 0, opts.wide, None, None)?;
    let a = a_engine.run_padded(&padded, &all)?;
    let (h, w) = (input.shape[2], input.shape[3]);
    let (ro, ao) = (r.output()?.crop(h, w), a.output()?.crop(h, w));
    let cmp = compare((&ro, &r.spikes), (&ao, &a.spikes), &opts.tolerances);
    let rl = reference_lif(&reference.hp);
    let rlf = |_: &Lif| rl;
    let fd = localize::first_divergence(&art.graph, &padded, opts.wide, &a.observed, &r.observed, &rlf)?;
    let lw = if opts.layerwise {
        Some(localize::layerwise(&art.graph, &padded, opts.wide, &r.observed, r.output()?, &rlf)?)
    } else {
        None
    };
    let mut reasons = Vec::new();
    // An f16 artifact has other weights than its f32 reference: its spikes may legitimately
    // differ beyond any rounding bound, so it is judged by the f16 tolerances alone (the
    // divergence is still reported).
    let quantized = art.meta.precision == spikerc_compiler::passes::Precision::F16;
    match &fd {
        Some(d) if !d.is_flip() && !quantized => reasons.push(format!(
            "{} of {} differing neuron(s) of `{}` lie beyond the flip bound",
            d.beyond_bound, d.differing, d.module
        )),
        Some(_) if !quantized => {}
        _ => reasons.extend(cmp.failures.iter().cloned()),
    }
    if let Some(l) = &lw {
        if !l.disagreeing.is_empty() {
            reasons.push(format!("layer-wise, {} disagree(s) beyond the flip bound", l.disagreeing.join(", ")));
        }
    }
    let verdict = match (&fd, reasons.is_empty()) {
        (_, false) => Verdict::Mismatch,
        (None, true) => Verdict::Pass,
        (Some(_), true) => Verdict::Flip,
    };
    Ok(Verification { verdict, first_divergence: fd, layerwise: lw, comparison: cmp, tolerances: opts.tolerances, reasons })
}

fn ordinal(n: usize) -> String {
    match n {
        1 => "one neuron".into(),
        n => format!("{n} neurons"),
    }
}

fn at(n: &localize::Neuron) -> String {
    format!("t={} (n={}, c={}, y={}, x={})", n.t, n.n, n.c, n.y, n.x)
}

/// The verdict in words (the last lines of `spikerc verify`).
pub fn explain(v: &Verification) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let lw_words = match &v.layerwise {
        None => "layer-wise check not run (--layerwise)".to_string(),
        Some(l) if l.disagreeing.is_empty() => format!("every module agrees layer-wise ({} checked)", l.checked),
        Some(l) => format!("layer-wise, {} of {} modules disagree: {}", l.disagreeing.len(), l.checked, l.disagreeing.join(", ")),
    };
    match &v.first_divergence {
        None => {
            let _ = writeln!(s, "spikes: every LIF module's spike tensor equals the reference's; {lw_words}");
        }
        Some(d) => {
            let first = &d.neurons[0];
            let what = if d.is_flip() { "an accumulation-order flip" } else { "beyond the flip bound: not an accumulation-order flip" };
            if d.differing == 1 {
                let _ = writeln!(
                    s,
                    "first divergence: one neuron of {} at {} is {:.1e} from threshold (flip bound {:.1e}): {what}; {lw_words}",
                    d.module, at(first), first.margin.abs(), first.bound
                );
            } else {
                let _ = writeln!(
                    s,
                    "first divergence: {} of {} differ ({} after an earlier flip of the same neuron), {} beyond the flip bound, first at {} {:.1e} from threshold (bound {:.1e}): {what}; {lw_words}",
                    ordinal(d.differing), d.module, d.after_flip, d.beyond_bound, at(first), first.margin.abs(), first.bound
                );
            }
            for n in &d.neurons {
                let _ = writeln!(
                    s,
                    "  {:<40} margin {:+.3e}  bound {:.3e}  reference {}",
                    at(n),
                    n.margin,
                    n.bound,
                    if n.reference_fired { "fired" } else { "silent" }
                );
            }
        }
    }
    if let Some(l) = &v.layerwise {
        for m in &l.modules {
            let _ = writeln!(
                s,
                "  layer-wise {:<40} {} differ, {} beyond the bound{}",
                m.module,
                m.differing,
                m.beyond_bound,
                if m.is_flip() { " (flips)" } else { "  <-- DISAGREES" }
            );
        }
        let _ = writeln!(s, "  layer-wise output: max abs diff {:.3e} (bound {:.3e})", l.output_diff, l.output_bound);
    }
    let _ = writeln!(s, "verdict: {}", v.verdict.name());
    for r in &v.reasons {
        let _ = writeln!(s, "  {r}");
    }
    s
}

/// Version of the `verify --json` document (fields: docs/json-verify.md).
pub const VERIFY_SCHEMA_VERSION: u32 = 1;

/// The `--json` document's verification part.
pub fn json(v: &Verification) -> serde_json::Value {
    serde_json::json!({
        "schema_version": VERIFY_SCHEMA_VERSION,
        "verdict": v.verdict,
        "first_divergence": v.first_divergence,
        "layerwise": v.layerwise,
        "comparison": v.comparison,
        "tolerances": v.tolerances,
        "reasons": v.reasons,
        "pass": v.verdict != Verdict::Mismatch,
    })
}

/// Spike-count agreement of the totals.
pub fn total_agreement(c: &Comparison) -> f64 {
    agreement(c.reference_total, c.artifact_total)
}

#[cfg(test)]
mod tests;
