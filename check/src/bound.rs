//! The flip bound: how far from its threshold a LIF neuron may sit and still fire differently
//! in two *valid* evaluations of the same network — evaluations that differ only in the order
//! and grouping of f32 operations (libtorch's convolution algorithms against spikerc's
//! canonical order, Winograd against direct, folded against unfolded BatchNorm).
//!
//! Derivation (first-order forward error analysis, Higham, *Accuracy and Stability of
//! Numerical Algorithms*, ch. 3-4). Let `u = 2^-24` (f32 unit roundoff) and
//! `gamma_k = k u / (1 - k u)`. A sum of `n` products `sum_i w_i x_i + b` evaluated in *any*
//! order and grouping (recursive, pairwise, blocked GEMM) lies within
//! `gamma_(n+1) * (sum_i |w_i x_i| + |b|)` of the exact value, so two such evaluations differ
//! by at most `2 gamma_(n+1) * (sum_i |w_i x_i| + |b|)`. Composing ops, the error of a value
//! is bounded by `gamma_K * A`, where `A` is the value computed with every weight, bias and
//! input replaced by its magnitude (the *magnitude run*) and `K` counts the roundings on the
//! longest path: per convolution its fan-in `ci kh kw` + 1 (+ 4 for BatchNorm folding and
//! the reference's unfolded BatchNorm; x 9 for Winograd convolutions, whose transforms
//! amplify magnitudes — an engineering constant, not a proof; + 2^13 when the artifact's
//! parameters are f16, their relative rounding 2^-11), per `axis_linear` `n_in` + 1, per
//! elementwise op 1-4. `sigmoid` enters the magnitude run as the constant 1 (its value is at
//! most 1), so a gate `z * sigmoid(m)` carries `|dz|`; the gate-input term `|z| |dm| / 4`
//! is neglected (an approximation: with it, `A_z (0.25 A_m + 1)` compounds gate after gate
//! and the bound becomes vacuous). Values fed from a reference (teacher forcing) and the image are exact
//! (`K = 0`, `A = |value|`), and spikes upstream of the first divergence are equal.
//!
//! For a LIF with input current `X` (error `E_X = 2 gamma_K A_X`) the membrane
//! `H_t = V_(t-1) - (V_(t-1) - v_r) / tau + X_t` carries
//! `E_H(t) = |1 - 1/tau| E_V(t-1) + c E_X(t) + 4u (|H_t| + |V_(t-1)|)`, `c = 1` (`1/tau` with
//! `decay_input`), `E_V(t) = 0` after a hard reset (both evaluations reset to the same
//! `v_r`), else `E_H(t)`; teacher-forced (`V_(t-1)` taken from the reference) `E_V = 0`.
//! Magnitudes are computed per *segment*: every LIF module's input current is fed from the
//! reference (`A = |X_ref|`, `K = 0`), so `A` and `K` cover the module's own computation from
//! the previous modules' outputs. (Propagated through the whole network, the gates'
//! `A_z (0.25 A_m + 1)` compound block after block and the bound becomes vacuous.) For the
//! first divergence of a free run, whose input current carries the rounding of every segment
//! before it, the segment's `K` is multiplied by the number of segments from the image
//! (linear accumulation along the residual stream — an engineering assumption, not a proof:
//! it neglects error gain through the attention gates).
//!
//! A neuron whose spike differs is an accumulation-order **flip** when its reference margin
//! `|H_t - v_threshold| <= E_H(t)` (plus `|v_threshold_artifact - v_threshold_reference|`
//! for f16 thresholds); a larger margin cannot come from rounding: a **mismatch**.

use anyhow::{bail, Context};
use spikerc_compiler::interp::{self, Array};
use spikerc_compiler::ir::{BinaryOp, ConvAlgorithm, Lif, Op, ReduceOp, Reset};
use spikerc_compiler::tensor::TensorData;
use spikerc_compiler::{NodeId, Tensor, Verified};
use std::collections::BTreeMap;

/// f32 unit roundoff, 2^-24.
pub const U: f64 = 1.0 / 16_777_216.0;
/// Extra roundings per convolution for BatchNorm folding and the reference's unfolded BN.
pub const BN_ROUNDINGS: f64 = 4.0;
/// Magnitude amplification of Winograd F(2x2, 3x3) against the direct sum.
pub const WINOGRAD_FACTOR: f64 = 9.0;
/// Roundings of an f16 parameter in units of `u` (relative error 2^-11 = 2^13 u).
pub const F16_PARAM: f64 = 8192.0;

/// `gamma_k = k u / (1 - k u)` (infinite when `k u >= 1`).
pub fn gamma(k: f64) -> f64 {
    let ku = k * U;
    if ku >= 1.0 {
        f64::INFINITY
    } else {
        ku / (1.0 - ku)
    }
}

/// The bound on the difference of two valid evaluations of a value with magnitude `a`
/// computed through `k` roundings: `2 gamma_k a`.
pub fn value_bound(a: f64, k: f64) -> f64 {
    2.0 * gamma(k) * a
}

/// One step of a LIF's membrane error: `E_H(t)` from the previous state's error `e_v`, the
/// input error `e_x`, the reference's `H_t` and `V_(t-1)`.
pub fn membrane_bound(l: &Lif, e_v: f64, e_x: f64, h: f64, v_prev: f64) -> f64 {
    let tau = l.tau as f64;
    let c = if l.decay_input { 1.0 / tau } else { 1.0 };
    (1.0 - 1.0 / tau).abs() * e_v + c * e_x + 4.0 * U * (h.abs() + v_prev.abs())
}

