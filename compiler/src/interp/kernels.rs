//! The interpreter's kernels: straightforward loops that spell out the arithmetic contract.

use crate::ir::{BatchNorm, BinaryOp, Conv2d, ConvAlgorithm, Lif, ReduceOp, Reset};
use crate::tensor::TensorData;
use crate::winograd;

use super::Array;

/// Splits an image-like shape into (leading batch of planes, channels, h, w).
fn planes(shape: &[usize]) -> (usize, usize, usize, usize) {
    let r = shape.len();
    let lead: usize = shape[..r - 3].iter().product();
    (lead, shape[r - 3], shape[r - 2], shape[r - 1])
}

/// Convolution: per output, `acc += w * x` (f32, no fused multiply-add) from 0 in the
/// canonical order kernel row -> kernel column -> input channel, bias added last. `wide`
/// accumulates every product in f64 and rounds once (the interpreter's high-precision mode);
/// f16 event-driven convolutions always do (exact, see the module docs). Convolutions marked
/// [`ConvAlgorithm::Winograd2x2`] follow [`conv2d_winograd`] instead (except in `wide` mode,
/// which stays the high-precision direct sum).
pub fn conv2d(x: &Array, c: &Conv2d, out_shape: &[usize], wide: bool) -> Array {
    if c.algorithm == ConvAlgorithm::Winograd2x2 && !wide {
        return conv2d_winograd(x, c, out_shape);
    }
    let (lead, ci, h, w) = planes(&x.shape);
    let (_, co, oh, ow) = planes(out_shape);
    let [kh, kw] = c.kernel();
    let [sy, sx] = c.stride;
    let [py, px] = c.padding;
    let wt = c.weight.to_f32();
    let bias = c.bias.as_ref().map(|b| b.to_f32().into_owned());
    let exact = wide || (c.event_driven && matches!(c.weight.data, TensorData::F16(_)));
    let mut out = vec![0f32; lead * co * oh * ow];
    let mut acc32 = vec![0f32; oh * ow];
    let mut acc64 = vec![0f64; oh * ow];
    for b in 0..lead {
        let xb = &x.data[b * ci * h * w..(b + 1) * ci * h * w];
        for o in 0..co {
            acc32.fill(0.0);
            acc64.fill(0.0);
            for ky in 0..kh {
                for kx in 0..kw {
                    for i in 0..ci {
                        let plane = &xb[i * h * w..(i + 1) * h * w];
                        let wv = wt[((o * ci + i) * kh + ky) * kw + kx];
                        for oy in 0..oh {
                            let iy = (oy * sy + ky) as isize - py as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            let row = &plane[iy as usize * w..(iy as usize + 1) * w];
                            for ox in 0..ow {
                                let ix = (ox * sx + kx) as isize - px as isize;
                                if ix < 0 || ix >= w as isize {
                                    continue;
                                }
                                let xv = row[ix as usize];
                                if exact {
                                    acc64[oy * ow + ox] += wv as f64 * xv as f64;
                                } else {
                                    acc32[oy * ow + ox] += wv * xv;
                                }
                            }
                        }
                    }
                }
            }
            let dst = &mut out[(b * co + o) * oh * ow..(b * co + o + 1) * oh * ow];
            let bv = bias.as_ref().map_or(0.0, |bb| bb[o]);
            for p in 0..oh * ow {
                let s = if exact { acc64[p] as f32 } else { acc32[p] };
                dst[p] = if bias.is_some() { s + bv } else { s };
            }
        }
    }
    Array::new(out_shape.to_vec(), out)
}

