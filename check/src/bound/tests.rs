//! The flip bound on hand-computed cases (a near-threshold neuron that flips under another
//! summation order and one that cannot), its soundness against other valid evaluations
//! (summation orders, f64 accumulation, Winograd against direct), and that it is not vacuous.

use super::*;
use crate::engine::{self, Interp, Observation};
use crate::localize;
use spikerc_compiler::interp::Array;
use spikerc_compiler::ir::{Conv2d, ConvAlgorithm, Lif, Op, Reset};
use spikerc_compiler::passes::Precision;
use spikerc_compiler::{Graph, Tensor, Verified};
use spikerc_models::spikerir::{random_checkpoint, Architecture};
use spikerc_models::HyperParams;
use std::collections::BTreeMap;

/// A deterministic pseudo-random sequence in [-1, 1).
fn lcg(seed: &mut u64) -> f32 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

fn lif(v_threshold: f32) -> Lif {
    Lif { tau: 2.0, v_threshold, reset: Reset::Hard { v_reset: 0.0 }, decay_input: false }
}

/// input(ci channels, 1x1 image) -> repeat(T = 1) -> 1x1 conv ci -> 1 (weights `w`) -> LIF -> output.
fn one_neuron(w: &[f32], bias: Option<f32>, l: Lif) -> Verified {
    let mut g = Graph::new();
    let x = g.add("input", Op::Input { channels: w.len() }, &[]).unwrap();
    let r = g.add("repeat", Op::RepeatTime { steps: 1 }, &[x]).unwrap();
    let conv = Conv2d {
        weight: Tensor::from_f32(vec![1, w.len(), 1, 1], w.to_vec()),
        bias: bias.map(|b| Tensor::from_f32(vec![1], vec![b])),
        stride: [1, 1],
        padding: [0, 0],
        event_driven: false,
        algorithm: ConvAlgorithm::Direct,
    };
    let c = g.add("conv", Op::Conv2d(conv), &[r]).unwrap();
    let s = g.add("lif", Op::Lif(l), &[c]).unwrap();
    g.add("output", Op::Output, &[s]).unwrap();
    Verified::new(g).unwrap()
}

fn image(x: &[f32]) -> Array {
    Array::new(vec![1, x.len(), 1, 1], x.to_vec())
}

/// A reference observation of the one-neuron graph whose input current is `x_ref`.
fn reference(x_ref: f32, l: &Lif) -> BTreeMap<String, Observation> {
    let input = Array::new(vec![1, 1, 1, 1, 1], vec![x_ref]);
    let membrane = engine::membrane(&input, l);
    let spikes = Array::new(input.shape.clone(), vec![if membrane.data[0] >= l.v_threshold { 1.0 } else { 0.0 }]);
    [("lif".to_string(), Observation { input, membrane, spikes })].into()
}

#[test]
fn gamma_is_k_u_to_first_order_and_infinite_past_one() {
    assert_eq!(gamma(0.0), 0.0);
    assert!((gamma(1.0) / U - 1.0).abs() < 1e-6);
    assert!((gamma(1000.0) / (1000.0 * U) - 1.0).abs() < 1e-4);
    assert_eq!(gamma(2.0 / U), f64::INFINITY);
}

/// w = [0.5, -0.25, 1], x = [1, 2, 0.5], b = 0.5: sum |w x| + |b| = 2, fan-in 3, so the
/// input current's bound is (gamma_5 + 2u + gamma_4) * 2 = 22u to first order; the membrane
/// (V = 0, X = 1) adds 2 gamma_4 * 1 = 8u: E_H = 30u.
#[test]
fn a_convolutions_bound_by_hand() {
    let l = lif(0.15);
    let g = one_neuron(&[0.5, -0.25, 1.0], Some(0.5), l);
    let p = propagate(&g, &image(&[1.0, 2.0, 0.5]), false, Mode::Free).unwrap();
    let c = &p.lif["lif"];
    assert_eq!(c.own.data, vec![1.0]);
    let d = c.bound.data[0] as f64;
    assert!((d / (22.0 * U) - 1.0).abs() < 1e-5, "D = {d:e} = {} u", d / U);
    let e_h = membrane_bound(&l, 0.0, d, 0.0, 1.0);
    assert!((e_h / (30.0 * U) - 1.0).abs() < 1e-5, "E_H = {} u", e_h / U);
}

/// Sums of `p` in the artifact's order (ascending) and reversed (another valid order).
fn forward(p: &[f32]) -> f32 {
    p.iter().fold(0f32, |a, &x| a + x)
}
fn backward(p: &[f32]) -> f32 {
    p.iter().rev().fold(0f32, |a, &x| a + x)
}

