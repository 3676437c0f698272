//! The Winograd F(2x2, 3x3) program of `compiler/src/winograd.rs` run on magnitudes: the
//! `P` of its rounding bound `gamma_(ci+12) P` (see [`crate::bound`]).
//!
//! The transforms are the compiler's own generic [`in_1d`], [`kernel_1d`] and [`out_1d`],
//! instantiated on [`Mag`], a non-negative number whose subtraction adds (`|a - b| <= |a| +
//! |b|`) and whose scaling takes the scale's magnitude: so the program is exactly the
//! contract's, with every matrix replaced by its elementwise absolute value.

use spikerc_compiler::interp::Array;
use spikerc_compiler::ir::Conv2d;
use spikerc_compiler::winograd::{in_1d, kernel_1d, out_1d, POSITIONS, TILE};
use std::ops::{Add, Mul, Sub};

/// A magnitude.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Mag(pub f64);

impl Add for Mag {
    type Output = Mag;
    fn add(self, o: Mag) -> Mag {
        Mag(self.0 + o.0)
    }
}

impl Sub for Mag {
    type Output = Mag;
    fn sub(self, o: Mag) -> Mag {
        Mag(self.0 + o.0)
    }
}

impl Mul<f32> for Mag {
    type Output = Mag;
    fn mul(self, k: f32) -> Mag {
        Mag(self.0 * k.abs() as f64)
    }
}

/// Applies a 1-D transform to the columns, then to the rows of a square tile.
fn two_d<const I: usize, const O: usize>(d: [[Mag; I]; I], f: impl Fn([Mag; I]) -> [Mag; O]) -> [[Mag; O]; O] {
    let cols: [[Mag; O]; I] = std::array::from_fn(|c| f(std::array::from_fn(|r| d[r][c])));
    // cols[c][r'] is the column pass; the row pass maps each r' over c.
    std::array::from_fn(|r| f(std::array::from_fn(|c| cols[c][r])))
}

/// `|A^T| (sum_i |G| |g_oi| |G^T| . |B^T| |d_i| |B|) |A|` per output of a 3x3, stride-1,
/// padding-1 convolution `c` of `x_abs` (`|x|`, any leading axes), bias excluded.
pub fn winograd_magnitude(x_abs: &Array, c: &Conv2d, out_shape: &[usize]) -> Array {
    let r = x_abs.shape.len();
    let (h, w) = (x_abs.shape[r - 2], x_abs.shape[r - 1]);
    let ci = x_abs.shape[r - 3];
    let lead: usize = x_abs.shape[..r - 3].iter().product();
    let co = out_shape[r - 3];
    let wt = c.weight.to_f32();
    // |U| per (o, i), 16 positions.
    let u: Vec<[[Mag; 4]; 4]> = (0..co * ci)
        .map(|oi| {
            let g: [[Mag; 3]; 3] = std::array::from_fn(|y| std::array::from_fn(|x| Mag(wt[oi * 9 + y * 3 + x].abs() as f64)));
            two_d(g, kernel_1d)
        })
        .collect();
    let mut out = vec![0f32; lead * co * h * w];
    let mut v = vec![[[Mag::default(); 4]; 4]; ci];
    for b in 0..lead {
        let xb = &x_abs.data[b * ci * h * w..(b + 1) * ci * h * w];
        let at = |i: usize, y: isize, x: isize| -> Mag {
            if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
                Mag(0.0)
            } else {
                Mag(xb[(i * h + y as usize) * w + x as usize] as f64)
            }
        };
        for ty in 0..h.div_ceil(TILE) {
            for tx in 0..w.div_ceil(TILE) {
                let (y0, x0) = ((2 * ty) as isize - 1, (2 * tx) as isize - 1);
                for (i, vi) in v.iter_mut().enumerate() {
                    let d = std::array::from_fn(|r| std::array::from_fn(|col| at(i, y0 + r as isize, x0 + col as isize)));
                    *vi = two_d(d, in_1d);
                }
                for o in 0..co {
                    let mut m = [[Mag::default(); 4]; 4];
                    for (i, vi) in v.iter().enumerate() {
                        let ui = &u[o * ci + i];
                        for p in 0..POSITIONS {
                            let (r, col) = (p / 4, p % 4);
                            m[r][col].0 += ui[r][col].0 * vi[r][col].0;
                        }
                    }
                    let y = two_d(m, out_1d);
                    for (r, yr) in y.iter().enumerate() {
                        for (col, yv) in yr.iter().enumerate() {
                            let (oy, ox) = (2 * ty + r, 2 * tx + col);
                            if oy < h && ox < w {
                                out[((b * co + o) * h + oy) * w + ox] = yv.0 as f32;
                            }
                        }
                    }
                }
            }
        }
    }
    Array::new(out_shape.to_vec(), out)
}