/// A 3x3, stride-1, padding-1 convolution by Winograd F(2x2, 3x3), exactly as the contract in
/// [`crate::winograd`] spells it: per 2x2 output tile, the 4x4 input patch (zeros outside the
/// image) of every input channel is transformed, the 16 positions accumulate
/// `U[o][i] * V[i]` over input channels 0, 1, ... from `+0`, and the output transform plus
/// the bias gives the tile's in-image outputs.
pub fn conv2d_winograd(x: &Array, c: &Conv2d, out_shape: &[usize]) -> Array {
    let (lead, ci, h, w) = planes(&x.shape);
    let (_, co, oh, ow) = planes(out_shape);
    assert!(c.winograd_eligible() && (oh, ow) == (h, w), "verified: 3x3, stride 1, padding 1");
    let u = winograd::transform_weights(&c.weight.to_f32(), co, ci);
    let bias = c.bias.as_ref().map(|b| b.to_f32().into_owned());
    let at = |xb: &[f32], i: usize, y: isize, x: isize| -> f32 {
        if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
            0.0
        } else {
            xb[(i * h + y as usize) * w + x as usize]
        }
    };
    let mut out = vec![0f32; lead * co * oh * ow];
    let mut v = vec![[[0f32; 4]; 4]; ci];
    for b in 0..lead {
        let xb = &x.data[b * ci * h * w..(b + 1) * ci * h * w];
        for ty in 0..oh.div_ceil(winograd::TILE) {
            for tx in 0..ow.div_ceil(winograd::TILE) {
                let (y0, x0) = ((2 * ty) as isize - 1, (2 * tx) as isize - 1);
                for (i, vi) in v.iter_mut().enumerate() {
                    let d = std::array::from_fn(|r| {
                        std::array::from_fn(|col| at(xb, i, y0 + r as isize, x0 + col as isize))
                    });
                    *vi = winograd::input_tile(d);
                }
                for o in 0..co {
                    let mut m = [[0f32; 4]; 4];
                    for (i, vi) in v.iter().enumerate() {
                        for p in 0..winograd::POSITIONS {
                            let (r, col) = (p / 4, p % 4);
                            m[r][col] += u[(p * co + o) * ci + i] * vi[r][col];
                        }
                    }
                    let y = winograd::output_tile(m);
                    for (r, yr) in y.iter().enumerate() {
                        for (col, &yv) in yr.iter().enumerate() {
                            let (oy, ox) = (2 * ty + r, 2 * tx + col);
                            if oy < oh && ox < ow {
                                out[((b * co + o) * oh + oy) * ow + ox] =
                                    bias.as_ref().map_or(yv, |bb| yv + bb[o]);
                            }
                        }
                    }
                }
            }
        }
    }
    Array::new(out_shape.to_vec(), out)
}

/// Eval-mode BatchNorm, computed the way PyTorch's CPU kernel does:
/// `alpha = gamma * (1 / sqrt(var + eps))`, `beta = bias - mean * alpha`, `y = fma(x, alpha, beta)`
/// (its vectorised kernel fuses the multiply-add; one rounding).
pub fn batch_norm(x: &Array, bn: &BatchNorm) -> Array {
    let (lead, c, h, w) = planes(&x.shape);
    let (g, b, m, v) = (
        bn.gamma.to_f32(),
        bn.beta.to_f32(),
        bn.running_mean.to_f32(),
        bn.running_var.to_f32(),
    );
    let mut out = x.data.clone();
    for l in 0..lead {
        for ch in 0..c {
            let alpha = g[ch] * (1.0 / (v[ch] + bn.eps).sqrt());
            let beta = b[ch] - m[ch] * alpha;
            for e in &mut out[(l * c + ch) * h * w..(l * c + ch + 1) * h * w] {
                *e = e.mul_add(alpha, beta);
            }
        }
    }
    Array::new(x.shape.clone(), out)
}

/// LIF over `[T, ...]`: returns the spike train and the number of spikes.
pub fn lif_forward(x: &Array, l: &Lif) -> (Array, u64) {
    let t = x.shape[0];
    let per_t = x.len() / t;
    let vr = l.v_rest();
    let mut v = vec![vr; per_t];
    let mut out = vec![0f32; x.len()];
    let mut count = 0u64;
    for step in 0..t {
        let xs = &x.data[step * per_t..(step + 1) * per_t];
        let os = &mut out[step * per_t..(step + 1) * per_t];
        for i in 0..per_t {
            let h = if l.decay_input {
                v[i] + (xs[i] - (v[i] - vr)) / l.tau
            } else {
                v[i] - (v[i] - vr) / l.tau + xs[i]
            };
            let fire = h >= l.v_threshold;
            v[i] = match l.reset {
                Reset::Hard { v_reset } => {
                    if fire {
                        v_reset
                    } else {
                        h
                    }
                }
                Reset::Soft => {
                    if fire {
                        h - l.v_threshold
                    } else {
                        h
                    }
                }
            };
            if fire {
                os[i] = 1.0;
                count += 1;
            }
        }
    }
    (Array::new(x.shape.clone(), out), count)
}

pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Row-major index -> multi-index.
fn unravel(mut i: usize, shape: &[usize], idx: &mut [usize]) {
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
}

pub fn binary(a: &Array, b: &Array, op: BinaryOp, out_shape: &[usize]) -> Array {
    let (sa, sb) = (strides(&a.shape), strides(&b.shape));
    let mut idx = vec![0; out_shape.len()];
    let n: usize = out_shape.iter().product();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        unravel(i, out_shape, &mut idx);
        let (mut ia, mut ib) = (0, 0);
        for d in 0..idx.len() {
            if a.shape[d] != 1 {
                ia += idx[d] * sa[d];
            }
            if b.shape[d] != 1 {
                ib += idx[d] * sb[d];
            }
        }
        let (x, y) = (a.data[ia], b.data[ib]);
        out.push(match op {
            BinaryOp::Add => x + y,
            BinaryOp::Mul => x * y,
        });
    }
    Array::new(out_shape.to_vec(), out)
}

