//! The flip bound: how far from its threshold a LIF neuron may sit and still fire differently
//! in two *valid* evaluations of the same network — evaluations that differ only in the order,
//! grouping and algorithm of their f32 operations (libtorch's convolution kernels against
//! spikerc's canonical order, Winograd against direct, BatchNorm folded against unfolded).
//!
//! # Derivation
//!
//! Forward error analysis (Higham, *Accuracy and Stability of Numerical Algorithms*, ch. 3):
//! `u = 2^-24` is the f32 unit roundoff and `gamma_k = k u / (1 - k u)`. Every bound below is
//! a bound on `|value_artifact - value_reference|` for one element, computed from *nominal*
//! values (the artifact's own, in the interpreter) by [`propagate`]; call it `D`.
//!
//! * A dot product `s = sum_i w_i x_i` of fan-in `n` (a convolution output: `n = ci kh kw`;
//!   `axis_linear`: `n = n_in`) evaluated in *any* order and grouping — recursive, pairwise,
//!   blocked, with or without fused multiply-add — lies within `gamma_n sum_i |w_i x_i|` of
//!   the exact value, `gamma_(n+1) (sum_i |w_i x_i| + |b|)` with a bias. Two such evaluations
//!   therefore differ by at most the sum of their two bounds.
//! * A convolution of inputs that themselves differ by `D_x` adds the exact linear map of the
//!   input difference: `sum_i |w_i| D_(x_i)` (the convolution with `|w|`). Spikes upstream of
//!   a first divergence are equal, and teacher-forced inputs are the reference's own bits:
//!   `D = 0` there, and the image is exact.
//! * A convolution contributes, per output with `S = sum_i |w_i x_i| + |b|`:
//!   reference (libtorch, any order, then its unfolded BatchNorm `fma(s, alpha, beta)`):
//!   `gamma_(n+2) S`; artifact, direct canonical order: `gamma_(n+1) S`; artifact, Winograd
//!   F(2x2, 3x3) (`compiler/src/winograd.rs`): `gamma_(ci+12) P` where `P` is the Winograd
//!   program run on magnitudes (`|B^T| |d| |B|`, `|G| |g| |G^T|`, `|A^T| . |A|`, see
//!   [`winograd_magnitude`]) and `ci + 12` counts its roundings on the longest path (2 for the
//!   input transform, 4 for the kernel transform, `ci + 1` for the channel sum, 4 for the
//!   output transform, 1 for the bias); BatchNorm folding (`w' = round(w alpha)`,
//!   `b' = round(beta)`): `2 u S`; f16 parameters (relative rounding `2^-11` against the f32
//!   reference): `2^-11 S`.
//! * Elementwise: `add`: `D_a + D_b + 2u|y|`; `mul`: `|a| D_b + |b| D_a + D_a D_b + 2u|y|`;
//!   `affine`: `|s| D + 2 gamma_2 (|s x| + |shift|)`; `relu`, `max` (1-Lipschitz): `D` (the
//!   largest `D` of a max's group); `sigmoid` (`1/4`-Lipschitz): `D / 4 + 2 * 8u |y|` (each
//!   implementation within 8 ulp: libm/Sleef `exp` within 1 ulp, the quotient adds 2
//!   roundings); `mean` of `k` values: `mean(D) + gamma_k mean(|x|) + 2u|y|` (the reference
//!   sums in f32); bilinear upsampling (weights in `[0, 1]`, 4 roundings):
//!   `up(D) + 2 gamma_4 up(|x|)`; `concat`, `repeat`: `D` moved along.
//!
//! For a LIF with input current difference `D_X` the membrane
//! `H_t = V_(t-1) - (V_(t-1) - v_r) / tau + X_t` differs by
//! `E_H(t) = |1 - 1/tau| E_V(t-1) + c D_X(t) + 2 gamma_4 M_t`, `c = 1` (`1/tau` with
//! `decay_input`), `M_t = |V| + (|V| + |v_r|) / tau + |X|` (decay_input:
//! `|V| + (|X| + |V| + |v_r|) / tau`) the magnitude of the 4-rounding update in each
//! evaluation. `E_V(t) = 0` after a hard reset that both evaluations made, `E_H + 2u|V|` after
//! a soft reset, else `E_H`. Teacher-forced, `V_(t-1)` is the reference's own: `E_V = 0`.
//!
//! A neuron whose spike differs is an accumulation-order **flip** when its reference margin
//! `|H_t - v_threshold| <= (1 + SLACK) E_H(t)` (plus `|v_threshold_artifact -
//! v_threshold_reference|` for f16 thresholds): the threshold lies between two values that
//! valid evaluations can produce. A larger margin cannot come from rounding: a **mismatch**.
//! [`SLACK`] covers the second-order terms (products of errors, magnitudes taken from the
//! artifact's values instead of exact ones) and the rounding of the bound's own arithmetic.
//!
//! What the bound assumes: the reference's convolutions are sums in some order (libtorch's
//! CPU kernels: im2col/GEMM or direct; not FFT or Winograd) and its elementwise kernels are
//! within the ulps stated above. It is rigorous otherwise — no constant is fitted to data.

