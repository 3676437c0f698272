//! [`propagate`]: the interpreter run of an artifact that carries, next to every value, the
//! bound `D` on its difference from a valid reference evaluation (the rules of
//! [`crate::bound`]), and records it at every LIF module's input current.

use super::{gamma, winograd_magnitude, F16_REL, SIGMOID_ULPS, U};
use crate::engine::Observation;
use anyhow::bail;
use spikerc_compiler::interp::{self, Array};
use spikerc_compiler::ir::{BinaryOp, Conv2d, ConvAlgorithm, Op, ReduceOp};
use spikerc_compiler::tensor::TensorData;
use spikerc_compiler::{NodeId, Tensor, Verified};
use std::collections::BTreeMap;

/// Where the values upstream of a LIF module come from.
pub enum Mode<'a> {
    /// The artifact's own run: `D` accumulates from the image (valid up to the first module
    /// whose spikes differ from the reference's; spikes upstream of it are equal).
    Free,
    /// Teacher-forced: every LIF module's input current and spikes are replaced by the
    /// reference's observation, so each module's `D` covers its own computation only.
    TeacherForced(&'a BTreeMap<String, Observation>),
}

/// A value computed by the artifact and the bound on its difference from the reference's.
#[derive(Clone, Debug)]
pub struct Current {
    /// The artifact's own value (before any forcing).
    pub own: Array,
    /// `D` per element.
    pub bound: Array,
}

/// What [`propagate`] records.
#[derive(Clone, Debug)]
pub struct Propagated {
    /// Per LIF module: its input current.
    pub lif: BTreeMap<String, Current>,
    /// The first graph output.
    pub output: Current,
}

fn abs(a: &Array) -> Array {
    Array::new(a.shape.clone(), a.data.iter().map(|v| v.abs()).collect())
}

fn map2(a: &Array, b: &Array, f: impl Fn(f32, f32) -> f32) -> Array {
    Array::new(a.shape.clone(), a.data.iter().zip(&b.data).map(|(x, y)| f(*x, *y)).collect())
}

/// Row-major source index in `shape` (size-1 axes broadcast) of every element of `out`.
fn broadcast_index(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let n: usize = out.iter().product();
    let mut strides = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        strides[d] = strides[d + 1] * shape[d + 1];
    }
    (0..n)
        .map(|mut i| {
            let mut s = 0;
            for d in (0..out.len()).rev() {
                let k = i % out[d];
                i /= out[d];
                if shape[d] != 1 {
                    s += k * strides[d];
                }
            }
            s
        })
        .collect()
}

/// A convolution with `|w|` and no bias, accumulated in f64.
fn abs_conv(c: &Conv2d) -> Conv2d {
    let mut a = c.clone();
    let w: Vec<f32> = c.weight.to_f32().iter().map(|v| v.abs()).collect();
    a.weight = Tensor { shape: c.weight.shape.clone(), data: TensorData::F32(w) };
    a.bias = None;
    a.algorithm = ConvAlgorithm::Direct;
    a
}

/// `D` of a convolution's output `y` from its input `x` with bound `dx`.
fn conv(c: &Conv2d, x: &Array, dx: &Array, y: &Array, wide: bool) -> Array {
    let a = abs_conv(c);
    let xa = abs(x);
    let s = interp::conv2d(&xa, &a, &y.shape, true);
    let p = dx.data.iter().any(|&v| v != 0.0).then(|| interp::conv2d(dx, &a, &y.shape, true));
    let winograd = c.algorithm == ConvAlgorithm::Winograd2x2 && !wide;
    let pw = winograd.then(|| winograd_magnitude(&xa, c, &y.shape));
    let [co, ci, kh, kw] = [c.weight.shape[0], c.weight.shape[1], c.weight.shape[2], c.weight.shape[3]];
    let n = (ci * kh * kw) as f64;
    let bias = c.bias.as_ref().map(|b| b.to_f32().into_owned());
    let f16 = matches!(c.weight.data, TensorData::F16(_));
    let r = y.shape.len();
    let plane = y.shape[r - 2] * y.shape[r - 1];
    let data = (0..y.len())
        .map(|i| {
            let b = bias.as_ref().map_or(0.0, |b| b[(i / plane) % co].abs() as f64);
            let sb = s.data[i] as f64 + b;
            let mut d = gamma(n + 2.0) * sb + 2.0 * U * sb;
            d += match &pw {
                Some(pw) => gamma(ci as f64 + 12.0) * (pw.data[i] as f64 + b),
                None => gamma(n + 1.0) * sb,
            };
            if f16 {
                d += F16_REL * sb;
            }
            if let Some(p) = &p {
                d += p.data[i] as f64;
            }
            d as f32
        })
        .collect();
    Array::new(y.shape.clone(), data)
}

