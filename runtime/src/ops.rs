//! The non-convolution kernels: LIF, BatchNorm, broadcasting binary ops, concat, reductions,
//! axis-linear mixing, bilinear upsampling and the time mean.
//!
//! Each computes every output with exactly the interpreter's expression (same operation
//! order, f64 means in the interpreter's lanes), and parallelises only over
//! independent outputs, so the bits never depend on the thread count.

use rayon::prelude::*;
use spikerc_compiler::interp::{combine_lanes, Array, MEAN_LANES};

use crate::conv::Geometry;
use crate::gather::Masks;
use crate::simd::{isa, Level};
use spikerc_compiler::ir::{BinaryOp, Lif, ReduceOp, Reset};

use crate::SyncPtr;

/// Elements per parallel chunk for elementwise work.
const CHUNK: usize = 1 << 14;

pub fn map(x: &Array, f: impl Fn(f32) -> f32 + Sync) -> Array {
    let mut data = crate::buffers::overwritten(x.len());
    data.par_chunks_mut(CHUNK)
        .zip(x.data.par_chunks(CHUNK))
        .for_each(|(d, s)| {
            for (d, s) in d.iter_mut().zip(s) {
                *d = f(*s);
            }
        });
    Array::new(x.shape.clone(), data)
}

/// Evaluates `$body` with `$update` bound to the LIF update of `$l` — `(v, x) -> (v', fired)`,
/// the interpreter's formulas: `H = V + (X - (V - v_rest)) / tau` with `decay_input`, else
/// `H = V - (V - v_rest) / tau + X`; fire when `H >= v_threshold`; hard or soft reset — as one
/// monomorphic closure per variant, so the loops in `$body` vectorise. The formulas live here
/// once for both LIF kernels.
macro_rules! with_lif_update {
    ($l:expr, |$update:ident| $body:expr) => {{
        let l: &Lif = $l;
        let vr = l.v_rest();
        let (tau, th) = (l.tau, l.v_threshold);
        match (l.reset, l.decay_input) {
            (Reset::Hard { v_reset }, true) => {
                let $update = |v: f32, x: f32| {
                    let h = v + (x - (v - vr)) / tau;
                    let f = h >= th;
                    (if f { v_reset } else { h }, f)
                };
                $body
            }
            (Reset::Hard { v_reset }, false) => {
                let $update = |v: f32, x: f32| {
                    let h = v - (v - vr) / tau + x;
                    let f = h >= th;
                    (if f { v_reset } else { h }, f)
                };
                $body
            }
            (Reset::Soft, true) => {
                let $update = |v: f32, x: f32| {
                    let h = v + (x - (v - vr)) / tau;
                    let f = h >= th;
                    (if f { h - th } else { h }, f)
                };
                $body
            }
            (Reset::Soft, false) => {
                let $update = |v: f32, x: f32| {
                    let h = v - (v - vr) / tau + x;
                    let f = h >= th;
                    (if f { h - th } else { h }, f)
                };
                $body
            }
        }
    }};
}

/// One LIF step over a chunk: `update(v, x) -> (v', fired)` chosen once per layer, so the
/// loop is branch-free and vectorises. Returns the spikes of the chunk.
#[inline(always)]
fn lif_chunk(
    os: &mut [f32],
    vs: &mut [f32],
    xs: &[f32],
    update: impl Fn(f32, f32) -> (f32, bool),
) -> u64 {
    let mut n = 0u32;
    for ((o, v), &x) in os.iter_mut().zip(vs.iter_mut()).zip(xs) {
        let (nv, fire) = update(*v, x);
        *v = nv;
        *o = fire as u8 as f32;
        n += fire as u32;
    }
    n as u64
}

/// Neurons per LIF task: the membrane potentials of a task stay in L1 across all time steps.
const LIF_CHUNK: usize = 4096;

