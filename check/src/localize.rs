//! Where and why a run diverges from its reference.
//!
//! [`first_divergence`] walks the LIF modules in execution order, finds the first whose spike
//! tensor differs from the reference's, and names its differing neurons `(t, n, c, y, x)`
//! with the reference's membrane margin to threshold and the flip bound of [`crate::bound`],
//! propagated through the artifact's free run from the image (every spike upstream of that
//! module is equal, so only real-valued differences reach it). Per neuron only its first
//! differing step is judged: after it the two membranes were reset differently.
//! [`layerwise`] is the teacher-forced check: the artifact runs on the interpreter with every
//! LIF module's input current and spikes replaced by the reference's, so each module's own
//! computation (from the previous modules' reference outputs to its own input current) is
//! judged on its own, against a bound computed from those reference inputs alone — a
//! semantic bug shows in its module even downstream of a flip.

use crate::bound::{self, Current, Mode};
use crate::engine::Observation;
use serde::Serialize;
use spikerc_compiler::interp::Array;
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
    /// The flip bound `E_H` at this neuron (with the threshold gap of f16 artifacts).
    pub bound: f64,
    /// Whether the reference fired.
    pub reference_fired: bool,
}

impl Neuron {
    /// Whether the margin is within the bound.
    pub fn within(&self) -> bool {
        bound::within(self.margin, self.bound, 0.0)
    }
}

/// The differing neurons of one module.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ModuleDiff {
    pub module: String,
    /// Neuron-steps whose spike differs.
    pub differing: usize,
    /// Of those, how many lie beyond the flip bound.
    pub beyond_bound: usize,
    /// Of those, how many follow an earlier difference of the same neuron (free run only):
    /// the two membranes were reset differently, so they are consequences, not judged.
    pub after_flip: usize,
    /// The largest bound `E_H` among the module's judged differing neuron-steps.
    pub max_bound: f64,
    /// The first differing neurons (those beyond the bound first), at most [`MAX_NEURONS`].
    pub neurons: Vec<Neuron>,
}

