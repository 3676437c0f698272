//! Small hand-made graphs shared by the unit tests of this crate.

use crate::interp::Array;
use crate::ir::{BatchNorm, BinaryOp, Conv2d, Graph, Lif, Op, ReduceOp, Reset};
use crate::tensor::Tensor;

/// Deterministic pseudo-random values in [-1, 1) (xorshift), good enough for weights.
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub fn conv(co: usize, ci: usize, k: usize, stride: usize, bias: bool, seed: u64) -> Op {
    Op::Conv2d(Conv2d {
        weight: Tensor::from_f32(vec![co, ci, k, k], values(co * ci * k * k, seed).iter().map(|v| v * 0.5).collect()),
        bias: bias.then(|| Tensor::from_f32(vec![co], values(co, seed + 1))),
        stride: [stride; 2],
        padding: [k / 2; 2],
        event_driven: false,
        algorithm: Default::default(),
    })
}

pub fn bn(c: usize, seed: u64) -> Op {
    let v = values(4 * c, seed);
    Op::BatchNorm(BatchNorm {
        gamma: Tensor::from_f32(vec![c], v[..c].iter().map(|x| 0.5 + 0.25 * x).collect()),
        beta: Tensor::from_f32(vec![c], v[c..2 * c].iter().map(|x| 0.1 * x).collect()),
        running_mean: Tensor::from_f32(vec![c], v[2 * c..3 * c].iter().map(|x| 0.1 * x).collect()),
        running_var: Tensor::from_f32(vec![c], v[3 * c..].iter().map(|x| 0.2 + 0.1 * x.abs()).collect()),
        eps: 1e-5,
    })
}

pub fn lif() -> Op {
    Op::Lif(Lif { tau: 2.0, v_threshold: 0.15, reset: Reset::Hard { v_reset: 0.0 }, decay_input: false })
}

/// input(3) -> repeat(T=2) -> conv 3->4 -> bn -> lif -> conv 4->4 s2 -> bn -> lif
/// -> conv 4->4 (bias) -> upsample -> reduce/mean_t -> conv 4->3 (bias) -> + input -> output.
pub fn small() -> Graph {
    let mut g = Graph::new();
    let x = g.add("input", Op::Input { channels: 3 }, &[]).unwrap();
    let r = g.add("input", Op::RepeatTime { steps: 2 }, &[x]).unwrap();
    let c = g.add("stem", conv(4, 3, 3, 1, false, 1), &[r]).unwrap();
    let b = g.add("stem.bn", bn(4, 2), &[c]).unwrap();
    let s = g.add("lif1", lif(), &[b]).unwrap();
    let c = g.add("down", conv(4, 4, 3, 2, false, 3), &[s]).unwrap();
    let b = g.add("down.bn", bn(4, 4), &[c]).unwrap();
    let s = g.add("lif2", lif(), &[b]).unwrap();
    let c = g.add("mix", conv(4, 4, 3, 1, true, 5), &[s]).unwrap();
    let u = g.add("up", Op::Upsample2x, &[c]).unwrap();
    let gate = g.add("gate", Op::Reduce { op: ReduceOp::Max, axes: vec![0, 3, 4] }, &[u]).unwrap();
    let gate = g.add("gate", Op::Sigmoid, &[gate]).unwrap();
    let u = g.add("gate", Op::Binary(BinaryOp::Mul), &[gate, u]).unwrap();
    let m = g.add("mean", Op::MeanTime, &[u]).unwrap();
    let o = g.add("head", conv(3, 4, 3, 1, true, 6), &[m]).unwrap();
    let y = g.add("residual", Op::Binary(BinaryOp::Add), &[o, x]).unwrap();
    g.add("output", Op::Output, &[y]).unwrap();
    g
}

/// A deterministic input batch `[n, 3, h, w]` in [0, 1).
pub fn input(n: usize, h: usize, w: usize) -> Array {
    Array::new(vec![n, 3, h, w], values(n * 3 * h * w, 99).iter().map(|v| 0.5 + 0.5 * v).collect())
}