/// Multi-step LIF over `[T, ...]`: spike train and spike count (the interpreter's formulas:
/// `H = V + (X - (V - v_rest)) / tau` with `decay_input`, else `H = V - (V - v_rest) / tau + X`;
/// fire when `H >= v_threshold`; hard or soft reset). Parallel over blocks of neurons, each
/// stepping its block through all T (every neuron's update sequence is the interpreter's).
pub fn lif(x: &Array, l: &Lif) -> (Array, u64) {
    let t = x.shape[0];
    let per_t = x.len() / t;
    let vr = l.v_rest();
    let mut out = crate::buffers::overwritten(x.len());
    let out_ptr = SyncPtr(out.as_mut_ptr());
    let count = (0..per_t.div_ceil(LIF_CHUNK))
        .into_par_iter()
        .map(|c| {
            let (s, e) = (c * LIF_CHUNK, ((c + 1) * LIF_CHUNK).min(per_t));
            let mut v = [vr; LIF_CHUNK];
            let vs = &mut v[..e - s];
            let p = &out_ptr;
            let mut n = 0;
            for step in 0..t {
                let xs = &x.data[step * per_t + s..step * per_t + e];
                // SAFETY: task c writes only neurons s..e of every step; tasks partition the
                // neurons, so the ranges are disjoint and inside `out` (len t * per_t).
                let os =
                    unsafe { std::slice::from_raw_parts_mut(p.0.add(step * per_t + s), e - s) };
                n += with_lif_update!(l, |update| lif_chunk(os, vs, xs, update));
            }
            n
        })
        .sum::<u64>();
    (Array::new(x.shape.clone(), out), count)
}

/// Neurons per LIF-to-bitmap task (membrane potentials stay in L2 across all time steps).
const LIF_PACKED_STATE: usize = 64 * 1024;

/// [`lif`] for a LIF whose only consumer is the spike convolution of geometry `g`: the same
/// neuron updates, but the spikes go straight into that convolution's zero-padded channel
/// bitmaps ([`Masks`]) instead of a 0/1 f32 tensor that the convolution would pack again.
/// `x` is `[T, .., C, H, W]`; parallel over (batch, band of rows), each task stepping its
/// neurons through all T; compiled per instruction set.
pub fn lif_packed(x: &Array, l: &Lif, g: &Geometry, level: Level) -> (Masks, u64) {
    let r = x.shape.len();
    let t = x.shape[0];
    let (c, h, w) = (x.shape[r - 3], x.shape[r - 2], x.shape[r - 1]);
    let n = x.len() / (t * c * h * w);
    let [py, px] = g.padding;
    let (hp, wp) = (h + 2 * py, w + 2 * px);
    let nw = c.div_ceil(64);
    assert_eq!(c, g.ci, "LIF channels = consumer's input channels");
    let mut data = vec![0u64; t * n * hp * wp * nw];
    let dptr = SyncU64(data.as_mut_ptr());
    let band = (LIF_PACKED_STATE / (c * w)).clamp(1, h);
    let bands = h.div_ceil(band);
    let geo = PackedGeo {
        t,
        n,
        c,
        h,
        w,
        py,
        px,
        hp,
        wp,
        nw,
        band,
        bands,
    };
    let count = (0..n * bands)
        .into_par_iter()
        // SAFETY: tasks are distinct, so they write disjoint mask rows (see `lif_task`).
        .map(|task| isa!(level, unsafe lif_task(x, l, &geo, &dptr, task)))
        .sum::<u64>();
    (
        Masks {
            data,
            words: nw,
            hp,
            wp,
        },
        count,
    )
}

/// Shapes of a [`lif_packed`] call.
#[derive(Clone, Copy)]
struct PackedGeo {
    t: usize,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    py: usize,
    px: usize,
    hp: usize,
    wp: usize,
    nw: usize,
    band: usize,
    bands: usize,
}

