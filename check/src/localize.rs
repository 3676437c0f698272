//! Where and why a run diverges from its reference.
//!
//! [`first_divergence`] walks the LIF modules in execution order, finds the first whose spike
//! tensor differs from the reference's, and names its differing neurons `(t, n, c, y, x)`
//! with the reference's membrane margin to threshold and the flip bound of [`crate::bound`].
//! [`layerwise`] is the teacher-forced check: the artifact runs on the interpreter with every
//! LIF module's input current and spikes replaced by the reference's, so each module's own
//! computation (from the previous modules' reference outputs to its own input current) is
//! judged on its own — a semantic bug shows in its module even downstream of a flip.

use crate::bound::{self, Forcing, Magnitudes};
use crate::engine::Observation;
use serde::Serialize;
use spikerc_compiler::interp::{self, Array};
use spikerc_compiler::ir::{Lif, Op, Reset};
use spikerc_compiler::Verified;
use std::collections::BTreeMap;

/// Neurons listed per module at most.
pub const MAX_NEURONS: usize = 8;

/// One neuron whose spike differs.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Neuron {
    pub t: usize,
    pub n: usize,
    pub c: usize,
    pub y: usize,
    pub x: usize,
    /// The reference's membrane minus threshold, `H - v_threshold`.
    pub margin: f64,
    /// The flip bound at this neuron.
    pub bound: f64,
    /// Whether the reference fired.
    pub reference_fired: bool,
}

/// The differing neurons of one module.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ModuleDiff {
    pub module: String,
    /// Neuron-steps whose spike differs.
    pub differing: usize,
    /// Of those, how many lie beyond the flip bound.
    pub beyond_bound: usize,
    /// Rounding count `K` of the module's input current.
    pub roundings: f64,
    /// The first differing neurons (those beyond the bound first), at most [`MAX_NEURONS`].
    pub neurons: Vec<Neuron>,
}

impl ModuleDiff {
    /// Every differing neuron is within the flip bound.
    pub fn is_flip(&self) -> bool {
        self.beyond_bound == 0
    }
}

/// LIF nodes of `g` in execution order with their parameters.
pub fn lif_modules(g: &Verified) -> Vec<(String, Lif)> {
    g.topo_order()
        .expect("verified graphs are acyclic")
        .into_iter()
        .filter_map(|id| match &g.node(id).op {
            Op::Lif(l) => Some((g.node(id).name.clone(), *l)),
            _ => None,
        })
        .collect()
}

fn reset(l: &Lif, h: f32, fired: bool) -> f32 {
    match (l.reset, fired) {
        (Reset::Hard { v_reset }, true) => v_reset,
        (Reset::Soft, true) => h - l.v_threshold,
        (_, false) => h,
    }
}

