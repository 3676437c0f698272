//! The non-convolution kernels: LIF, BatchNorm, broadcasting binary ops, concat, reductions,
//! axis-linear mixing, bilinear upsampling and the time mean.
//!
//! Each computes every output with exactly the interpreter's expression (same operation
//! order, f64 means in row-major order of the reduced elements), and parallelises only over
//! independent outputs, so the bits never depend on the thread count.

use rayon::prelude::*;
use spikerc_compiler::interp::Array;
use spikerc_compiler::ir::{BinaryOp, Lif, ReduceOp, Reset};

/// Elements per parallel chunk for elementwise work.
const CHUNK: usize = 1 << 14;

pub fn map(x: &Array, f: impl Fn(f32) -> f32 + Sync) -> Array {
    let mut data = vec![0f32; x.len()];
    data.par_chunks_mut(CHUNK)
        .zip(x.data.par_chunks(CHUNK))
        .for_each(|(d, s)| {
            for (d, s) in d.iter_mut().zip(s) {
                *d = f(*s);
            }
        });
    Array::new(x.shape.clone(), data)
}

/// Multi-step LIF over `[T, ...]`: spike train and spike count.
pub fn lif(x: &Array, l: &Lif) -> (Array, u64) {
    let t = x.shape[0];
    let per_t = x.len() / t;
    let vr = l.v_rest();
    let mut v = vec![vr; per_t];
    let mut out = vec![0f32; x.len()];
    let mut count = 0u64;
    for step in 0..t {
        let xs = &x.data[step * per_t..(step + 1) * per_t];
        let os = &mut out[step * per_t..(step + 1) * per_t];
        count += os
            .par_chunks_mut(CHUNK)
            .zip(v.par_chunks_mut(CHUNK))
            .zip(xs.par_chunks(CHUNK))
            .map(|((os, vs), xs)| {
                let mut n = 0u64;
                for ((o, v), &x) in os.iter_mut().zip(vs.iter_mut()).zip(xs) {
                    let h = if l.decay_input {
                        *v + (x - (*v - vr)) / l.tau
                    } else {
                        *v - (*v - vr) / l.tau + x
                    };
                    let fire = h >= l.v_threshold;
                    *v = match l.reset {
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
                    *o = if fire { 1.0 } else { 0.0 };
                    n += fire as u64;
                }
                n
            })
            .sum::<u64>();
    }
    (Array::new(x.shape.clone(), out), count)
}

/// Per-channel `y = x * alpha + beta` over an image-like `[.., C, H, W]` value.
pub fn channel_affine(x: &Array, alpha: &[f32], beta: &[f32]) -> Array {
    let r = x.shape.len();
    let (c, hw) = (x.shape[r - 3], x.shape[r - 2] * x.shape[r - 1]);
    let mut out = x.data.clone();
    out.par_chunks_mut(hw).enumerate().for_each(|(p, plane)| {
        let ch = p % c;
        for e in plane {
            *e = e.mul_add(alpha[ch], beta[ch]);
        }
    });
    Array::new(x.shape.clone(), out)
}

/// Per-channel mean and biased variance (f64) of an image-like `[.., C, H, W]` value.
pub fn channel_stats(x: &Array) -> (Vec<f32>, Vec<f32>) {
    let r = x.shape.len();
    let (c, hw) = (x.shape[r - 3], x.shape[r - 2] * x.shape[r - 1]);
    let mut sum = vec![0f64; c];
    let mut sq = vec![0f64; c];
    for (p, plane) in x.data.chunks(hw).enumerate() {
        for &v in plane {
            sum[p % c] += v as f64;
            sq[p % c] += v as f64 * v as f64;
        }
    }
    let n = (x.len() / c) as f64;
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let var = sq.iter().zip(&mean).map(|(q, m)| (q / n - m * m).max(0.0) as f32).collect();
    (mean.into_iter().map(|m| m as f32).collect(), var)
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Strides of `shape` read as `out`-shaped with broadcasting (0 on size-1 axes).
fn bstrides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    strides(shape)
        .into_iter()
        .zip(shape.iter().zip(out))
        .map(|(s, (&d, &o))| if d == 1 && o != 1 { 0 } else { s })
        .collect()
}

pub fn binary(a: &Array, b: &Array, op: BinaryOp, out_shape: &[usize]) -> Array {
    let f = |x: f32, y: f32| match op {
        BinaryOp::Add => x + y,
        BinaryOp::Mul => x * y,
    };
    let n: usize = out_shape.iter().product();
    let mut out = vec![0f32; n];
    if a.shape == b.shape {
        out.par_chunks_mut(CHUNK)
            .zip(a.data.par_chunks(CHUNK).zip(b.data.par_chunks(CHUNK)))
            .for_each(|(o, (x, y))| {
                for ((o, &x), &y) in o.iter_mut().zip(x).zip(y) {
                    *o = f(x, y);
                }
            });
        return Array::new(out_shape.to_vec(), out);
    }
    let r = out_shape.len();
    let last = out_shape[r - 1].max(1);
    let (sa, sb) = (bstrides(&a.shape, out_shape), bstrides(&b.shape, out_shape));
    out.par_chunks_mut(last).enumerate().for_each(|(row, o)| {
        let (mut ia, mut ib, mut rem) = (0, 0, row);
        for d in (0..r - 1).rev() {
            let i = rem % out_shape[d];
            rem /= out_shape[d];
            ia += i * sa[d];
            ib += i * sb[d];
        }
        let (la, lb) = (sa[r - 1], sb[r - 1]);
        for (j, o) in o.iter_mut().enumerate() {
            *o = f(a.data[ia + j * la], b.data[ib + j * lb]);
        }
    });
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

/// Mean (f64, row-major order of the reduced elements, one rounding) or max over `axes`.
pub fn reduce(x: &Array, op: ReduceOp, axes: &[usize], out_shape: &[usize]) -> Array {
    let r = x.shape.len();
    let n_out: usize = out_shape.iter().product();
    let count = x.len() / n_out.max(1);
    let so = strides(out_shape);
    // Output stride per input axis (0 on reduced axes).
    let step: Vec<usize> = (0..r).map(|d| if axes.contains(&d) { 0 } else { so[d] }).collect();
    // Split over the leading axis when it is kept: each slice owns disjoint outputs.
    let split = !axes.contains(&0) && x.shape[0] > 1;
    let parts = if split { x.shape[0] } else { 1 };
    let in_part = x.len() / parts;
    let out_part = n_out / parts;
    let last = x.shape[r - 1];
    let results: Vec<(Vec<f64>, Vec<f32>)> = (0..parts)
        .into_par_iter()
        .map(|p| {
            let mut sum = vec![0f64; out_part];
            let mut max = vec![f32::NEG_INFINITY; out_part];
            let src = &x.data[p * in_part..(p + 1) * in_part];
            let mut idx = vec![0usize; r];
            let mut base = 0usize; // output offset (within part) of the current row start
            for row in src.chunks(last) {
                for (j, &v) in row.iter().enumerate() {
                    let o = base + j * step[r - 1];
                    sum[o] += v as f64;
                    if v > max[o] {
                        max[o] = v;
                    }
                }
                // Advance the odometer over axes 0..r-1 (axis 0 stays within the part).
                let mut d = r - 1;
                while d > 0 {
                    d -= 1;
                    let lim = if d == 0 && split { 1 } else { x.shape[d] };
                    idx[d] += 1;
                    base += step[d];
                    if idx[d] < lim {
                        break;
                    }
                    base -= step[d] * idx[d];
                    idx[d] = 0;
                }
            }
            (sum, max)
        })
        .collect();
    let mut data = Vec::with_capacity(n_out);
    for (sum, max) in results {
        match op {
            ReduceOp::Mean => data.extend(sum.iter().map(|s| (s / count as f64) as f32)),
            ReduceOp::Max => data.extend(max),
        }
    }
    Array::new(out_shape.to_vec(), data)
}

/// Mean over the time axis `[T, ...] -> [...]` (f64, t ascending, one rounding).
pub fn mean_time(x: &Array, out_shape: &[usize]) -> Array {
    let t = x.shape[0];
    let per = x.len() / t;
    let mut out = vec![0f32; per];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
        let start = c * CHUNK;
        for (i, o) in o.iter_mut().enumerate() {
            let mut s = 0f64;
            for step in 0..t {
                s += x.data[step * per + start + i] as f64;
            }
            *o = (s / t as f64) as f32;
        }
    });
    Array::new(out_shape.to_vec(), out)
}