/// Error carried into the next step: 0 after a hard reset, else the membrane's.
pub fn state_bound(l: &Lif, e_h: f64, fired: bool) -> f64 {
    match (l.reset, fired) {
        (Reset::Hard { .. }, true) => 0.0,
        _ => e_h,
    }
}

/// Magnitude `A_X` and rounding count `K` of one LIF module's input current.
#[derive(Clone, Debug)]
pub struct InputMagnitude {
    pub a: Array,
    pub k: f64,
}

/// Magnitudes of every LIF input current (by LIF module) and of the first graph output.
#[derive(Clone, Debug, Default)]
pub struct Magnitudes {
    pub lif_inputs: BTreeMap<String, InputMagnitude>,
    pub output: Option<InputMagnitude>,
}

/// What the magnitude run takes from a reference: the spikes of every LIF module (always) and,
/// teacher-forced, every LIF's input current.
pub struct Forcing<'a> {
    pub spikes: &'a BTreeMap<String, Array>,
    pub inputs: Option<&'a BTreeMap<String, Array>>,
}

fn abs_tensor(t: &Tensor) -> Tensor {
    let data = match &t.data {
        TensorData::F32(v) => TensorData::F32(v.iter().map(|x| x.abs()).collect()),
        TensorData::F16(v) => TensorData::F16(v.iter().map(|x| half::f16::from_f32(x.to_f32().abs())).collect()),
    };
    Tensor { shape: t.shape.clone(), data }
}

fn f16_units(t: &Tensor) -> f64 {
    if matches!(t.data, TensorData::F16(_)) {
        F16_PARAM
    } else {
        0.0
    }
}

/// The op of the magnitude run and its roundings.
fn magnitude_op(op: &Op, name: &str) -> anyhow::Result<(Op, f64)> {
    Ok(match op {
        Op::Conv2d(c) => {
            let mut m = c.clone();
            m.weight = abs_tensor(&c.weight);
            m.bias = c.bias.as_ref().map(abs_tensor);
            m.algorithm = ConvAlgorithm::Direct;
            let fan_in = (c.weight.shape[1] * c.weight.shape[2] * c.weight.shape[3]) as f64;
            let mut k = fan_in + 1.0 + BN_ROUNDINGS;
            if c.algorithm == ConvAlgorithm::Winograd2x2 {
                k *= WINOGRAD_FACTOR;
            }
            (Op::Conv2d(m), k + f16_units(&c.weight))
        }
        Op::AxisLinear { axis, weight } => (
            Op::AxisLinear { axis: *axis, weight: abs_tensor(weight) },
            weight.shape[1] as f64 + 1.0 + f16_units(weight),
        ),
        Op::Affine { scale, shift } => (Op::Affine { scale: scale.abs(), shift: shift.abs() }, 2.0),
        Op::Sigmoid => (Op::Affine { scale: 0.0, shift: 1.0 }, 4.0),
        Op::Binary(BinaryOp::Add) | Op::Binary(BinaryOp::Mul) | Op::MeanTime => (op.clone(), 1.0),
        Op::Reduce { op: ReduceOp::Mean, .. } => (op.clone(), 1.0),
        Op::Upsample2x => (op.clone(), 4.0),
        Op::BatchNorm(_) => bail!("`{name}`: the flip bound needs an optimized graph (BatchNorm folded)"),
        _ => (op.clone(), 0.0),
    })
}

/// Runs the magnitude run of `g` on `input` (see the module docs).
pub fn magnitudes(g: &Verified, input: &Array, forcing: &Forcing) -> anyhow::Result<Magnitudes> {
    let mut mg = g.graph().clone();
    let order = g.topo_order().expect("verified graphs are acyclic");
    let mut local = vec![0f64; g.id_bound()];
    for &id in &order {
        let n = g.node(id);
        let (op, k) = magnitude_op(&n.op, &n.name)?;
        mg.node_mut(id).op = op;
        local[id.index()] = k;
    }
    let mv = Verified::new(mg).context("magnitude graph")?;
    // LIF input node -> LIF module names it feeds.
    let mut feeds: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
    for &id in &order {
        if matches!(g.node(id).op, Op::Lif(_)) {
            feeds.entry(g.inputs(id)[0]).or_default().push(g.node(id).name.clone());
        }
    }
    let outputs = g.outputs();
    let mut k = vec![0f64; g.id_bound()];
    let mut out = Magnitudes::default();
    let mut err: Option<anyhow::Error> = None;
    let abs_input = Array::new(input.shape.clone(), input.data.iter().map(|v| v.abs()).collect());
    interp::run_intercepted(&mv, &abs_input, interp::Options::default(), |id, a| {
        let n = g.node(id);
        let kin = g.inputs(id).iter().map(|i| k[i.index()]).fold(0.0, f64::max);
        k[id.index()] = kin + local[id.index()];
        if let Op::Lif(_) = n.op {
            k[id.index()] = 0.0;
            match forcing.spikes.get(&n.name) {
                Some(s) if s.shape == a.shape => a.data.copy_from_slice(&s.data),
                _ => err = err.take().or(Some(anyhow::anyhow!("no reference spikes of `{}` with shape {:?}", n.name, a.shape))),
            }
        }
        if let Some(lifs) = feeds.get(&id) {
            for l in lifs {
                out.lif_inputs.insert(l.clone(), InputMagnitude { a: a.clone(), k: k[id.index()] });
            }
            if let Some(x) = forcing.inputs.and_then(|m| m.get(&lifs[0])) {
                if x.shape == a.shape {
                    for (d, s) in a.data.iter_mut().zip(&x.data) {
                        *d = s.abs();
                    }
                    k[id.index()] = 0.0;
                }
            }
        }
        if outputs.first() == Some(&id) {
            out.output = Some(InputMagnitude { a: a.clone(), k: k[id.index()] });
        }
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
