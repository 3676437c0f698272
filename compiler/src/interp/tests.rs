//! Unit tests of the interpreter's kernels against hand-computed values.

use super::*;
use crate::ir::{Lif, Reset};

fn lif(reset: Reset, decay_input: bool) -> Lif {
    Lif {
        tau: 2.0,
        v_threshold: 0.15,
        reset,
        decay_input,
    }
}

fn train(x: &[f32], l: &Lif) -> (Vec<f32>, u64) {
    let (s, n) = lif_forward(&Array::new(vec![x.len(), 1], x.to_vec()), l);
    (s.data, n)
}

#[test]
fn lif_hard_reset_follows_the_model_text() {
    // H1 = 0.1 (no spike, V = 0.1); H2 = 0.05 + 0.12 = 0.17 (spike, V = 0);
    // H3 = 0.3 (spike); H4 = 0 + 0.1 = 0.1 (no spike).
    let (s, n) = train(
        &[0.1, 0.12, 0.3, 0.1],
        &lif(Reset::Hard { v_reset: 0.0 }, false),
    );
    assert_eq!(s, [0.0, 1.0, 1.0, 0.0]);
    assert_eq!(n, 2);
}

#[test]
fn lif_soft_reset_keeps_the_excess() {
    // H1 = 0.4 -> spike, V = 0.25; H2 = 0.125 + 0 -> spike? 0.125 < 0.15: no, V = 0.125;
    // H3 = 0.0625 + 0.1 = 0.1625 -> spike.
    let (s, _) = train(&[0.4, 0.0, 0.1], &lif(Reset::Soft, false));
    assert_eq!(s, [1.0, 0.0, 1.0]);
}

#[test]
fn lif_decay_input_divides_the_input_by_tau() {
    // H = V + (X - V) / 2: H1 = 0.2 / 2 = 0.1 (no), H2 = 0.1 + (0.3 - 0.1) / 2 = 0.2 (spike).
    let (s, _) = train(&[0.2, 0.3], &lif(Reset::Hard { v_reset: 0.0 }, true));
    assert_eq!(s, [0.0, 1.0]);
}

#[test]
fn bilinear_up2_matches_pytorch_align_corners_false() {
    let x = Array::new(vec![1, 1, 2, 2], vec![0.0, 1.0, 2.0, 3.0]);
    let y = bilinear_up2(&x);
    assert_eq!(y.shape, [1, 1, 4, 4]);
    #[rustfmt::skip]
    let want = [
        0.0, 0.25, 0.75, 1.0,
        0.5, 0.75, 1.25, 1.5,
        1.5, 1.75, 2.25, 2.5,
        2.0, 2.25, 2.75, 3.0,
    ];
    assert_eq!(y.data, want);
}

#[test]
fn reduce_keeps_axes_and_averages_in_f64() {
    let x = Array::new(vec![2, 1, 3], vec![1.0, 2.0, 3.0, 5.0, 7.0, 9.0]);
    let m = kernels::reduce(&x, ReduceOp::Mean, &[0, 2], &[1, 1, 1]);
    assert_eq!(m.data, [4.5]);
    let mx = kernels::reduce(&x, ReduceOp::Max, &[2], &[2, 1, 1]);
    assert_eq!(mx.data, [3.0, 9.0]);
}

#[test]
fn reflect_padding_mirrors_without_repeating_the_edge_and_crop_undoes_it() {
    let x = Array::new(vec![1, 1, 1, 3], vec![1.0, 2.0, 3.0]);
    let p = x.pad_reflect_to_multiple(8);
    assert_eq!(p.shape, [1, 1, 8, 8]);
    assert_eq!(&p.data[..8], [1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 2.0]);
    assert_eq!(p.crop(1, 3), x);
}

#[test]
fn inputs_of_wrong_rank_channels_or_size_are_rejected() {
    let g = crate::verify::Verified::new(crate::test_graphs::small()).unwrap();
    let e = run(&g, &Array::zeros(vec![1, 1, 8, 8])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "input has shape [1, 1, 8, 8], expected [N, 3, H, W]"
    );
    let e = run(&g, &Array::zeros(vec![1, 3, 7, 8])).unwrap_err();
    assert!(e.to_string().contains("divisible by 2"), "{e}");
}
