//! The flip bound: sound on the examples it is derived for, and far from vacuous.

use super::*;
use crate::engine::{self, Interp};
use spikerc_compiler::passes::Precision;
use spikerc_models::spikerir::{random_checkpoint, Architecture};
use spikerc_models::HyperParams;

/// A deterministic pseudo-random sequence in [-1, 1).
fn lcg(seed: &mut u64) -> f32 {
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

#[test]
fn gamma_is_k_u_to_first_order_and_infinite_past_one() {
    assert_eq!(gamma(0.0), 0.0);
    assert!((gamma(1.0) / U - 1.0).abs() < 1e-6);
    assert!((gamma(1000.0) / (1000.0 * U) - 1.0).abs() < 1e-4);
    assert_eq!(gamma(2.0 / U), f64::INFINITY);
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
            let fwd = p.iter().fold(0f32, |a, &x| a + x);
            let bwd = p.iter().rev().fold(0f32, |a, &x| a + x);
            fn pairwise(v: &[f32]) -> f32 {
                if v.len() <= 2 {
                    v.iter().fold(0f32, |a, &x| a + x)
                } else {
                    let (l, r) = v.split_at(v.len() / 2);
                    pairwise(l) + pairwise(r)
                }
            }
            let pw = pairwise(&p);
            let mag: f64 = p.iter().map(|x| x.abs() as f64).sum();
            let b = value_bound(mag, n as f64 + 1.0);
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
    let l = Lif { tau: 2.0, v_threshold: 0.15, reset: Reset::Hard { v_reset: 0.0 }, decay_input: false };
    assert_eq!(state_bound(&l, 1e-6, true), 0.0);
    assert_eq!(state_bound(&l, 1e-6, false), 1e-6);
    let e = membrane_bound(&l, 1e-6, 0.0, 0.0, 0.0);
    assert!((e - 0.5e-6).abs() < 1e-18, "(1 - 1/tau) of the previous error, got {e:e}");
    let soft = Lif { reset: Reset::Soft, ..l };
    assert_eq!(state_bound(&soft, 1e-6, true), 1e-6);
    let di = Lif { decay_input: true, ..l };
    assert!((membrane_bound(&di, 0.0, 1e-6, 0.0, 0.0) - 0.5e-6).abs() < 1e-18);
}

fn model(levels: usize, dim: usize, t: usize) -> (spikerc_compiler::Artifact, HyperParams) {
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
    (spikerc_models::compile(&ckpt, &hp, Precision::F32, "synthetic").unwrap(), hp)
}

fn image(h: usize, w: usize) -> Array {
    let mut seed = 11;
    Array::new(vec![1, 3, h, w], (0..3 * h * w).map(|_| 0.5 + 0.5 * lcg(&mut seed)).collect())
}

/// The interpreter's f32 and f64 accumulation are two valid evaluations: up to the first
/// module whose spikes differ, every LIF input current of the f32 run lies within the bound
/// of the f64 run's, and a level-1 spike convolution's input current carries `K = ci kh kw + 1 + 4` (ci = dim = 16).
#[test]
fn f32_and_f64_accumulation_stay_within_the_bound_up_to_the_first_flip() {
    let (art, _) = model(2, 16, 4);
    let x = image(16, 16);
    let all = |_: &str| true;
    let f32r = engine::run(&Interp { graph: &art.graph, wide: false }, &x, None, &all).unwrap();
    let f64r = engine::run(&Interp { graph: &art.graph, wide: true }, &x, None, &all).unwrap();
    let spikes: BTreeMap<String, Array> = f64r.observed.iter().map(|(k, o)| (k.clone(), o.spikes.clone())).collect();
    let mags = magnitudes(&art.graph, &x, &Forcing { spikes: &spikes, inputs: None }).unwrap();
    let mut checked = 0;
    let mut worst = 0f64;
    for (m, _) in crate::localize::lif_modules(&art.graph) {
        let (a, b) = (&f32r.observed[&m], &f64r.observed[&m]);
        let mag = &mags.lif_inputs[&m];
        for ((xa, xb), am) in a.input.data.iter().zip(&b.input.data).zip(&mag.a.data) {
            assert!((*am as f64) >= (*xb as f64).abs() * (1.0 - 1e-6), "{m}: magnitude below the value");
            let d = (xa - xb).abs() as f64;
            let bound = value_bound(*am as f64, mag.k);
            assert!(d <= bound, "{m}: f32 and f64 inputs differ by {d:e} > bound {bound:e}");
            worst = worst.max(d / bound.max(f64::MIN_POSITIVE));
        }
        if m.starts_with("encoder_level1") && m.ends_with("residual.3") {
            assert_eq!(mag.k, (16 * 9 + 1) as f64 + BN_ROUNDINGS, "{m}");
        }
        checked += 1;
        if a.spikes != b.spikes {
            break;
        }
    }
    assert!(checked >= 2, "checked {checked} modules");
    assert!(worst > 0.0, "the two evaluations never differed");
}