/// Compares `got` spikes against the reference's observation of one module. `forced_x`:
/// teacher-forced, the artifact's own input current computed from the reference's upstream
/// values, charged onto the reference's membrane state; `None`: the artifact's own run, its
/// spikes `got`. `reference_lif` holds the reference's LIF constants (they differ from the
/// artifact's when it is f16).
fn diff_module(
    module: &str,
    art_lif: &Lif,
    reference_lif: &Lif,
    reference: &Observation,
    got: &Array,
    forced_x: Option<&Array>,
    mag: &bound::InputMagnitude,
) -> ModuleDiff {
    let sh = &reference.spikes.shape;
    let (t_n, per_t) = (sh[0], reference.spikes.len() / sh[0]);
    let (c_, h_, w_) = (sh[2], sh[3], sh[4]);
    let thr_gap = (art_lif.v_threshold as f64 - reference_lif.v_threshold as f64).abs();
    let vr = reference_lif.v_rest();
    let mut v_prev = vec![vr; per_t];
    let mut e_v = vec![0f64; per_t];
    let mut differing = 0;
    let mut beyond = 0;
    let mut listed: Vec<Neuron> = Vec::new();
    for t in 0..t_n {
        for i in 0..per_t {
            let j = t * per_t + i;
            let h_ref = reference.membrane.data[j];
            let fired_ref = reference.spikes.data[j] != 0.0;
            let e_x = bound::value_bound(mag.a.data[j] as f64, mag.k);
            let (fired, e_h) = match forced_x {
                Some(x) => {
                    let v = v_prev[i];
                    let avr = art_lif.v_rest();
                    let h = if art_lif.decay_input {
                        v + (x.data[j] - (v - avr)) / art_lif.tau
                    } else {
                        v - (v - avr) / art_lif.tau + x.data[j]
                    };
                    (h >= art_lif.v_threshold, bound::membrane_bound(art_lif, 0.0, e_x, h_ref as f64, v as f64))
                }
                None => {
                    let e = bound::membrane_bound(art_lif, e_v[i], e_x, h_ref as f64, v_prev[i] as f64);
                    (got.data[j] != 0.0, e)
                }
            };
            e_v[i] = bound::state_bound(reference_lif, e_h, fired_ref);
            v_prev[i] = reset(reference_lif, h_ref, fired_ref);
            if fired == fired_ref {
                continue;
            }
            differing += 1;
            let margin = h_ref as f64 - reference_lif.v_threshold as f64;
            let b = e_h + thr_gap;
            let out = margin.abs() > b;
            if out {
                beyond += 1;
            }
            let (n, c, y, x) = (i / (c_ * h_ * w_), i / (h_ * w_) % c_, i / w_ % h_, i % w_);
            let nn = Neuron { t, n, c, y, x, margin, bound: b, reference_fired: fired_ref };
            // Keep the first MAX_NEURONS, preferring those beyond the bound.
            if listed.len() < MAX_NEURONS {
                listed.push(nn);
            } else if out {
                if let Some(p) = listed.iter().rposition(|m| m.margin.abs() <= m.bound) {
                    listed.remove(p);
                    listed.push(nn);
                }
            }
        }
    }
    listed.sort_by_key(|m| (m.margin.abs() <= m.bound, m.t, m.n, m.c, m.y, m.x));
    ModuleDiff { module: module.into(), differing, beyond_bound: beyond, roundings: mag.k, neurons: listed }
}

/// The first LIF module (execution order) whose spikes differ from the reference's, with its
/// differing neurons judged against the flip bound; `None` when every module's spikes are
/// equal. `reference_lif(module)` gives the reference's constants.
pub fn first_divergence(
    g: &Verified,
    padded_input: &Array,
    artifact: &BTreeMap<String, Observation>,
    reference: &BTreeMap<String, Observation>,
    reference_lif: &dyn Fn(&Lif) -> Lif,
) -> anyhow::Result<Option<ModuleDiff>> {
    let modules = lif_modules(g);
    let Some(pos) = modules.iter().position(|(m, _)| match (artifact.get(m), reference.get(m)) {
        (Some(a), Some(r)) => a.spikes != r.spikes,
        _ => false,
    }) else {
        return Ok(None);
    };
    let (name, l) = &modules[pos];
    let spikes: BTreeMap<String, Array> = reference.iter().map(|(k, o)| (k.clone(), o.spikes.clone())).collect();
    let inputs: BTreeMap<String, Array> = reference.iter().map(|(k, o)| (k.clone(), o.input.clone())).collect();
    let mags = bound::magnitudes(g, padded_input, &Forcing { spikes: &spikes, inputs: Some(&inputs) })?;
    // Segment-local magnitudes, accumulated linearly over the `pos + 1` segments from the
    // image to this module (see `bound`).
    let mut mag = mags.lif_inputs[name].clone();
    mag.k *= (pos + 1) as f64;
    Ok(Some(diff_module(name, l, &reference_lif(l), &reference[name], &artifact[name].spikes, None, &mag)))
}

/// The teacher-forced check.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Layerwise {
    /// Modules checked (every LIF module, and the output).
    pub checked: usize,
    /// Modules with a difference beyond the flip bound, in execution order.
    pub disagreeing: Vec<String>,
    /// Modules whose spikes differ at all (flips included), in execution order.
    pub modules: Vec<ModuleDiff>,
    /// Max abs difference of the teacher-forced output from the reference's, and its bound.
    pub output_diff: f64,
    pub output_bound: f64,
}

/// Name used for the graph output in [`Layerwise::disagreeing`].
pub const OUTPUT: &str = "output";

