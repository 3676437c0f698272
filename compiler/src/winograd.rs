//! Winograd F(2x2, 3x3): the arithmetic of convolutions marked
//! [`ConvAlgorithm::Winograd2x2`](crate::ir::ConvAlgorithm).
//!
//! A 3x3, stride-1, padding-1 convolution is computed per 2x2 block of outputs ("tile") from
//! the 4x4 input patch around it (zeros outside the image):
//!
//! ```text
//! U[o][i] = G g[o][i] G^T          (4x4, once per weight, at load time)
//! V[i]    = B^T d[i] B             (4x4, per tile and input channel)
//! M[o]    = sum_i U[o][i] . V[i]   (16 independent dot products over input channels)
//! Y[o]    = A^T M[o] A + bias[o]   (2x2 outputs)
//! ```
//!
//! with `B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]`, `G = [1 0 0; 1/2 1/2 1/2;
//! 1/2 -1/2 1/2; 0 0 1]`, `A^T = [1 1 1 0; 0 1 -1 -1]`. It needs 16 multiplies per tile and
//! input channel instead of 36 (2.25x fewer); the results differ from the direct convolution
//! by rounding only (a few ulps of the output's magnitude).
//!
//! **Arithmetic contract** (the interpreter computes exactly this, and every engine must give
//! the same bits): every matrix product is applied rows first (`B^T d`, `G g`, `A^T M`), then
//! columns, each element by the fixed expression in [`in_1d`], [`kernel_1d`] and [`out_1d`]
//! (left to right); `M` accumulates in f32 from `+0`, input channel 0 first, one multiply then
//! one add per term (no fused multiply-add); the bias is added last. Outputs of a tile that
//! fall outside the image are discarded. Engines may compute the row pass once per input
//! column and share it between horizontally adjacent tiles: it is the same expression on the
//! same operands.

use std::ops::{Add, Mul, Sub};

/// Outputs per tile side.
pub const TILE: usize = 2;
/// Input patch side (`TILE + 2`).
pub const PATCH: usize = 4;
/// Transform positions per tile (`PATCH * PATCH`).
pub const POSITIONS: usize = 16;

/// `B^T` applied to one column `[d0, d1, d2, d3]` of an input patch.
#[inline(always)]
pub fn in_1d<T: Copy + Add<Output = T> + Sub<Output = T>>(d: [T; 4]) -> [T; 4] {
    [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]
}

/// `A^T` applied to one column `[m0, m1, m2, m3]` of a transformed tile.
#[inline(always)]
pub fn out_1d<T: Copy + Add<Output = T> + Sub<Output = T>>(m: [T; 4]) -> [T; 2] {
    [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]
}

/// `G` applied to one column `[g0, g1, g2]` of a 3x3 kernel.
#[inline(always)]
pub fn kernel_1d<T: Copy + Add<Output = T> + Sub<Output = T> + Mul<f32, Output = T>>(
    g: [T; 3],
) -> [T; 4] {
    [
        g[0],
        (g[0] + g[1] + g[2]) * 0.5,
        (g[0] - g[1] + g[2]) * 0.5,
        g[2],
    ]
}

/// A square tile transformed by the 1-D step `f` along both axes: rows first (`f` on every
/// column, i.e. `X d`), then columns (`f` on every row of that, i.e. `(X d) X^T`).
fn rows_then_columns<const I: usize, const O: usize>(
    d: [[f32; I]; I],
    f: impl Fn([f32; I]) -> [f32; O],
) -> [[f32; O]; O] {
    let mut rows = [[0f32; I]; O];
    for c in 0..I {
        let col = f(std::array::from_fn(|r| d[r][c]));
        for r in 0..O {
            rows[r][c] = col[r];
        }
    }
    rows.map(f)
}

/// `V = B^T d B` for one input patch `d[row][col]`.
pub fn input_tile(d: [[f32; 4]; 4]) -> [[f32; 4]; 4] {
    rows_then_columns(d, in_1d)
}

/// `Y = A^T M A` for one transformed tile (before the bias).
pub fn output_tile(m: [[f32; 4]; 4]) -> [[f32; 2]; 2] {
    rows_then_columns(m, out_1d)
}

/// `U = G g G^T` for one 3x3 kernel `g[row][col]`.
pub fn kernel_tile(g: [[f32; 3]; 3]) -> [[f32; 4]; 4] {
    rows_then_columns(g, kernel_1d)
}

/// Transformed weights of a `[co, ci, 3, 3]` kernel, laid out `[position][co][ci]`
/// (position = 4 * row + column of the 4x4 transform).
pub fn transform_weights(w: &[f32], co: usize, ci: usize) -> Vec<f32> {
    assert_eq!(w.len(), co * ci * 9, "a [co, ci, 3, 3] kernel");
    let mut u = vec![0f32; POSITIONS * co * ci];
    for o in 0..co {
        for i in 0..ci {
            let k = &w[(o * ci + i) * 9..(o * ci + i + 1) * 9];
            let t = kernel_tile([[k[0], k[1], k[2]], [k[3], k[4], k[5]], [k[6], k[7], k[8]]]);
            for (p, v) in t.iter().flatten().enumerate() {
                u[(p * co + o) * ci + i] = *v;
            }
        }
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One 3x3 kernel applied directly (f64) to a 4x4 patch: the 2x2 valid outputs.
    fn direct(d: &[[f32; 4]; 4], g: &[[f32; 3]; 3]) -> [[f64; 2]; 2] {
        let mut y = [[0f64; 2]; 2];
        for (r, yr) in y.iter_mut().enumerate() {
            for (c, v) in yr.iter_mut().enumerate() {
                for ky in 0..3 {
                    for kx in 0..3 {
                        *v += g[ky][kx] as f64 * d[r + ky][c + kx] as f64;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn one_tile_equals_the_direct_convolution() {
        let mut s = 7u32;
        let mut next = || {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        for _ in 0..100 {
            let d: [[f32; 4]; 4] = std::array::from_fn(|_| std::array::from_fn(|_| next()));
            let g: [[f32; 3]; 3] = std::array::from_fn(|_| std::array::from_fn(|_| next()));
            let (u, v) = (kernel_tile(g), input_tile(d));
            let m: [[f32; 4]; 4] =
                std::array::from_fn(|r| std::array::from_fn(|c| u[r][c] * v[r][c]));
            let y = output_tile(m);
            let want = direct(&d, &g);
            for r in 0..2 {
                for c in 0..2 {
                    assert!(
                        (y[r][c] as f64 - want[r][c]).abs() < 1e-5,
                        "{y:?} vs {want:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn weights_are_laid_out_position_major() {
        let w: Vec<f32> = (0..2 * 3 * 9).map(|i| i as f32).collect();
        let u = transform_weights(&w, 2, 3);
        let (o, i) = (1, 2);
        let k = &w[(o * 3 + i) * 9..(o * 3 + i + 1) * 9];
        let t = kernel_tile([[k[0], k[1], k[2]], [k[3], k[4], k[5]], [k[6], k[7], k[8]]]);
        assert_eq!(u[(5 * 2 + o) * 3 + i], t[1][1]);
        assert_eq!(
            u[(15 * 2 + o) * 3 + i],
            k[8],
            "corner of U is the kernel corner"
        );
    }
}