mod propagate;
mod winograd;

pub use propagate::{propagate, Current, Mode, Propagated};
pub use winograd::winograd_magnitude;

use spikerc_compiler::ir::{Lif, Reset};

/// f32 unit roundoff, 2^-24.
pub const U: f64 = 1.0 / 16_777_216.0;
/// Relative rounding of an f16 parameter, 2^-11.
pub const F16_REL: f64 = 1.0 / 2048.0;
/// Ulps of one sigmoid implementation.
pub const SIGMOID_ULPS: f64 = 8.0;
/// Relative allowance for second-order terms and the bound's own rounding.
pub const SLACK: f64 = 1e-3;

/// `gamma_k = k u / (1 - k u)` (infinite when `k u >= 1`).
pub fn gamma(k: f64) -> f64 {
    let ku = k * U;
    if ku >= 1.0 {
        f64::INFINITY
    } else {
        ku / (1.0 - ku)
    }
}

/// Magnitude of one evaluation of the membrane update from the previous state `v_prev` and
/// the input current `x` (see the module docs).
pub fn update_magnitude(l: &Lif, v_prev: f64, x: f64) -> f64 {
    let (tau, vr) = (l.tau as f64, l.v_rest() as f64);
    if l.decay_input {
        v_prev.abs() + (x.abs() + v_prev.abs() + vr.abs()) / tau
    } else {
        v_prev.abs() + (v_prev.abs() + vr.abs()) / tau + x.abs()
    }
}

/// `E_H(t)`: the bound on the membrane difference from the previous state's `e_v`, the input
/// current's `d_x`, and the reference's `V_(t-1)` and `X_t`.
pub fn membrane_bound(l: &Lif, e_v: f64, d_x: f64, v_prev: f64, x: f64) -> f64 {
    let tau = l.tau as f64;
    let c = if l.decay_input { 1.0 / tau } else { 1.0 };
    (1.0 - 1.0 / tau).abs() * e_v + c * d_x + 2.0 * gamma(4.0) * update_magnitude(l, v_prev, x)
}

/// `E_V(t)`: the state difference carried into the next step when both evaluations `fired`
/// alike; `v` is the state after the reset.
pub fn state_bound(l: &Lif, e_h: f64, fired: bool, v: f64) -> f64 {
    match (l.reset, fired) {
        (Reset::Hard { .. }, true) => 0.0,
        (Reset::Soft, true) => e_h + 2.0 * U * v.abs(),
        (_, false) => e_h,
    }
}

/// Whether a neuron whose spike differs is within the flip bound: its reference margin
/// `H - v_threshold` against `E_H` plus the gap between the two thresholds.
pub fn within(margin: f64, e_h: f64, threshold_gap: f64) -> bool {
    margin.abs() <= e_h * (1.0 + SLACK) + threshold_gap
}

#[cfg(test)]
mod tests;