/// `y = |W| x` along `axis` (f64 accumulation) for non-negative `x`.
fn abs_axis_linear(x: &Array, axis: usize, w: &[f32], out_shape: &[usize]) -> Array {
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis + 1..].iter().product();
    let (n_in, n_out) = (x.shape[axis], out_shape[axis]);
    let mut out = vec![0f32; outer * n_out * inner];
    for a in 0..outer {
        for o in 0..n_out {
            for b in 0..inner {
                let s: f64 = (0..n_in).map(|i| w[o * n_in + i].abs() as f64 * x.data[(a * n_in + i) * inner + b] as f64).sum();
                out[(a * n_out + o) * inner + b] = s as f32;
            }
        }
    }
    Array::new(out_shape.to_vec(), out)
}

/// `D` of the mean `y` of `x` over `axes` (`MeanTime`: axis 0, dropped).
fn mean(x: &Array, dx: &Array, axes: &[usize], y: &Array) -> Array {
    let kept: Vec<usize> = if x.shape.len() == y.shape.len() { y.shape.clone() } else { [&[1], &y.shape[..]].concat() };
    let k = (x.len() / y.len().max(1)) as f64;
    let md = interp::reduce(dx, ReduceOp::Mean, axes, &kept);
    let mx = interp::reduce(&abs(x), ReduceOp::Mean, axes, &kept);
    let data = (0..y.len())
        .map(|i| (md.data[i] as f64 + gamma(k) * mx.data[i] as f64 + 2.0 * U * y.data[i].abs() as f64) as f32)
        .collect();
    Array::new(y.shape.clone(), data)
}

/// `D` of one node's output `y` (see [`crate::bound`] for the rules).
fn node_bound(op: &Op, name: &str, xs: &[&Array], ds: &[&Array], y: &Array, wide: bool) -> anyhow::Result<Array> {
    let zeros = || Array::zeros(y.shape.clone());
    Ok(match op {
        Op::Input { .. } | Op::Lif(_) => zeros(),
        Op::Output | Op::Relu => ds[0].clone(),
        Op::RepeatTime { steps } => Array::new(y.shape.clone(), ds[0].data.repeat(*steps)),
        Op::Conv2d(c) => conv(c, xs[0], ds[0], y, wide),
        Op::BatchNorm(_) => bail!("`{name}`: the flip bound needs an optimized graph (BatchNorm folded)"),
        Op::Binary(b) => {
            let (ia, ib) = (broadcast_index(&xs[0].shape, &y.shape), broadcast_index(&xs[1].shape, &y.shape));
            let data = (0..y.len())
                .map(|i| {
                    let (da, db) = (ds[0].data[ia[i]] as f64, ds[1].data[ib[i]] as f64);
                    let round = 2.0 * U * y.data[i].abs() as f64;
                    let d = match b {
                        BinaryOp::Add => da + db,
                        BinaryOp::Mul => {
                            let (a, bv) = (xs[0].data[ia[i]].abs() as f64, xs[1].data[ib[i]].abs() as f64);
                            a * db + bv * da + da * db
                        }
                    };
                    (d + round) as f32
                })
                .collect();
            Array::new(y.shape.clone(), data)
        }
        Op::Affine { scale, shift } => {
            let (s, t) = (scale.abs() as f64, shift.abs() as f64);
            map2(xs[0], ds[0], |x, d| (s * d as f64 + 2.0 * gamma(2.0) * (s * x.abs() as f64 + t)) as f32)
        }
        Op::Sigmoid => map2(y, ds[0], |yv, d| (d as f64 / 4.0 + 2.0 * SIGMOID_ULPS * U * yv.abs() as f64) as f32),
        Op::Concat { axis } => interp::concat(ds, *axis, &y.shape),
        Op::Reduce { op: ReduceOp::Max, axes } => interp::reduce(ds[0], ReduceOp::Max, axes, &y.shape),
        Op::Reduce { op: ReduceOp::Mean, axes } => mean(xs[0], ds[0], axes, y),
        Op::MeanTime => mean(xs[0], ds[0], &[0], y),
        Op::AxisLinear { axis, weight } => {
            let w = weight.to_f32();
            let n = weight.shape[1] as f64;
            let pd = abs_axis_linear(ds[0], *axis, &w, &y.shape);
            let px = abs_axis_linear(&abs(xs[0]), *axis, &w, &y.shape);
            let f16 = if matches!(weight.data, TensorData::F16(_)) { F16_REL } else { 0.0 };
            map2(&pd, &px, |d, m| (d as f64 + (2.0 * gamma(n) + f16) * m as f64) as f32)
        }
        Op::Upsample2x => {
            let ud = interp::bilinear_up2(ds[0]);
            let ux = interp::bilinear_up2(&abs(xs[0]));
            map2(&ud, &ux, |d, m| (d as f64 + 2.0 * gamma(4.0) * m as f64) as f32)
        }
    })
}