/// A neuron whose input current, summed in the reverse order (a valid reference), falls just
/// below the threshold the artifact's ascending order reaches: the spike differs, the
/// reference's margin (a few ulps) is within the bound, and both the free run and the
/// teacher-forced check call it a flip. The bound also holds every one of the 720 orders of
/// the six terms.
#[test]
fn a_neuron_that_flips_under_another_summation_order_is_a_flip() {
    let mut seed = 1;
    let (w, fwd, bwd) = (0..10_000)
        .map(|_| {
            let w: Vec<f32> = (0..6).map(|_| lcg(&mut seed)).collect();
            let (f, b) = (forward(&w), backward(&w));
            (w, f, b)
        })
        .find(|(_, f, b)| b < f && *f > 0.05)
        .expect("some six terms sum differently in the two orders");
    // The threshold is what the artifact reaches: it fires, the reference (bwd) does not.
    let l = lif(fwd);
    let g = one_neuron(&w, None, l);
    let x = image(&[1.0; 6]);
    let r = reference(bwd, &l);
    let all = |_: &str| true;
    let art = engine::run(&Interp { graph: &g, wide: false }, &x, None, &all).unwrap();
    assert_eq!(art.observed["lif"].spikes.data, vec![1.0], "the artifact fires");
    assert_eq!(r["lif"].spikes.data, vec![0.0], "the reference does not");
    let same = |l: &Lif| *l;
    let d = localize::first_divergence(&g, &x, false, &art.observed, &r, &same).unwrap().expect("a divergence");
    assert_eq!((d.module.as_str(), d.differing, d.beyond_bound), ("lif", 1, 0), "{d:?}");
    let n = &d.neurons[0];
    assert_eq!(n.margin, bwd as f64 - fwd as f64);
    assert!(n.margin < 0.0 && n.margin.abs() <= n.bound, "{n:?}");
    // By hand: sum |w| (x = 1), fan-in 6 (no bias): (gamma_8 + 2u + gamma_7) S + 2 gamma_4 |X|.
    let s: f64 = w.iter().map(|v| v.abs() as f64).sum();
    let want = (gamma(8.0) + 2.0 * U + gamma(7.0)) * s + 2.0 * gamma(4.0) * bwd.abs() as f64;
    assert!((n.bound / want - 1.0).abs() < 1e-5, "bound {:e}, by hand {want:e}", n.bound);
    let lw = localize::layerwise(&g, &x, false, &r, &r["lif"].spikes, &same).unwrap();
    assert!(lw.disagreeing.is_empty(), "{lw:?}");
    assert_eq!(lw.modules.len(), 1, "the teacher-forced artifact fires on the reference's state too");
    // Every order of the six terms stays within the input current's bound.
    let dx = n.bound - 2.0 * gamma(4.0) * bwd.abs() as f64;
    let mut idx: Vec<usize> = (0..6).collect();
    let mut worst = 0f64;
    permutations(&mut idx, 0, &mut |perm| {
        let s = perm.iter().fold(0f32, |a, &i| a + w[i]);
        worst = worst.max((s as f64 - fwd as f64).abs());
    });
    assert!(worst > 0.0 && worst <= dx, "orders differ by up to {worst:e}, bound {dx:e}");
}

fn permutations(v: &mut Vec<usize>, k: usize, f: &mut dyn FnMut(&[usize])) {
    if k == v.len() {
        f(v);
        return;
    }
    for i in k..v.len() {
        v.swap(k, i);
        permutations(v, k + 1, f);
        v.swap(k, i);
    }
}