pub fn concat(args: &[&Array], axis: usize, out_shape: &[usize]) -> Array {
    let outer: usize = out_shape[..axis].iter().product();
    let mut out = Vec::with_capacity(out_shape.iter().product());
    for o in 0..outer {
        for a in args {
            let chunk: usize = a.shape[axis..].iter().product();
            out.extend_from_slice(&a.data[o * chunk..(o + 1) * chunk]);
        }
    }
    Array::new(out_shape.to_vec(), out)
}

/// f64 lanes of the canonical mean: element `k` of an output's reduced sequence (row-major
/// order) is added to lane `k % MEAN_LANES`; engines vectorise over the lanes.
pub const MEAN_LANES: usize = 16;

/// The lanes of a mean summed in the canonical pairwise tree
/// `((l0 + l1) + (l2 + l3)) + ...` (f64).
pub fn combine_lanes(l: &[f64; MEAN_LANES]) -> f64 {
    let mut v = *l;
    let mut n = MEAN_LANES;
    while n > 1 {
        for i in 0..n / 2 {
            v[i] = v[2 * i] + v[2 * i + 1];
        }
        n /= 2;
    }
    v[0]
}

/// Mean or max over `axes`, keeping them as size 1. Mean: f64 sum in [`MEAN_LANES`]
/// interleaved lanes combined by [`combine_lanes`], divided by the count, rounded once to f32.
/// Max: the first maximum in row-major order (`v > max`).
pub fn reduce(x: &Array, op: ReduceOp, axes: &[usize], out_shape: &[usize]) -> Array {
    let so = strides(out_shape);
    let n_out: usize = out_shape.iter().product();
    let count = x.len() / n_out.max(1);
    let mut lanes = vec![[0f64; MEAN_LANES]; n_out];
    let mut seen = vec![0usize; n_out];
    let mut max = vec![f32::NEG_INFINITY; n_out];
    let mut idx = vec![0; x.shape.len()];
    for (i, &v) in x.data.iter().enumerate() {
        unravel(i, &x.shape, &mut idx);
        let mut o = 0;
        for d in 0..idx.len() {
            if !axes.contains(&d) {
                o += idx[d] * so[d];
            }
        }
        lanes[o][seen[o] % MEAN_LANES] += v as f64;
        seen[o] += 1;
        if v > max[o] {
            max[o] = v;
        }
    }
    let data = match op {
        ReduceOp::Mean => lanes
            .iter()
            .map(|l| (combine_lanes(l) / count as f64) as f32)
            .collect(),
        ReduceOp::Max => max,
    };
    Array::new(out_shape.to_vec(), data)
}

pub fn axis_linear(x: &Array, axis: usize, w: &[f32], out_shape: &[usize]) -> Array {
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis + 1..].iter().product();
    let (n_in, n_out) = (x.shape[axis], out_shape[axis]);
    let mut out = vec![0f32; outer * n_out * inner];
    for a in 0..outer {
        for o in 0..n_out {
            for b in 0..inner {
                let mut acc = 0f32;
                for i in 0..n_in {
                    acc += w[o * n_in + i] * x.data[(a * n_in + i) * inner + b];
                }
                out[(a * n_out + o) * inner + b] = acc;
            }
        }
    }
    Array::new(out_shape.to_vec(), out)
}

/// Source index and weights of bilinear x2 upsampling (`align_corners=False`), PyTorch's way.
pub fn up2_source(o: usize, n_in: usize) -> (usize, usize, f32, f32) {
    let src = ((o as f32 + 0.5) * 0.5 - 0.5).max(0.0);
    let i0 = src as usize;
    let i1 = if i0 < n_in - 1 { i0 + 1 } else { i0 };
    let l1 = src - i0 as f32;
    (i0, i1, 1.0 - l1, l1)
}

/// Bilinear x2 upsampling of the last two axes, as PyTorch computes it on CPU.
pub fn bilinear_up2(x: &Array) -> Array {
    let r = x.shape.len();
    let (h, w) = (x.shape[r - 2], x.shape[r - 1]);
    let lead: usize = x.shape[..r - 2].iter().product();
    let (oh, ow) = (2 * h, 2 * w);
    let mut out = vec![0f32; lead * oh * ow];
    let cols: Vec<_> = (0..ow).map(|ox| up2_source(ox, w)).collect();
    for p in 0..lead {
        let src = &x.data[p * h * w..(p + 1) * h * w];
        let dst = &mut out[p * oh * ow..(p + 1) * oh * ow];
        for oy in 0..oh {
            let (y0, y1, ly0, ly1) = up2_source(oy, h);
            for (ox, &(x0, x1, lx0, lx1)) in cols.iter().enumerate() {
                dst[oy * ow + ox] = ly0 * (lx0 * src[y0 * w + x0] + lx1 * src[y0 * w + x1])
                    + ly1 * (lx0 * src[y1 * w + x0] + lx1 * src[y1 * w + x1]);
            }
        }
    }
    let mut shape = x.shape.clone();
    shape[r - 2] = oh;
    shape[r - 1] = ow;
    Array::new(shape, out)
}