/// Runs `g` on the interpreter (`wide`: f64 accumulation) from `input` in `mode`, computing
/// every value's bound `D`, and returns the input currents of its LIF modules and its first
/// output with their bounds.
pub fn propagate(g: &Verified, input: &Array, wide: bool, mode: Mode) -> anyhow::Result<Propagated> {
    let order = g.topo_order().expect("verified graphs are acyclic");
    // LIF input node -> the LIF modules it feeds.
    let mut feeds: BTreeMap<NodeId, Vec<String>> = BTreeMap::new();
    for &id in &order {
        if matches!(g.node(id).op, Op::Lif(_)) {
            feeds.entry(g.inputs(id)[0]).or_default().push(g.node(id).name.clone());
        }
    }
    let first_output = g.outputs().first().copied();
    let mut remaining: Vec<usize> = vec![0; g.id_bound()];
    for &id in &order {
        remaining[id.index()] = g.users(id).len();
    }
    let mut vals: Vec<Option<(Array, Array)>> = vec![None; g.id_bound()];
    let mut lif = BTreeMap::new();
    let mut output = None;
    let mut err: Option<anyhow::Error> = None;
    interp::run_intercepted(g, input, interp::Options { wide_accumulation: wide }, |id, out| {
        if err.is_some() {
            return;
        }
        let n = g.node(id);
        let ins = g.inputs(id);
        let d = {
            let xs: Vec<&Array> = ins.iter().map(|i| &vals[i.index()].as_ref().expect("computed before use").0).collect();
            let ds: Vec<&Array> = ins.iter().map(|i| &vals[i.index()].as_ref().expect("computed before use").1).collect();
            node_bound(&n.op, &n.name, &xs, &ds, out, wide)
        };
        let mut d = match d {
            Ok(d) => d,
            Err(e) => {
                err = Some(e);
                return;
            }
        };
        if let Some(lifs) = feeds.get(&id) {
            for l in lifs {
                lif.insert(l.clone(), Current { own: out.clone(), bound: d.clone() });
            }
            if let Mode::TeacherForced(r) = &mode {
                match r.get(&lifs[0]) {
                    Some(o) if o.input.shape == out.shape => {
                        out.data.copy_from_slice(&o.input.data);
                        d = Array::zeros(out.shape.clone());
                    }
                    o => {
                        let got = o.map(|o| o.input.shape.clone());
                        err = Some(anyhow::anyhow!("input of `{}`: reference {got:?}, artifact {:?}", lifs[0], out.shape));
                    }
                }
            }
        }
        if let (Op::Lif(_), Mode::TeacherForced(r)) = (&n.op, &mode) {
            match r.get(&n.name) {
                Some(o) if o.spikes.shape == out.shape => out.data.copy_from_slice(&o.spikes.data),
                o => {
                    let got = o.map(|o| o.spikes.shape.clone());
                    err = Some(anyhow::anyhow!("spikes of `{}`: reference {got:?}, artifact {:?}", n.name, out.shape));
                }
            }
        }
        if first_output == Some(id) {
            output = Some(Current { own: out.clone(), bound: d.clone() });
        }
        for i in &ins {
            remaining[i.index()] -= 1;
            if remaining[i.index()] == 0 {
                vals[i.index()] = None;
            }
        }
        if remaining[id.index()] > 0 {
            vals[id.index()] = Some((out.clone(), d));
        }
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    let output = output.ok_or_else(|| anyhow::anyhow!("the graph has no output"))?;
    Ok(Propagated { lif, output })
}