/// A neuron 3 bounds below threshold in the reference cannot fire in any valid evaluation:
/// an artifact that fires there is a mismatch (free run and teacher-forced), and no order of
/// its terms reaches the threshold.
#[test]
fn a_neuron_beyond_the_bound_is_a_mismatch() {
    let w = [0.5f32, -0.25, 0.125, 0.0625, 0.03125, -0.015625];
    let x_art = forward(&w); // 0.453125, exact
    let s: f64 = w.iter().map(|v| v.abs() as f64).sum();
    let e_h = (gamma(8.0) + 2.0 * U + gamma(7.0)) * s + 2.0 * gamma(4.0) * x_art as f64;
    // The reference computes 3 E_H less (say a wrong weight): silent, 3 E_H below threshold.
    let x_ref = (x_art as f64 - 3.0 * e_h) as f32;
    let l = lif(x_art);
    let g = one_neuron(&w, None, l);
    let x = image(&[1.0; 6]);
    let r = reference(x_ref, &l);
    let all = |_: &str| true;
    let art = engine::run(&Interp { graph: &g, wide: false }, &x, None, &all).unwrap();
    let same = |l: &Lif| *l;
    let d = localize::first_divergence(&g, &x, false, &art.observed, &r, &same).unwrap().expect("a divergence");
    assert_eq!((d.differing, d.beyond_bound), (1, 1), "{d:?}");
    assert!(!d.neurons[0].within() && d.neurons[0].margin < -2.9 * d.neurons[0].bound, "{:?}", d.neurons[0]);
    let lw = localize::layerwise(&g, &x, false, &r, &r["lif"].spikes, &same).unwrap();
    assert_eq!(lw.disagreeing, vec!["lif".to_string()], "{lw:?}");
    let mut idx: Vec<usize> = (0..6).collect();
    permutations(&mut idx, 0, &mut |perm| {
        let s = perm.iter().fold(0f32, |a, &i| a + w[i]);
        assert!((s as f64) > x_ref as f64 + e_h, "order {perm:?} gives {s}");
    });
}

/// Three summation orders of the same dot products (forward, backward, pairwise) never
/// differ by more than `2 gamma_(n+1) sum |w x|`, and the bound is within a factor of a few
/// thousand of the observed worst case (not vacuous).
#[test]
fn dot_products_in_three_orders_stay_within_the_bound() {
    let mut seed = 7;
    let mut worst_ratio = 0f64;
    for n in [9usize, 144, 216, 432, 1152] {
        for _ in 0..200 {
            let p: Vec<f32> = (0..n).map(|_| lcg(&mut seed) * lcg(&mut seed)).collect();
            fn pairwise(v: &[f32]) -> f32 {
                if v.len() <= 2 {
                    v.iter().fold(0f32, |a, &x| a + x)
                } else {
                    let (l, r) = v.split_at(v.len() / 2);
                    pairwise(l) + pairwise(r)
                }
            }
            let (fwd, bwd, pw) = (forward(&p), backward(&p), pairwise(&p));
            let mag: f64 = p.iter().map(|x| x.abs() as f64).sum();
            let b = 2.0 * gamma(n as f64 + 1.0) * mag;
            for (x, y) in [(fwd, bwd), (fwd, pw), (bwd, pw)] {
                let d = (x as f64 - y as f64).abs();
                assert!(d <= b, "n = {n}: orders differ by {d:e} > bound {b:e}");
                worst_ratio = worst_ratio.max(d / b);
            }
        }
    }
    assert!(worst_ratio > 1e-4, "bound {worst_ratio:e} x looser than needed");
}

#[test]
fn a_hard_reset_clears_the_membrane_error_and_decay_shrinks_it() {
    let l = lif(0.15);
    assert_eq!(state_bound(&l, 1e-6, true, 0.0), 0.0);
    assert_eq!(state_bound(&l, 1e-6, false, 0.1), 1e-6);
    let e = membrane_bound(&l, 1e-6, 0.0, 0.0, 0.0);
    assert!((e - 0.5e-6).abs() < 1e-18, "(1 - 1/tau) of the previous error, got {e:e}");
    let soft = Lif { reset: Reset::Soft, ..l };
    assert!((state_bound(&soft, 1e-6, true, 0.5) - (1e-6 + U)).abs() < 1e-18);
    let di = Lif { decay_input: true, ..l };
    assert!((membrane_bound(&di, 0.0, 1e-6, 0.0, 0.0) - 0.5e-6).abs() < 1e-18);
}