/// `y[a, o, b] = sum_i w[o, i] * x[a, i, b]`, f32, i ascending, no FMA.
pub fn axis_linear(x: &Array, axis: usize, w: &[f32], out_shape: &[usize]) -> Array {
    let outer: usize = x.shape[..axis].iter().product();
    let inner: usize = x.shape[axis + 1..].iter().product();
    let (n_in, n_out) = (x.shape[axis], out_shape[axis]);
    let mut out = vec![0f32; outer * n_out * inner];
    out.par_chunks_mut(n_out * inner).enumerate().for_each(|(a, oa)| {
        for (o, row) in oa.chunks_mut(inner).enumerate() {
            for i in 0..n_in {
                let wv = w[o * n_in + i];
                let xs = &x.data[(a * n_in + i) * inner..(a * n_in + i + 1) * inner];
                for (r, &xv) in row.iter_mut().zip(xs) {
                    *r += wv * xv;
                }
            }
        }
    });
    Array::new(out_shape.to_vec(), out)
}

/// Source index and weights of bilinear x2 upsampling (`align_corners=False`), PyTorch's way.
fn up2_source(o: usize, n_in: usize) -> (usize, usize, f32, f32) {
    let src = ((o as f32 + 0.5) * 0.5 - 0.5).max(0.0);
    let i0 = src as usize;
    let i1 = if i0 < n_in - 1 { i0 + 1 } else { i0 };
    let l1 = src - i0 as f32;
    (i0, i1, 1.0 - l1, l1)
}

/// Bilinear x2 upsampling of the last two axes (PyTorch CPU formula), parallel over planes.
pub fn upsample2x(x: &Array) -> Array {
    let r = x.shape.len();
    let (h, w) = (x.shape[r - 2], x.shape[r - 1]);
    let (oh, ow) = (2 * h, 2 * w);
    let lead: usize = x.shape[..r - 2].iter().product();
    let mut out = vec![0f32; lead * oh * ow];
    let cols: Vec<_> = (0..ow).map(|ox| up2_source(ox, w)).collect();
    out.par_chunks_mut(oh * ow).enumerate().for_each(|(p, dst)| {
        let src = &x.data[p * h * w..(p + 1) * h * w];
        for oy in 0..oh {
            let (y0, y1, ly0, ly1) = up2_source(oy, h);
            let (r0, r1) = (&src[y0 * w..(y0 + 1) * w], &src[y1 * w..(y1 + 1) * w]);
            for (d, &(x0, x1, lx0, lx1)) in dst[oy * ow..(oy + 1) * ow].iter_mut().zip(&cols) {
                *d = ly0 * (lx0 * r0[x0] + lx1 * r0[x1]) + ly1 * (lx0 * r1[x0] + lx1 * r1[x1]);
            }
        }
    });
    let mut shape = x.shape.clone();
    shape[r - 2] = oh;
    shape[r - 1] = ow;
    Array::new(shape, out)
}