impl ModuleDiff {
    /// Every judged differing neuron is within the flip bound.
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

/// The membrane `H` of one LIF step (the interpreter's formula).
fn charge(l: &Lif, v: f32, x: f32) -> f32 {
    let vr = l.v_rest();
    if l.decay_input {
        v + (x - (v - vr)) / l.tau
    } else {
        v - (v - vr) / l.tau + x
    }
}

/// Compares one module's spikes with the reference's observation. `current`: the artifact's
/// input current with its bound `D`. Teacher-forced (`forced`), the artifact's own spikes are
/// those its input current gives on the reference's membrane state, every step judged with
/// `E_V = 0`; in a free run they are `got`, the membrane error is carried over time, and only
/// the first differing step of each neuron is judged. `reference_lif` holds the reference's
/// LIF constants (they differ from the artifact's when it is f16).
fn diff_module(
    module: &str,
    art_lif: &Lif,
    reference_lif: &Lif,
    reference: &Observation,
    got: &Array,
    current: &Current,
    forced: bool,
) -> ModuleDiff {
    let sh = &reference.spikes.shape;
    let (t_n, per_t) = (sh[0], reference.spikes.len() / sh[0]);
    let (c_, h_, w_) = (sh[2], sh[3], sh[4]);
    let thr_gap = (art_lif.v_threshold as f64 - reference_lif.v_threshold as f64).abs();
    let mut v_prev = vec![reference_lif.v_rest(); per_t];
    let mut e_v = vec![0f64; per_t];
    let mut diverged = vec![false; per_t];
    let mut d = ModuleDiff { module: module.into(), differing: 0, beyond_bound: 0, after_flip: 0, max_bound: 0.0, neurons: vec![] };
    for t in 0..t_n {
        for i in 0..per_t {
            let j = t * per_t + i;
            let h_ref = reference.membrane.data[j];
            let x_ref = reference.input.data[j] as f64;
            let fired_ref = reference.spikes.data[j] != 0.0;
            let d_x = current.bound.data[j] as f64;
            let (fired, e_h) = if forced {
                let h = charge(art_lif, v_prev[i], current.own.data[j]);
                (h >= art_lif.v_threshold, bound::membrane_bound(art_lif, 0.0, d_x, v_prev[i] as f64, x_ref))
            } else {
                (got.data[j] != 0.0, bound::membrane_bound(art_lif, e_v[i], d_x, v_prev[i] as f64, x_ref))
            };
            let v = reset(reference_lif, h_ref, fired_ref);
            e_v[i] = bound::state_bound(reference_lif, e_h, fired_ref, v as f64);
            v_prev[i] = v;
            if fired == fired_ref {
                continue;
            }
            d.differing += 1;
            if diverged[i] {
                d.after_flip += 1;
                continue;
            }
            diverged[i] = !forced;
            let margin = h_ref as f64 - reference_lif.v_threshold as f64;
            let b = e_h + thr_gap;
            d.max_bound = d.max_bound.max(b);
            let out = !bound::within(margin, b, 0.0);
            if out {
                d.beyond_bound += 1;
            }
            let (n, c, y, x) = (i / (c_ * h_ * w_), i / (h_ * w_) % c_, i / w_ % h_, i % w_);
            let nn = Neuron { t, n, c, y, x, margin, bound: b, reference_fired: fired_ref };
            // Keep the first MAX_NEURONS, preferring those beyond the bound.
            if d.neurons.len() < MAX_NEURONS {
                d.neurons.push(nn);
            } else if out {
                if let Some(p) = d.neurons.iter().rposition(Neuron::within) {
                    d.neurons.remove(p);
                    d.neurons.push(nn);
                }
            }
        }
    }
    d.neurons.sort_by_key(|m| (m.within(), m.t, m.n, m.c, m.y, m.x));
    d
}

/// The first LIF module (execution order) whose spikes differ from the reference's, with its
/// differing neurons judged against the flip bound of the artifact's free run (`D` carried
/// from the image: every spike upstream is equal); `None` when every module's spikes are
/// equal. `reference_lif(module)` gives the reference's constants; `wide`: the artifact ran
/// with f64 accumulation.
pub fn first_divergence(
    g: &Verified,
    padded_input: &Array,
    wide: bool,
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
    let p = bound::propagate(g, padded_input, wide, Mode::Free)?;
    let r = &reference[name];
    anyhow::ensure!(
        r.spikes.shape == artifact[name].spikes.shape,
        "spikes of `{name}`: reference {:?}, artifact {:?}",
        r.spikes.shape,
        artifact[name].spikes.shape
    );
    Ok(Some(diff_module(name, l, &reference_lif(l), r, &artifact[name].spikes, &p.lif[name], false)))
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
    let p = bound::propagate(g, padded_input, wide, Mode::TeacherForced(reference))
        .map_err(|e| anyhow::anyhow!("layer-wise check: {e:#}"))?;
    let mut res = Layerwise { checked: modules.len() + 1, disagreeing: vec![], modules: vec![], output_diff: 0.0, output_bound: 0.0 };
    for (m, l) in &modules {
        let r = &reference[m];
        let d = diff_module(m, l, &reference_lif(l), r, &r.spikes, &p.lif[m], true);
        if d.differing > 0 {
            if !d.is_flip() {
                res.disagreeing.push(m.clone());
            }
            res.modules.push(d);
        }
    }
    let out = &p.output;
    anyhow::ensure!(
        out.own.shape == reference_output.shape,
        "output shape: reference {:?}, artifact {:?}",
        reference_output.shape,
        out.own.shape
    );
    let mut worst = (0f64, 0f64);
    let mut beyond = false;
    for ((a, r), b) in out.own.data.iter().zip(&reference_output.data).zip(&out.bound.data) {
        let d = (a - r).abs() as f64;
        let b = *b as f64;
        if d > worst.0 {
            worst = (d, b);
        }
        beyond |= !bound::within(d, b, 0.0);
    }
    (res.output_diff, res.output_bound) = worst;
    if beyond {
        res.disagreeing.push(OUTPUT.into());
    }
    Ok(res)
}