/// One (batch, row band) of [`lif_packed`]; returns its spikes.
///
/// # Safety
/// `dptr` points at the zeroed `[T * N][hp][wp][nw]` masks; concurrent calls have distinct
/// `task`.
#[inline(always)]
unsafe fn lif_task(x: &Array, l: &Lif, g: &PackedGeo, dptr: &SyncU64, task: usize) -> u64 {
    let PackedGeo {
        t,
        n,
        c,
        h,
        w,
        py,
        px,
        hp,
        wp,
        nw,
        band,
        bands,
    } = *g;
    let vr = l.v_rest();
    let (ni, y0) = (task / bands, (task % bands) * band);
    let y1 = (y0 + band).min(h);
    let rows = y1 - y0;
    let mut v = vec![vr; c * rows * w];
    let mut fires = vec![0u8; w];
    // One row's bitmaps word-major (`[nw][w]`, contiguous per word so the ORs vectorise),
    // interleaved into the masks' `[w][nw]` once the row's channels are done.
    let mut words = vec![0u64; if nw > 1 { nw * w } else { 0 }];
    let mut fired = 0u64;
    for step in 0..t {
        let lead = step * n + ni;
        let xin = &x.data[lead * c * h * w..(lead + 1) * c * h * w];
        for y in y0..y1 {
            // SAFETY: this task writes only mask rows (step * n + ni, y + py) for y in its
            // band: disjoint across tasks, inside the masks.
            let dst = std::slice::from_raw_parts_mut(
                dptr.0.add(((lead * hp + y + py) * wp + px) * nw),
                w * nw,
            );
            for ci in 0..c {
                let xs = &xin[(ci * h + y) * w..(ci * h + y + 1) * w];
                let vs = &mut v[(ci * rows + y - y0) * w..(ci * rows + y - y0 + 1) * w];
                with_lif_update!(l, |update| lif_fires(vs, xs, &mut fires, update));
                let (word, bit) = (ci / 64, ci % 64);
                let row = if nw == 1 {
                    &mut *dst
                } else {
                    &mut words[word * w..(word + 1) * w]
                };
                let mut k = 0u32;
                for (d, &f) in row.iter_mut().zip(&fires) {
                    *d |= (f as u64) << bit;
                    k += f as u32;
                }
                fired += k as u64;
            }
            if nw > 1 {
                for (x, d) in dst.chunks_exact_mut(nw).enumerate() {
                    for (k, dk) in d.iter_mut().enumerate() {
                        *dk = std::mem::take(&mut words[k * w + x]);
                    }
                }
            }
        }
    }
    fired
}

/// One LIF step over a row of neurons: updates `vs` and writes 1/0 per neuron into `fires`
/// (a separate, vectorisable loop; the bits are ORed in afterwards).
#[inline(always)]
fn lif_fires(
    vs: &mut [f32],
    xs: &[f32],
    fires: &mut [u8],
    update: impl Fn(f32, f32) -> (f32, bool),
) {
    for ((v, &x), f) in vs.iter_mut().zip(xs).zip(fires.iter_mut()) {
        let (nv, fire) = update(*v, x);
        *v = nv;
        *f = fire as u8;
    }
}

/// Shared pointer for [`lif_packed`] tasks (disjoint mask rows).
struct SyncU64(*mut u64);
// SAFETY: tasks write disjoint rows (see `lif_packed`).
unsafe impl Sync for SyncU64 {}