/// A 3x3 convolution 16 -> 16 marked Winograd against the f64 direct sum: within the bound,
/// and its magnitude `P` within a small factor of the direct one.
#[test]
fn winograd_stays_within_its_bound() {
    let mut seed = 3;
    let (ci, co, h, w) = (16, 16, 6, 7);
    let wt: Vec<f32> = (0..co * ci * 9).map(|_| lcg(&mut seed) * 0.1).collect();
    let conv = |algorithm| Conv2d {
        weight: Tensor::from_f32(vec![co, ci, 3, 3], wt.clone()),
        bias: Some(Tensor::from_f32(vec![co], (0..co).map(|i| i as f32 * 0.01).collect())),
        stride: [1, 1],
        padding: [1, 1],
        event_driven: false,
        algorithm,
    };
    let x = Array::new(vec![1, ci, h, w], (0..ci * h * w).map(|_| lcg(&mut seed)).collect());
    let shape = vec![1, co, h, w];
    let wino = spikerc_compiler::interp::conv2d(&x, &conv(ConvAlgorithm::Winograd2x2), &shape, false);
    let exact = spikerc_compiler::interp::conv2d(&x, &conv(ConvAlgorithm::Direct), &shape, true);
    let xa = Array::new(x.shape.clone(), x.data.iter().map(|v| v.abs()).collect());
    let p = winograd_magnitude(&xa, &conv(ConvAlgorithm::Winograd2x2), &shape);
    let mut abs_direct = conv(ConvAlgorithm::Direct);
    abs_direct.weight = Tensor::from_f32(vec![co, ci, 3, 3], wt.iter().map(|v| v.abs()).collect());
    abs_direct.bias = None;
    let s = spikerc_compiler::interp::conv2d(&xa, &abs_direct, &shape, true);
    let mut worst = 0f64;
    for i in 0..wino.len() {
        let b = 0.01 * ((i / (h * w)) % co) as f64;
        let bound = gamma(ci as f64 + 12.0) * (p.data[i] as f64 + b) + U * exact.data[i].abs() as f64;
        let d = (wino.data[i] as f64 - exact.data[i] as f64).abs();
        assert!(d <= bound, "output {i}: {d:e} > {bound:e}");
        worst = worst.max(d / bound);
        let ratio = p.data[i] as f64 / s.data[i] as f64;
        assert!((1.0..=16.0).contains(&ratio), "P / S = {ratio}");
    }
    assert!(worst > 1e-3, "bound {worst:e} x looser than needed");
}

fn model(levels: usize, dim: usize, t: usize) -> spikerc_compiler::Artifact {
    let arch = Architecture {
        dim,
        levels,
        en_blocks: vec![1; levels],
        de_blocks: vec![1; levels],
        in_channels: 3,
        out_channels: 3,
    };
    let hp = HyperParams { time_steps: t, ..HyperParams::default() };
    let ckpt = random_checkpoint(&arch, &hp, 3).unwrap();
    spikerc_models::compile(&ckpt, &hp, Precision::F32, "synthetic").unwrap()
}

/// The interpreter's f32 and f64 accumulation are two valid evaluations of a whole
/// SpikerIR graph (Winograd shortcuts, attention, refinement): up to the first module whose
/// spikes differ, every LIF input current of the f32 run lies within the free-run bound of
/// the f64 run's, and teacher-forced every module agrees.
#[test]
fn f32_and_f64_accumulation_stay_within_the_bound() {
    let art = model(2, 16, 4);
    let mut seed = 11;
    let x = Array::new(vec![1, 3, 16, 16], (0..3 * 16 * 16).map(|_| 0.5 + 0.5 * lcg(&mut seed)).collect());
    let all = |_: &str| true;
    let f32r = engine::run(&Interp { graph: &art.graph, wide: false }, &x, None, &all).unwrap();
    let f64r = engine::run(&Interp { graph: &art.graph, wide: true }, &x, None, &all).unwrap();
    let p = propagate(&art.graph, &x, false, Mode::Free).unwrap();
    let mut checked = 0;
    let mut worst = 0f64;
    for (m, _) in localize::lif_modules(&art.graph) {
        let (a, b) = (&f32r.observed[&m], &f64r.observed[&m]);
        let c = &p.lif[&m];
        assert_eq!(c.own.data, a.input.data, "{m}: the bound's run is the artifact's");
        for ((xa, xb), d) in a.input.data.iter().zip(&b.input.data).zip(&c.bound.data) {
            let diff = (xa - xb).abs() as f64;
            assert!(diff <= *d as f64, "{m}: f32 and f64 inputs differ by {diff:e} > bound {d:e}");
            worst = worst.max(diff / (*d as f64).max(f64::MIN_POSITIVE));
        }
        checked += 1;
        if a.spikes != b.spikes {
            break;
        }
    }
    assert!(checked >= 2, "checked {checked} modules");
    assert!(worst > 1e-3, "the bound is {:e} x the worst observed difference", 1.0 / worst);
    let lw = localize::layerwise(&art.graph, &x, false, &f64r.observed, f64r.output().unwrap(), &|l: &Lif| *l).unwrap();
    assert!(lw.disagreeing.is_empty(), "{:?}", lw);
    eprintln!("checked {checked} modules, worst difference / bound {worst:.3e}; layer-wise {} modules flip", lw.modules.len());
}