/// Runs `g` on the interpreter (`wide`: f64 accumulation) with the reference's LIF input
/// currents and spikes fed in, and judges every module's own result (see the module docs).
/// `reference_output` is the reference's output of the same padded input.
pub fn layerwise(
    g: &Verified,
    padded_input: &Array,
    wide: bool,
    reference: &BTreeMap<String, Observation>,
    reference_output: &Array,
    reference_lif: &dyn Fn(&Lif) -> Lif,
) -> anyhow::Result<Layerwise> {
    let modules = lif_modules(g);
    for (m, _) in &modules {
        anyhow::ensure!(reference.contains_key(m), "the reference has no LIF module `{m}`");
    }
    let mut feeds: BTreeMap<spikerc_compiler::NodeId, Vec<String>> = BTreeMap::new();
    for id in g.topo_order().expect("acyclic") {
        if matches!(g.node(id).op, Op::Lif(_)) {
            feeds.entry(g.inputs(id)[0]).or_default().push(g.node(id).name.clone());
        }
    }
    let outputs = g.outputs();
    let mut own_x: BTreeMap<String, Array> = BTreeMap::new();
    let mut output: Option<Array> = None;
    let mut bad_shape: Option<String> = None;
    interp::run_intercepted(g, padded_input, interp::Options { wide_accumulation: wide }, |id, a| {
        let n = g.node(id);
        if let Some(lifs) = feeds.get(&id) {
            for l in lifs {
                own_x.insert(l.clone(), a.clone());
            }
            let x = &reference[&lifs[0]].input;
            if x.shape == a.shape {
                a.data.copy_from_slice(&x.data);
            } else {
                bad_shape.get_or_insert(format!("input of `{}`: reference {:?}, artifact {:?}", lifs[0], x.shape, a.shape));
            }
        }
        if matches!(n.op, Op::Lif(_)) {
            let s = &reference[&n.name].spikes;
            if s.shape == a.shape {
                a.data.copy_from_slice(&s.data);
            } else {
                bad_shape.get_or_insert(format!("spikes of `{}`: reference {:?}, artifact {:?}", n.name, s.shape, a.shape));
            }
        }
        if outputs.first() == Some(&id) {
            output = Some(a.clone());
        }
    })?;
    if let Some(s) = bad_shape {
        anyhow::bail!("layer-wise check: {s}");
    }
    let spikes: BTreeMap<String, Array> = reference.iter().map(|(k, o)| (k.clone(), o.spikes.clone())).collect();
    let inputs: BTreeMap<String, Array> = reference.iter().map(|(k, o)| (k.clone(), o.input.clone())).collect();
    let mags: Magnitudes = bound::magnitudes(g, padded_input, &Forcing { spikes: &spikes, inputs: Some(&inputs) })?;
    let mut res = Layerwise { checked: modules.len() + 1, disagreeing: vec![], modules: vec![], output_diff: 0.0, output_bound: 0.0 };
    for (m, l) in &modules {
        let d = diff_module(m, l, &reference_lif(l), &reference[m], &reference[m].spikes, Some(&own_x[m]), &mags.lif_inputs[m]);
        if d.differing > 0 {
            if !d.is_flip() {
                res.disagreeing.push(m.clone());
            }
            res.modules.push(d);
        }
    }
    let out = output.ok_or_else(|| anyhow::anyhow!("the graph has no output"))?;
    let om = mags.output.ok_or_else(|| anyhow::anyhow!("the graph has no output"))?;
    anyhow::ensure!(out.shape == reference_output.shape, "output shape: reference {:?}, artifact {:?}", reference_output.shape, out.shape);
    let mut worst = (0f64, 0f64);
    let mut beyond = false;
    for ((a, r), m) in out.data.iter().zip(&reference_output.data).zip(&om.a.data) {
        let d = (a - r).abs() as f64;
        let b = bound::value_bound(*m as f64, om.k) + 2.0 * bound::U * (r.abs() as f64);
        if d > worst.0 {
            worst = (d, b);
        }
        beyond |= d > b;
    }
    (res.output_diff, res.output_bound) = worst;
    if beyond {
        res.disagreeing.push(OUTPUT.into());
    }
    Ok(res)
}
