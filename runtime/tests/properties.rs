//! Property tests: random small convolutions and LIFs, the runtime against the reference
//! interpreter bit for bit, at every instruction-set level this CPU supports (forced down
//! from the detected one) and 1 and 2 threads. Covers the AC path (spike convolutions fed by
//! packed LIF bitmaps and by self-packed spikes), the dense MAC path, Winograd, and f16
//! weights (the exact fixed-point spike accumulation). Case counts are bounded so the suite
//! stays fast in the test profile.

use proptest::prelude::*;
use spikerc_compiler::interp::{self, Array};
use spikerc_compiler::ir::{BinaryOp, Conv2d, ConvAlgorithm, Lif, Reset};
use spikerc_compiler::{Graph, Op, Tensor, Verified};
use spikerc_runtime::{Level, Program, RunOptions};

mod common;
use common::values;

/// A convolution's shape and numbers.
#[derive(Clone, Debug)]
struct ConvSpec {
    ci: usize,
    co: usize,
    k: usize,
    stride: usize,
    pad: usize,
    bias: bool,
    f16: bool,
    seed: u64,
}

impl ConvSpec {
    fn op(&self, event_driven: bool, algorithm: ConvAlgorithm) -> Op {
        let n = self.co * self.ci * self.k * self.k;
        let weight = Tensor::from_f32(vec![self.co, self.ci, self.k, self.k], values(n, self.seed));
        Op::Conv2d(Conv2d {
            weight: if self.f16 { weight.to_f16() } else { weight },
            bias: self
                .bias
                .then(|| Tensor::from_f32(vec![self.co], values(self.co, self.seed + 1))),
            stride: [self.stride; 2],
            padding: [self.pad; 2],
            event_driven,
            algorithm,
        })
    }
}

fn conv_spec(max_k: usize) -> impl Strategy<Value = ConvSpec> {
    (1usize..=20, 1usize..=36, 0usize..=(max_k / 2), 1usize..=2, any::<bool>(), any::<bool>(), any::<u64>())
        .prop_flat_map(|(ci, co, half, stride, bias, f16, seed)| {
            // The IR's convolutions keep H/stride x W/stride on symbolic axes: "same" padding.
            let k = 2 * half + 1;
            Just(ConvSpec { ci, co, k, stride, pad: half, bias, f16, seed })
        })
}

fn lif_params() -> impl Strategy<Value = Lif> {
    (1.2f32..4.0, 0.05f32..0.6, any::<bool>(), any::<bool>()).prop_map(|(tau, th, soft, decay)| Lif {
        tau,
        v_threshold: th,
        reset: if soft { Reset::Soft } else { Reset::Hard { v_reset: 0.0 } },
        decay_input: decay,
    })
}

/// Runs `g` on `x` at every level at or below the detected one, 1 and 2 threads, and compares
/// every output bit and every spike count with the interpreter.
fn check(g: &Verified, x: &Array) -> Result<(), TestCaseError> {
    let want = interp::run(g, x).unwrap();
    for level in Level::detect().and_below() {
        for threads in [1, 2] {
            let r = Program::with_level(g, level.isa())
                .run(x, &RunOptions { threads, profile: false })
                .unwrap();
            prop_assert_eq!(r.outputs.len(), want.outputs.len());
            for (a, b) in r.outputs.iter().zip(&want.outputs) {
                prop_assert_eq!(&a.shape, &b.shape);
                let bits = |v: &Array| v.data.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                prop_assert!(bits(a) == bits(b), "{} threads {threads}: outputs differ", level.name());
            }
            prop_assert_eq!(&r.spikes, &want.spikes, "{} threads {}", level.name(), threads);
        }
    }
    Ok(())
}