/// Per-channel `y = x * alpha + beta` over an image-like `[.., C, H, W]` value.
pub fn channel_affine(x: &Array, alpha: &[f32], beta: &[f32]) -> Array {
    let r = x.shape.len();
    let (c, hw) = (x.shape[r - 3], x.shape[r - 2] * x.shape[r - 1]);
    let mut out = crate::buffers::overwritten(x.len());
    out.par_chunks_mut(hw)
        .zip(x.data.par_chunks(hw))
        .enumerate()
        .for_each(|(p, (plane, src))| {
            let ch = p % c;
            for (e, &s) in plane.iter_mut().zip(src) {
                *e = s.mul_add(alpha[ch], beta[ch]);
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
    let var = sq
        .iter()
        .zip(&mean)
        .map(|(q, m)| (q / n - m * m).max(0.0) as f32)
        .collect();
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
    match op {
        BinaryOp::Add => elementwise2(a, b, out_shape, |x, y| x + y, None),
        BinaryOp::Mul => elementwise2(a, b, out_shape, |x, y| x * y, None),
    }
}

/// `relu(p * q) + x` in one pass (`p`, `q` broadcast to `out_shape`, `x` of that shape): the
/// attention's last gate, its ReLU and the block's residual add, each rounded exactly as the
/// three separate ops round (`Mul`, then `Relu` = `max(0.0)`, then `Add`).
pub fn mul_relu_add(p: &Array, q: &Array, x: &Array, out_shape: &[usize]) -> Array {
    debug_assert_eq!(x.shape, out_shape);
    elementwise2(p, q, out_shape, |u, v| (u * v).max(0.0), Some(&x.data))
}

/// `out = f(a, b)` with broadcasting, plus `addend` (same shape as `out`) if given.
fn elementwise2(
    a: &Array,
    b: &Array,
    out_shape: &[usize],
    f: impl Fn(f32, f32) -> f32 + Sync,
    addend: Option<&[f32]>,
) -> Array {
    let n: usize = out_shape.iter().product();
    let mut out = crate::buffers::overwritten(n);
    let add_row = |o: &mut [f32], start: usize| {
        if let Some(ad) = addend {
            let len = o.len();
            for (o, &d) in o.iter_mut().zip(&ad[start..start + len]) {
                *o += d;
            }
        }
    };
    if a.shape == b.shape {
        out.par_chunks_mut(CHUNK)
            .zip(a.data.par_chunks(CHUNK).zip(b.data.par_chunks(CHUNK)))
            .enumerate()
            .for_each(|(c, (o, (x, y)))| {
                for ((o, &x), &y) in o.iter_mut().zip(x).zip(y) {
                    *o = f(x, y);
                }
                add_row(o, c * CHUNK);
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
        let n = o.len();
        match (sa[r - 1], sb[r - 1]) {
            (1, 1) => {
                for ((o, &x), &y) in o
                    .iter_mut()
                    .zip(&a.data[ia..ia + n])
                    .zip(&b.data[ib..ib + n])
                {
                    *o = f(x, y);
                }
            }
            (1, 0) => {
                let y = b.data[ib];
                for (o, &x) in o.iter_mut().zip(&a.data[ia..ia + n]) {
                    *o = f(x, y);
                }
            }
            (0, 1) => {
                let x = a.data[ia];
                for (o, &y) in o.iter_mut().zip(&b.data[ib..ib + n]) {
                    *o = f(x, y);
                }
            }
            (la, lb) => {
                for (j, o) in o.iter_mut().enumerate() {
                    *o = f(a.data[ia + j * la], b.data[ib + j * lb]);
                }
            }
        }
        add_row(o, row * last);
    });
    Array::new(out_shape.to_vec(), out)
}

/// Concatenation along `axis`: the interpreter's copy order, into a pooled buffer, with the
/// (outer index, input) blocks copied in parallel.
pub fn concat(args: &[&Array], axis: usize, out_shape: &[usize]) -> Array {
    let outer: usize = out_shape[..axis].iter().product();
    let chunks: Vec<usize> = args
        .iter()
        .map(|a| a.shape[axis..].iter().product())
        .collect();
    let row: usize = chunks.iter().sum();
    let mut out = crate::buffers::overwritten(outer * row);
    out.par_chunks_mut(row).enumerate().for_each(|(o, dst)| {
        let mut at = 0;
        for (a, &c) in args.iter().zip(&chunks) {
            dst[at..at + c].copy_from_slice(&a.data[o * c..(o + 1) * c]);
            at += c;
        }
    });
    Array::new(out_shape.to_vec(), out)
}

/// `dst += row` in f64.
#[inline(always)]
fn add_f64(dst: &mut [f64], row: &[f32]) {
    for (d, &v) in dst.iter_mut().zip(row) {
        *d += v as f64;
    }
}

/// `dst = max(dst, row)` elementwise, the first maximum winning (`v > d`).
#[inline(always)]
fn max_into(dst: &mut [f32], row: &[f32]) {
    for (d, &v) in dst.iter_mut().zip(row) {
        if v > *d {
            *d = v;
        }
    }
}

/// Mean (the interpreter's lanes: element `k` of an output's reduced sequence into f64 lane
/// `k % MEAN_LANES`, lanes combined by [`combine_lanes`], one rounding) or max (first maximum
/// wins) over `axes`. Neighbouring axes of the same kind are merged first (longer rows). Parallel
/// over the first kept axis longer than 1 (and bands of a kept last axis): each task owns its
/// outputs and visits their elements in row-major order.
///
/// Rows along a reduced last axis are summed 16 lanes at a time (vectorised) when they start
/// on lane 0, and maximised in 16 lanes too; the lane maximum is the sequential one unless it
/// is zero (where `-0.0` and `+0.0` tie and the first would win), which is rescanned in order.
/// A kept last axis is reduced elementwise across rows (one lane array per lane of the rows).
pub fn reduce(x: &Array, op: ReduceOp, axes: &[usize], out_shape: &[usize], level: Level) -> Array {
    let (mean, max) = reduce_both(
        x,
        op == ReduceOp::Mean,
        op == ReduceOp::Max,
        axes,
        out_shape,
        level,
    );
    mean.or(max).expect("one reduction requested")
}

/// The mean and/or the max over the same axes in one pass over `x` (the attention takes both
/// of the same tensor); each is exactly what [`reduce`] gives alone.
pub fn reduce_both(
    x: &Array,
    want_mean: bool,
    want_max: bool,
    axes: &[usize],
    out_shape: &[usize],
    level: Level,
) -> (Option<Array>, Option<Array>) {
    // Merge neighbouring axes that are both reduced or both kept: a row-major view with
    // fewer, longer axes and the same order of elements per output.
    // Axes of length 1 do not affect the order and are dropped.
    let mut dims: Vec<(usize, bool)> = vec![];
    for (d, &n) in x.shape.iter().enumerate() {
        let red = axes.contains(&d);
        match dims.last_mut() {
            _ if n == 1 => {}
            Some(last) if last.1 == red => last.0 *= n,
            _ => dims.push((n, red)),
        }
    }
    if dims.is_empty() {
        dims.push((1, true));
    }
    let shape: Vec<usize> = dims.iter().map(|d| d.0).collect();
    let oshape: Vec<usize> = dims.iter().map(|d| if d.1 { 1 } else { d.0 }).collect();
    let r = shape.len();
    let n_out: usize = out_shape.iter().product();
    let count = x.len() / n_out.max(1);
    let so = strides(&oshape);
    let si = strides(&shape);
    let step: Vec<usize> = (0..r).map(|d| if dims[d].1 { 0 } else { so[d] }).collect();
    let last = shape[r - 1];
    let last_reduced = dims[r - 1].1;
    // Tasks: one per index of the first kept axis (before the last) longer than 1, times
    // bands of columns when the last axis is kept. Every task owns distinct outputs.
    let split = (0..r - 1).find(|&d| !dims[d].1 && shape[d] > 1);
    let band = if last_reduced { last } else { 1024.min(last) };
    let bands = last.div_ceil(band);
    let tasks = split.map_or(1, |d| shape[d]) * bands;
    let mean = want_mean;
    // Mean lanes: per output `[MEAN_LANES]` if the last axis is reduced, else lane-major
    // `[MEAN_LANES][n_out]` (a row adds one element to each of its outputs, all in one lane).
    // (A pooled f32 buffer of twice the length holds the f64 lanes: the lane-major array is
    // megabytes, and a fresh one per call would be page-faulted in every time.)
    let mut lane_buf = crate::buffers::zeroed(if mean { 2 * n_out * MEAN_LANES } else { 0 });
    let sum: &mut [f64] = if mean {
        assert!(
            lane_buf.as_ptr().align_offset(8) == 0,
            "f32 buffers are 8-byte aligned"
        );
        // SAFETY: `lane_buf` holds 2 * n_out * MEAN_LANES zeroed f32s, i.e. as many bytes as
        // n_out * MEAN_LANES f64s, all zero bits (= 0.0); 8-byte aligned (asserted); borrowed
        // exclusively until it is recycled below.
        unsafe {
            std::slice::from_raw_parts_mut(lane_buf.as_mut_ptr() as *mut f64, lane_buf.len() / 2)
        }
    } else {
        &mut []
    };
    let mut seen = vec![0usize; n_out];
    let mut max = vec![f32::NEG_INFINITY; if want_max { n_out } else { 0 }];
    let (sp, mp, np) = (
        SyncF64(sum.as_mut_ptr()),
        SyncPtr(max.as_mut_ptr()),
        SyncUsize(seen.as_mut_ptr()),
    );
    (0..tasks).into_par_iter().for_each(|task| {
        let (sp, mp, np) = (&sp, &mp, &np);
        let (c0, c1) = ((task % bands) * band, ((task % bands + 1) * band).min(last));
        let mut idx = vec![0usize; r.saturating_sub(1)];
        if let Some(d) = split {
            idx[d] = task / bands;
        }
        loop {
            let (mut ii, mut oo) = (0, 0);
            for d in 0..r - 1 {
                ii += idx[d] * si[d];
                oo += idx[d] * step[d];
            }
            let row = &x.data[ii + c0..ii + c1];
            // SAFETY: tasks own disjoint outputs (distinct indices on the split axis, distinct
            // column bands), and every index below is of an output this task owns.
            unsafe {
                if want_mean && last_reduced {
                    let lanes = &mut *(sp.0.add(oo * MEAN_LANES) as *mut [f64; MEAN_LANES]);
                    let pos = &mut *np.0.add(oo);
                    isa!(level, add_lanes(lanes, *pos, row));
                    *pos += last;
                }
                if want_mean && !last_reduced {
                    // Every output of this row advances by one; the count is kept on the
                    // band's first output.
                    let pos = &mut *np.0.add(oo + c0);
                    let lane = *pos % MEAN_LANES;
                    let dst =
                        std::slice::from_raw_parts_mut(sp.0.add(lane * n_out + oo + c0), c1 - c0);
                    isa!(level, add_f64(dst, row));
                    *pos += 1;
                }
                if want_max && last_reduced {
                    let m = &mut *mp.0.add(oo);
                    *m = isa!(level, row_max(*m, row));
                }
                if want_max && !last_reduced {
                    let dst = std::slice::from_raw_parts_mut(mp.0.add(oo + c0), c1 - c0);
                    isa!(level, max_into(dst, row));
                }
            }
            // Next row: odometer over axes 0..r-1, the split axis held fixed.
            let mut d = r - 1;
            let done = loop {
                if d == 0 {
                    break true;
                }
                d -= 1;
                if Some(d) == split {
                    continue;
                }
                idx[d] += 1;
                if idx[d] < shape[d] {
                    break false;
                }
                idx[d] = 0;
            };
            if done {
                break;
            }
        }
    });
    let means = want_mean.then(|| {
        let data = if last_reduced {
            sum.chunks_exact(MEAN_LANES)
                .map(|l| {
                    let l: &[f64; MEAN_LANES] = l.try_into().expect("MEAN_LANES lanes");
                    (combine_lanes(l) / count as f64) as f32
                })
                .collect()
        } else {
            (0..n_out)
                .map(|o| {
                    let l: [f64; MEAN_LANES] = std::array::from_fn(|k| sum[k * n_out + o]);
                    (combine_lanes(&l) / count as f64) as f32
                })
                .collect()
        };
        Array::new(out_shape.to_vec(), data)
    });
    crate::buffers::recycle(lane_buf);
    (means, want_max.then(|| Array::new(out_shape.to_vec(), max)))
}

/// Adds `row` (elements `pos ..` of an output's reduced sequence) into its mean lanes.
#[inline(always)]
fn add_lanes(lanes: &mut [f64; MEAN_LANES], pos: usize, row: &[f32]) {
    let mut head = 0;
    if !pos.is_multiple_of(MEAN_LANES) {
        head = (MEAN_LANES - pos % MEAN_LANES).min(row.len());
        for (j, &v) in row[..head].iter().enumerate() {
            lanes[(pos + j) % MEAN_LANES] += v as f64;
        }
    }
    let mut chunks = row[head..].chunks_exact(MEAN_LANES);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v as f64;
        }
    }
    for (l, &v) in lanes.iter_mut().zip(chunks.remainder()) {
        *l += v as f64;
    }
}

/// `max(m, row)` with the sequential "first maximum wins" result: 16 lane maxima (vectorised),
/// then their maximum; only a zero result can depend on order (`-0.0 == +0.0`), so that case
/// is rescanned in order.
#[inline(always)]
fn row_max(m: f32, row: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 16];
    let mut chunks = row.chunks_exact(16);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = if v > *l { v } else { *l };
        }
    }
    let mut best = m;
    for &v in lanes.iter().chain(chunks.remainder()) {
        if v > best {
            best = v;
        }
    }
    if best == 0.0 {
        best = m;
        for &v in row {
            if v > best {
                best = v;
            }
        }
    }
    best
}