/// An `[n, c, h, w]` input with values in [0, 1) (or [-1, 1) when `signed`), some exact zeros.
fn input(n: usize, c: usize, h: usize, w: usize, seed: u64, signed: bool) -> Array {
    let v = values(n * c * h * w, seed);
    let data = v
        .iter()
        .enumerate()
        .map(|(i, &x)| match (i % 13, signed) {
            (0, _) => 0.0,
            (_, true) => x,
            (_, false) => 0.5 + 0.5 * x,
        })
        .collect();
    Array::new(vec![n, c, h, w], data)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// input -> repeat T -> LIF1 -> { conv A (event) -> LIF2 -> conv B (event), conv C (event) }
    /// -> A-branch + C -> output. LIF1 has two consumers (each conv packs the spikes itself),
    /// LIF2 one (its bitmaps are written directly): both AC entry points.
    #[test]
    fn spike_convs_and_lifs_match_the_interpreter(
        a in conv_spec(5), l1 in lif_params(), l2 in lif_params(),
        t in 1usize..=3, n in 1usize..=2, hh in 1usize..=6, ww in 1usize..=6, seed in any::<u64>(),
    ) {
        let s = a.stride;
        let (h, w) = (hh * s.max(1), ww * s.max(1));
        prop_assume!(h + 2 * a.pad >= a.k && w + 2 * a.pad >= a.k);
        let b = ConvSpec { ci: a.co, k: 3, stride: 1, pad: 1, seed: a.seed ^ 7, ..a.clone() };
        let c = ConvSpec { stride: a.stride, seed: a.seed ^ 11, ..a.clone() };
        let mut g = Graph::new();
        let x = g.add("input", Op::Input { channels: a.ci }, &[]).unwrap();
        let r = g.add("encode", Op::RepeatTime { steps: t }, &[x]).unwrap();
        let s1 = g.add("lif1", Op::Lif(l1), &[r]).unwrap();
        let ca = g.add("conv_a", a.op(true, ConvAlgorithm::Direct), &[s1]).unwrap();
        let s2 = g.add("lif2", Op::Lif(l2), &[ca]).unwrap();
        let cb = g.add("conv_b", b.op(true, ConvAlgorithm::Direct), &[s2]).unwrap();
        let cc = g.add("conv_c", c.op(true, ConvAlgorithm::Direct), &[s1]).unwrap();
        let y = g.add("sum", Op::Binary(BinaryOp::Add), &[cb, cc]).unwrap();
        g.add("output", Op::Output, &[y]).unwrap();
        let g = Verified::new(g).unwrap();
        check(&g, &input(n, a.ci, h, w, seed, false))?;
    }

    /// input -> conv (real input, direct) -> output, any kernel / stride / padding.
    #[test]
    fn dense_convs_match_the_interpreter(
        a in conv_spec(5), n in 1usize..=2, hh in 1usize..=8, ww in 1usize..=8, seed in any::<u64>(),
    ) {
        let (h, w) = (hh * a.stride, ww * a.stride);
        prop_assume!(h + 2 * a.pad >= a.k && w + 2 * a.pad >= a.k);
        let mut g = Graph::new();
        let x = g.add("input", Op::Input { channels: a.ci }, &[]).unwrap();
        let c = g.add("conv", a.op(false, ConvAlgorithm::Direct), &[x]).unwrap();
        g.add("output", Op::Output, &[c]).unwrap();
        check(&Verified::new(g).unwrap(), &input(n, a.ci, h, w, seed, true))?;
    }

    /// input -> 3x3 Winograd conv -> LIF -> output: the Winograd path and a LIF on its result.
    #[test]
    fn winograd_convs_match_the_interpreter(
        a in conv_spec(3), l in lif_params(), n in 1usize..=2, h in 1usize..=13, w in 1usize..=40,
        seed in any::<u64>(),
    ) {
        let a = ConvSpec { k: 3, stride: 1, pad: 1, ..a };
        let mut g = Graph::new();
        let x = g.add("input", Op::Input { channels: a.ci }, &[]).unwrap();
        let c = g.add("conv", a.op(false, ConvAlgorithm::Winograd2x2), &[x]).unwrap();
        let r = g.add("encode", Op::RepeatTime { steps: 2 }, &[c]).unwrap();
        let s = g.add("lif", Op::Lif(l), &[r]).unwrap();
        let m = g.add("mean", Op::MeanTime, &[s]).unwrap();
        g.add("output", Op::Output, &[m]).unwrap();
        check(&Verified::new(g).unwrap(), &input(n, a.ci, h, w, seed, true))?;
    }
}