/// Shared f64 output pointer for [`reduce`] tasks (disjoint outputs).
struct SyncF64(*mut f64);
// SAFETY: tasks write disjoint indices (see `reduce`).
unsafe impl Sync for SyncF64 {}

/// Shared per-output counters for [`reduce`] tasks (disjoint outputs).
struct SyncUsize(*mut usize);
// SAFETY: tasks write disjoint indices (see `reduce`).
unsafe impl Sync for SyncUsize {}

/// Mean over the time axis `[T, ...] -> [...]` (f64, t ascending, one rounding).
pub fn mean_time(x: &Array, out_shape: &[usize]) -> Array {
    let t = x.shape[0];
    let per = x.len() / t;
    let mut out = crate::buffers::overwritten(per);
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
    let mut out = crate::buffers::zeroed(outer * n_out * inner);
    out.par_chunks_mut(n_out * inner)
        .enumerate()
        .for_each(|(a, oa)| {
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

// Source indices and weights of bilinear x2 upsampling: the interpreter's definition.
use spikerc_compiler::interp::up2_source;

/// Bilinear x2 upsampling of the last two axes (PyTorch CPU formula), parallel over planes.
pub fn upsample2x(x: &Array) -> Array {
    let r = x.shape.len();
    let (h, w) = (x.shape[r - 2], x.shape[r - 1]);
    let (oh, ow) = (2 * h, 2 * w);
    let lead: usize = x.shape[..r - 2].iter().product();
    let mut out = crate::buffers::overwritten(lead * oh * ow);
    let cols: Vec<_> = (0..ow).map(|ox| up2_source(ox, w)).collect();
    out.par_chunks_mut(oh * ow)
        .enumerate()
        .for_each(|(p, dst)| {
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

#[cfg(test)]
mod tests {
    use super::*;
    use spikerc_compiler::interp::{lif_forward, reduce as interp_reduce};

    /// Every LIF variant (hard/soft reset, with/without decay_input), dense and packed into
    /// bitmaps (70 channels: two words per pixel), gives the interpreter's spikes and count.
    #[test]
    fn lif_kernels_match_the_interpreter() {
        let (t, n, c, h, w) = (3, 2, 70, 5, 9);
        let mut seed = 5u64;
        let data: Vec<f32> = (0..t * n * c * h * w)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % 1000) as f32 / 2000.0
            })
            .collect();
        let x = Array::new(vec![t, n, c, h, w], data);
        let geo = Geometry {
            ci: c,
            co: 16,
            cp: 16,
            kh: 3,
            kw: 3,
            stride: [1, 1],
            padding: [1, 1],
        };
        for reset in [Reset::Hard { v_reset: 0.0 }, Reset::Soft] {
            for decay_input in [false, true] {
                let l = Lif {
                    tau: 2.0,
                    v_threshold: 0.15,
                    reset,
                    decay_input,
                };
                let (want, want_n) = lif_forward(&x, &l);
                let (got, got_n) = lif(&x, &l);
                assert_eq!((got.data, got_n), (want.data.clone(), want_n), "{l:?}");
                for level in Level::detect().and_below() {
                    let (m, k) = lif_packed(&x, &l, &geo, level);
                    assert_eq!(k, want_n, "{l:?} {level:?}");
                    let (hp, wp, nw) = (m.hp, m.wp, m.words);
                    for lead in 0..t * n {
                        for ci in 0..c {
                            for y in 0..h {
                                for xx in 0..w {
                                    let word =
                                        m.data[((lead * hp + y + 1) * wp + xx + 1) * nw + ci / 64];
                                    let bit = (word >> (ci % 64)) & 1;
                                    let s = want.data[((lead * c + ci) * h + y) * w + xx];
                                    assert_eq!(bit as f32, s, "{l:?} {level:?}");
                                }
                            }
                        }
                    }
                    let border: u64 = (0..t * n * hp * wp * nw)
                        .filter(|i| {
                            let (y, x) = ((i / nw / wp) % hp, (i / nw) % wp);
                            y == 0 || x == 0 || y == hp - 1 || x == wp - 1
                        })
                        .map(|i| m.data[i].count_ones() as u64)
                        .sum();
                    assert_eq!(border, 0, "padding stays zero");
                }
            }
        }
    }

    /// Means and maxima over every axis combination of odd-sized shapes (rows that start
    /// mid-lane, merged and length-1 axes, column bands) give the interpreter's bits; a max of
    /// signed zeros keeps the first one.
    #[test]
    fn reductions_match_the_interpreter_bit_for_bit() {
        let mut seed = 11u64;
        for shape in [
            vec![3, 1, 5, 7, 19],
            vec![2, 1, 3, 4, 5000],
            vec![4, 2, 1, 33, 17],
        ] {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed % 20_001) as f32 / 1000.0 - 10.0
                })
                .collect();
            let x = Array::new(shape.clone(), data);
            for mask in 1u32..(1 << shape.len()) {
                let axes: Vec<usize> = (0..shape.len()).filter(|d| mask & (1 << d) != 0).collect();
                let out: Vec<usize> = shape
                    .iter()
                    .enumerate()
                    .map(|(d, &s)| if axes.contains(&d) { 1 } else { s })
                    .collect();
                for op in [ReduceOp::Mean, ReduceOp::Max] {
                    let a = reduce(&x, op, &axes, &out, Level::detect());
                    let b = interp_reduce(&x, op, &axes, &out);
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&a.data), bits(&b.data), "{shape:?} {axes:?} {op:?}");
                }
            }
        }
        let zeros = Array::new(
            vec![1, 40],
            (0..40).map(|i| if i == 3 { -0.0 } else { 0.0 }).collect(),
        );
        let m = reduce(&zeros, ReduceOp::Max, &[1], &[1, 1], Level::detect());
        assert_eq!(
            m.data[0].to_bits(),
            0.0f32.to_bits(),
            "the first zero (+0.0) wins"
        );
        let mut first_neg = zeros.clone();
        first_neg.data[0] = -0.0;
        let m = reduce(&first_neg, ReduceOp::Max, &[1], &[1, 1], Level::detect());
        assert_eq!(
            m.data[0].to_bits(),
            (-0.0f32).to_bits(),
            "the first zero (-0.0) wins"
        );
    }
}
