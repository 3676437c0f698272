//! Convolution kernels: the event-driven accumulate (AC) path for spike inputs and the dense
//! multiply-accumulate (MAC) path for real inputs.
//!
//! Both keep the interpreter's arithmetic contract bit for bit:
//!
//! * **MAC path** ([`DenseConv`]): every output is accumulated in f32, in the canonical order
//!   input channel -> kernel row -> kernel column, from 0, no fused multiply-add, bias last.
//!   The kernel vectorises across output channels (weights stored `[ci][ky][kx][co]`, co padded
//!   to 16 lanes) and register-blocks 8 output pixels of a row; the input is zero-padded once,
//!   which is exact because adding `w * 0` to an accumulator that started at `+0` never
//!   changes it.
//! * **AC path** ([`SpikeConv`]): spikes are scattered. For a band of output rows the kernel
//!   walks the spikes in `(ci, iy, ix)` order and adds the weight column `W[:, ci, ky, kx]` of
//!   every output the spike reaches into a channel-last accumulator. For a fixed output,
//!   `iy` ascending is `ky` ascending and `ix` ascending is `kx` ascending, so the f32 sum is
//!   formed in exactly the canonical order (skipped zero inputs add nothing). With f16
//!   weights the accumulator is i64 fixed point with 24 fraction bits: every f16 is an integer
//!   multiple of 2^-24, so the sum is exact, order-free and equal to the interpreter's f64 sum;
//!   it is rounded once to f32 before the f32 bias is added.
//!
//! Work is split over (plane, band of output rows) with rayon; every output is computed by
//! exactly one task, so results do not depend on the thread count.

use rayon::prelude::*;
use spikerc_compiler::ir::Conv2d;
use spikerc_compiler::tensor::TensorData;

use crate::gather;
use crate::simd::{self, Level};
use crate::SyncPtr;

/// Lanes of one weight chunk; output channels are padded to a multiple of this.
pub const LANES: usize = 16;
/// Scale of the f16 fixed-point accumulator (2^24: every f16 is a multiple of 2^-24).
pub(crate) const FIX_SCALE: f64 = 16_777_216.0;
/// Firing rate from which the masked kernel replaces the scatter for f16 weights (AVX-512).
pub const MASKED_MIN_RATE_F16: f64 = 0.25;
/// Target size of a band accumulator (bytes), so it stays in L2.
const BAND_BYTES: usize = 256 * 1024;

/// One cache line of f32 lanes.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
struct Line([f32; LANES]);

/// An f32 buffer aligned to cache lines, so the kernels' 16-lane vector loads and stores at
/// multiples of 16 never straddle two lines.
#[derive(Clone, Debug, Default)]
pub(crate) struct Lines {
    lines: Vec<Line>,
    len: usize,
}

impl Lines {
    pub(crate) fn from_vec(v: Vec<f32>) -> Lines {
        let mut l = Lines::default();
        l.resize_zeroed(v.len());
        l.copy_from_slice(&v);
        l
    }

    /// Resizes to `len` elements, all zero.
    pub(crate) fn resize_zeroed(&mut self, len: usize) {
        self.lines.clear();
        self.lines.resize(len.div_ceil(LANES), Line::default());
        self.len = len;
    }
}

impl std::ops::Deref for Lines {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        // SAFETY: `lines` holds at least `len` initialised f32s, contiguous (repr(C) arrays).
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr() as *const f32, self.len) }
    }
}

impl std::ops::DerefMut for Lines {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`, uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr() as *mut f32, self.len) }
    }
}

/// Geometry shared by both paths.
#[derive(Clone, Debug)]
pub struct Geometry {
    pub ci: usize,
    pub co: usize,
    /// `co` rounded up to a multiple of [`LANES`].
    pub cp: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

impl Geometry {
    fn of(c: &Conv2d) -> Geometry {
        let [kh, kw] = c.kernel();
        let co = c.out_channels();
        Geometry {
            ci: c.in_channels(),
            co,
            cp: co.div_ceil(LANES) * LANES,
            kh,
            kw,
            stride: c.stride,
            padding: c.padding,
        }
    }

    /// Weights `[co, ci, kh, kw]` re-laid tap-major as `[ky][kx][ci][cp]` (padding lanes zero).
    fn tap_major(&self, w: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; self.ci * self.kh * self.kw * self.cp];
        for o in 0..self.co {
            for i in 0..self.ci {
                for ky in 0..self.kh {
                    for kx in 0..self.kw {
                        out[((ky * self.kw + kx) * self.ci + i) * self.cp + o] =
                            w[((o * self.ci + i) * self.kh + ky) * self.kw + kx];
                    }
                }
            }
        }
        out
    }

    /// Weights `[co, ci, kh, kw]` re-laid channel-major as `[ci][ky][kx][cp]` (padding lanes zero).
    fn ci_major<T: Copy + Default>(&self, w: &[T]) -> Vec<T> {
        let mut out = vec![T::default(); self.ci * self.kh * self.kw * self.cp];
        for o in 0..self.co {
            for i in 0..self.ci {
                for ky in 0..self.kh {
                    for kx in 0..self.kw {
                        out[((i * self.kh + ky) * self.kw + kx) * self.cp + o] =
                            w[((o * self.ci + i) * self.kh + ky) * self.kw + kx];
                    }
                }
            }
        }
        out
    }
}

/// Op counts produced by one convolution call.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConvCounts {
    pub spikes_in: u64,
    pub ac: u64,
    pub mac: u64,
}

/// A convolution on real-valued input (MAC path).
#[derive(Clone, Debug)]
pub struct DenseConv {
    pub geo: Geometry,
    /// `[ky][kx][ci][cp]`, f32 (f16 weights widened exactly).
    pub(crate) wt: Lines,
    pub(crate) bias: Option<Vec<f32>>,
}

/// Zero-padded copy of every input plane (`[lead * ci, h, w]` -> `[lead * ci, h + 2py, w + 2px]`),
/// each value mapped through `f` (identity for the dense path, a spike mask for the masked one)
/// into the zero-filled buffer `alloc(len)` returns.
fn pad_planes<T: Copy + Default + Send>(
    x: &[f32],
    g: &Geometry,
    (h, w): (usize, usize),
    f: impl Fn(f32) -> T + Sync,
    alloc: impl FnOnce(usize) -> Vec<T>,
) -> Vec<T> {
    let [py, px] = g.padding;
    let (hp, wp) = (h + 2 * py, w + 2 * px);
    let mut out = alloc(x.len() / (h * w) * hp * wp);
    out.par_chunks_mut(hp * wp)
        .zip(x.par_chunks(h * w))
        .for_each(|(dst, src)| {
            for y in 0..h {
                let d = &mut dst[(y + py) * wp + px..(y + py) * wp + px + w];
                for (o, &v) in d.iter_mut().zip(&src[y * w..(y + 1) * w]) {
                    *o = f(v);
                }
            }
        });
    out
}

/// Calls `row(b, oy, ob)` for every output row `oy` of every plane `b`, in parallel over
/// (plane, band of rows); `ob` is plane `b` of `out` (`[co, oh, ow]`). Every output row is
/// computed by exactly one task, so results do not depend on the thread count.
fn par_output_rows(
    out: &mut [f32],
    lead: usize,
    g: &Geometry,
    (oh, ow): (usize, usize),
    row: impl Fn(usize, usize, &mut [f32]) + Sync,
) {
    let out_ptr = SyncPtr(out.as_mut_ptr());
    let rows_per_task = 1usize.max(4096 / (ow * g.cp).max(1));
    let bands = oh.div_ceil(rows_per_task);
    (0..lead * bands).into_par_iter().for_each(|task| {
        let (b, band) = (task / bands, task % bands);
        let r0 = band * rows_per_task;
        let r1 = (r0 + rows_per_task).min(oh);
        let p = &out_ptr;
        // SAFETY: each task writes only rows r0..r1 of plane b of every output channel;
        // tasks partition (plane, row) pairs, so writes never overlap.
        let ob =
            unsafe { std::slice::from_raw_parts_mut(p.0.add(b * g.co * oh * ow), g.co * oh * ow) };
        for oy in r0..r1 {
            row(b, oy, ob);
        }
    });
}

thread_local! {
    /// Channel-last accumulators of one output row (`[ow][cp]`), reused across rows.
    static ROW: std::cell::RefCell<Lines> = std::cell::RefCell::new(Lines::default());
}

/// Runs `fill` on a zeroed channel-last accumulator row (`[ow][cp]`), then writes it into row
/// `oy` of the `[co, oh, ow]` planes `ob`, adding the bias last. Kernels accumulate with
/// vector stores into the row; the transposition writes each plane's row contiguously (storing
/// a register tile straight into `co` planes would touch a new cache line per element).
pub(crate) fn via_row_buffer(
    g: &Geometry,
    bias: Option<&[f32]>,
    oy: usize,
    (oh, ow): (usize, usize),
    ob: &mut [f32],
    fill: impl FnOnce(&mut [f32]),
) {
    ROW.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.resize_zeroed(ow * g.cp);
        fill(&mut buf[..]);
        for o in 0..g.co {
            let dst = &mut ob[(o * oh + oy) * ow..(o * oh + oy + 1) * ow];
            let src = buf[o..].iter().step_by(g.cp);
            match bias {
                Some(bb) => dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s + bb[o]),
                None => dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s),
            }
        }
    });
}

impl DenseConv {
    pub fn new(c: &Conv2d) -> DenseConv {
        let geo = Geometry::of(c);
        let wt = Lines::from_vec(geo.tap_major(&c.weight.to_f32()));
        DenseConv {
            geo,
            wt,
            bias: c.bias.as_ref().map(|b| b.to_f32().into_owned()),
        }
    }

    /// `x` is `[lead, ci, h, w]` flattened; writes `[lead, co, oh, ow]`.
    pub fn run(
        &self,
        x: &[f32],
        lead: usize,
        (h, w): (usize, usize),
        (oh, ow): (usize, usize),
        level: Level,
    ) -> (Vec<f32>, ConvCounts) {
        let g = &self.geo;
        let [py, px] = g.padding;
        let (hp, wp) = (h + 2 * py, w + 2 * px);
        // Zero-padded copy of the input planes: exact (adding w*0 changes nothing).
        let xp = pad_planes(x, g, (h, w), |v| v, crate::buffers::zeroed);
        let mut out = crate::buffers::overwritten(lead * g.co * oh * ow);
        par_output_rows(&mut out, lead, g, (oh, ow), |b, oy, ob| {
            let xb = &xp[b * g.ci * hp * wp..(b + 1) * g.ci * hp * wp];
            simd::dense_row(level, self, xb, (hp, wp), oy, (oh, ow), ob);
        });
        crate::buffers::recycle(xp);
        let mac = (lead * g.co * oh * ow * g.ci * g.kh * g.kw) as u64;
        (
            out,
            ConvCounts {
                mac,
                ..Default::default()
            },
        )
    }

    /// Computes output row `oy` of one plane for output channels `[c0, c0 + 16 * nc)` and
    /// output columns `[ox0, ox0 + P)` into the channel-last row `acc` (`[ow][cp]`).
    #[inline(always)]
    pub(crate) fn tile<const P: usize, const NC: usize>(
        &self,
        xb: &[f32],
        (hp, wp): (usize, usize),
        oy: usize,
        ox0: usize,
        c0: usize,
        out: &mut [f32],
    ) {
        let g = &self.geo;
        let [sy, sx] = g.stride;
        let mut acc = [[[0f32; LANES]; NC]; P];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                for i in 0..g.ci {
                    let plane = &xb[i * hp * wp..(i + 1) * hp * wp];
                    let row = &plane[(oy * sy + ky) * wp..(oy * sy + ky + 1) * wp];
                    let wbase = ((ky * g.kw + kx) * g.ci + i) * g.cp + c0;
                    let mut wv = [[0f32; LANES]; NC];
                    for (c, wc) in wv.iter_mut().enumerate() {
                        wc.copy_from_slice(&self.wt[wbase + c * LANES..wbase + (c + 1) * LANES]);
                    }
                    for (p, ap) in acc.iter_mut().enumerate() {
                        let xv = row[(ox0 + p) * sx + kx];
                        for c in 0..NC {
                            for l in 0..LANES {
                                ap[c][l] += wv[c][l] * xv;
                            }
                        }
                    }
                }
            }
        }
        for (p, ap) in acc.iter().enumerate() {
            let dst = &mut out[(ox0 + p) * g.cp + c0..(ox0 + p) * g.cp + c0 + NC * LANES];
            for (c, a) in ap.iter().enumerate() {
                dst[c * LANES..(c + 1) * LANES].copy_from_slice(a);
            }
        }
    }
}

/// Which AC kernel an event-driven convolution uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcKernel {
    /// By firing rate (and `SPIKERC_AC_KERNEL`).
    Auto,
    /// Scatter weight columns per spike (any instruction set).
    Scatter,
    /// Masked register tiles (AVX-512 only; falls back to the scatter elsewhere).
    Masked,
}

/// Weights of an event-driven convolution.
#[derive(Clone, Debug)]
enum SpikeWeights {
    /// f32 weights in the gather kernel's layout ([`gather::layout`]).
    F32(Lines),
    /// f16 weights as exact i64 fixed point (x 2^24), `[ci][ky][kx][cp]`.
    Fixed(Vec<i64>),
}

/// A convolution on spike input (AC path).
#[derive(Clone, Debug)]
pub struct SpikeConv {
    pub geo: Geometry,
    weights: SpikeWeights,
    bias: Option<Vec<f32>>,
}

impl SpikeConv {
    pub fn new(c: &Conv2d) -> SpikeConv {
        let geo = Geometry::of(c);
        let weights = match &c.weight.data {
            TensorData::F16(v) => {
                let fixed: Vec<i64> = v.iter().map(|x| (x.to_f64() * FIX_SCALE) as i64).collect();
                SpikeWeights::Fixed(geo.ci_major(&fixed))
            }
            TensorData::F32(v) => SpikeWeights::F32(Lines::from_vec(gather::layout(&geo, v))),
        };
        SpikeConv {
            geo,
            weights,
            bias: c.bias.as_ref().map(|b| b.to_f32().into_owned()),
        }
    }

    /// Whether this conv uses exact fixed-point accumulation (f16 weights).
    pub fn is_exact(&self) -> bool {
        matches!(self.weights, SpikeWeights::Fixed(_))
    }

    /// `x` is `[lead, ci, h, w]` of 0/1 spikes; writes `[lead, co, oh, ow]`.
    pub fn run(
        &self,
        x: &[f32],
        lead: usize,
        hw: (usize, usize),
        ohw: (usize, usize),
        level: Level,
    ) -> (Vec<f32>, ConvCounts) {
        self.run_with(x, lead, hw, ohw, level, AcKernel::Auto)
    }

    /// [`SpikeConv::run`] with an explicit kernel choice for f16 weights (all choices give
    /// identical bits; f32 weights always use the gather kernel).
    pub fn run_with(
        &self,
        x: &[f32],
        lead: usize,
        hw: (usize, usize),
        ohw: (usize, usize),
        level: Level,
        kernel: AcKernel,
    ) -> (Vec<f32>, ConvCounts) {
        match &self.weights {
            SpikeWeights::F32(wt) => self.run_gather(wt, x, lead, hw, ohw, level),
            SpikeWeights::Fixed(wt) => self.run_fixed(wt, x, lead, hw, ohw, level, kernel),
        }
    }

    /// f32 weights: pack the spikes into channel bitmaps, then gather per output pixel.
    fn run_gather(
        &self,
        wt: &[f32],
        x: &[f32],
        lead: usize,
        hw: (usize, usize),
        (oh, ow): (usize, usize),
        level: Level,
    ) -> (Vec<f32>, ConvCounts) {
        let g = &self.geo;
        let masks = gather::pack(x, lead, g, hw, (oh, ow));
        let mut out = crate::buffers::overwritten(lead * g.co * oh * ow);
        let bias = self.bias.as_deref();
        par_output_rows(&mut out, lead, g, (oh, ow), |b, oy, ob| {
            gather::row(level, g, wt, bias, &masks, b, oy, (oh, ow), ob);
        });
        (
            out,
            ConvCounts {
                spikes_in: masks.spikes,
                ac: masks.taps * g.co as u64,
                mac: 0,
            },
        )
    }

    /// f16 weights (exact i64 fixed point): scatter or masked tiles, by firing rate.
    fn run_fixed(
        &self,
        wt: &[i64],
        x: &[f32],
        lead: usize,
        (h, w): (usize, usize),
        (oh, ow): (usize, usize),
        level: Level,
        kernel: AcKernel,
    ) -> (Vec<f32>, ConvCounts) {
        let g = &self.geo;
        let spikes_in: u64 = x
            .par_chunks(1 << 16)
            .map(|c| c.iter().filter(|v| **v != 0.0).count() as u64)
            .sum();
        if use_masked(level, spikes_in, x.len(), kernel) {
            return self.run_masked(wt, x, lead, (h, w), (oh, ow), spikes_in);
        }
        let band = 1usize.max(BAND_BYTES / (ow * g.cp * 8).max(1)).min(oh);
        let bands = oh.div_ceil(band);
        let mut out = crate::buffers::overwritten(lead * g.co * oh * ow);
        let out_ptr = SyncPtr(out.as_mut_ptr());
        let acs: u64 = (0..lead * bands)
            .into_par_iter()
            .map(|task| {
                let (b, bi) = (task / bands, task % bands);
                let r0 = bi * band;
                let r1 = (r0 + band).min(oh);
                let xb = &x[b * g.ci * h * w..(b + 1) * g.ci * h * w];
                let p = &out_ptr;
                // SAFETY: each task writes only rows r0..r1 of plane b of every output
                // channel; tasks partition (plane, row) pairs, so writes never overlap.
                let ob = unsafe {
                    std::slice::from_raw_parts_mut(p.0.add(b * g.co * oh * ow), g.co * oh * ow)
                };
                let mut acc = vec![0i64; (r1 - r0) * ow * g.cp];
                let taps = simd::scatter_i64(level, g, wt, xb, (h, w), (r0, r1), ow, &mut acc);
                for o in 0..g.co {
                    for oy in r0..r1 {
                        let dst = &mut ob[(o * oh + oy) * ow..(o * oh + oy + 1) * ow];
                        for (ox, d) in dst.iter_mut().enumerate() {
                            let s =
                                (acc[((oy - r0) * ow + ox) * g.cp + o] as f64 / FIX_SCALE) as f32;
                            *d = match &self.bias {
                                Some(bb) => s + bb[o],
                                None => s,
                            };
                        }
                    }
                }
                taps
            })
            .sum();
        (
            out,
            ConvCounts {
                spikes_in,
                ac: acs * g.co as u64,
                mac: 0,
            },
        )
    }
}

/// Whether the masked register-tile kernel (cost ~ dense, independent of the firing rate)
/// beats the scatter (cost ~ spikes) for an f16 input: AVX-512 only, and a firing rate above
/// [`MASKED_MIN_RATE_F16`] (measured crossover, see `examples/kernels.rs`).
/// `SPIKERC_AC_KERNEL=scatter|masked` forces one (for tests and measurement).
fn use_masked(level: Level, spikes: u64, len: usize, kernel: AcKernel) -> bool {
    if level != Level::Avx512 {
        return false;
    }
    match (kernel, std::env::var("SPIKERC_AC_KERNEL").as_deref()) {
        (AcKernel::Scatter, _) | (AcKernel::Auto, Ok("scatter")) => false,
        (AcKernel::Masked, _) | (AcKernel::Auto, Ok("masked")) => true,
        _ => spikes as f64 >= MASKED_MIN_RATE_F16 * len as f64,
    }
}

impl SpikeConv {
    /// The masked kernel: zero-padded u16 spike masks, then register tiles per output row.
    #[cfg(target_arch = "x86_64")]
    fn run_masked(
        &self,
        wt: &[i64],
        x: &[f32],
        lead: usize,
        (h, w): (usize, usize),
        (oh, ow): (usize, usize),
        spikes_in: u64,
    ) -> (Vec<f32>, ConvCounts) {
        let g = &self.geo;
        let [py, px] = g.padding;
        let (hp, wp) = (h + 2 * py, w + 2 * px);
        let mask = pad_planes(
            x,
            g,
            (h, w),
            |v| if v != 0.0 { 0xFFFFu16 } else { 0 },
            |n| vec![0; n],
        );
        let mut out = crate::buffers::overwritten(lead * g.co * oh * ow);
        let bias = self.bias.as_deref();
        par_output_rows(&mut out, lead, g, (oh, ow), |b, oy, ob| {
            let mb = &mask[b * g.ci * hp * wp..(b + 1) * g.ci * hp * wp];
            // SAFETY: `use_masked` only selects this kernel at `Level::Avx512`.
            unsafe {
                crate::simd::masked_row_i64_avx512(g, wt, bias, mb, (hp, wp), oy, (oh, ow), ob)
            };
        });
        let ac = reached_taps(g, x, lead, (h, w), (oh, ow)) * g.co as u64;
        (
            out,
            ConvCounts {
                spikes_in,
                ac,
                mac: 0,
            },
        )
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn run_masked(
        &self,
        _: &[i64],
        _: &[f32],
        _: usize,
        _: (usize, usize),
        _: (usize, usize),
        _: u64,
    ) -> (Vec<f32>, ConvCounts) {
        unreachable!("the masked kernel is only selected on x86_64 with AVX-512")
    }
}

/// Number of outputs (per output channel) a spike at input position `i` of an axis reaches.
pub(crate) fn reach(i: usize, n_out: usize, k: usize, s: usize, p: usize) -> u64 {
    let num = i + p;
    let lo = num.saturating_sub(k - 1).div_ceil(s);
    let hi = (num / s).min(n_out - 1);
    if lo > hi {
        0
    } else {
        (hi - lo + 1) as u64
    }
}

/// Sum over all spikes of the outputs (per output channel) each reaches, i.e. the AC count
/// divided by `co`; the same number the scatter kernel counts tap by tap.
fn reached_taps(
    g: &Geometry,
    x: &[f32],
    lead: usize,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
) -> u64 {
    let ry: Vec<u64> = (0..h)
        .map(|i| reach(i, oh, g.kh, g.stride[0], g.padding[0]))
        .collect();
    let rx: Vec<u64> = (0..w)
        .map(|i| reach(i, ow, g.kw, g.stride[1], g.padding[1]))
        .collect();
    x.par_chunks(h * w)
        .map(|plane| {
            let _ = lead;
            plane
                .chunks(w)
                .zip(&ry)
                .map(|(row, &r)| {
                    r * row
                        .iter()
                        .zip(&rx)
                        .map(|(v, &c)| if *v != 0.0 { c } else { 0 })
                        .sum::<u64>()
                })
                .sum::<u64>()
        })
        .sum()
}

/// The scatter loop shared by both accumulator types: walks the spikes of the input rows that
/// reach output rows `[r0, r1)` in `(ci, iy, ix)` order and adds each reached tap's weight
/// column into `acc` (`[r1 - r0][ow][cp]`). Returns the number of (spike, tap) pairs.
#[inline(always)]
pub(crate) fn scatter<A: Copy + std::ops::AddAssign>(
    add_column: impl Fn(&mut [A], &[A]),
    g: &Geometry,
    wt: &[A],
    xb: &[f32],
    (h, w): (usize, usize),
    (r0, r1): (usize, usize),
    ow: usize,
    acc: &mut [A],
) -> u64 {
    let [sy, sx] = g.stride;
    let [py, px] = g.padding;
    let cp = g.cp;
    let mut taps = 0u64;
    // Input rows that reach output rows r0..r1: iy = oy*sy - py + ky.
    let iy0 = (r0 * sy).saturating_sub(py);
    let iy1 = ((r1 - 1) * sy + g.kh).saturating_sub(py).min(h);
    for ci in 0..g.ci {
        let plane = &xb[ci * h * w..(ci + 1) * h * w];
        for iy in iy0..iy1 {
            let row = &plane[iy * w..(iy + 1) * w];
            // Valid (ky, oy) pairs for this input row inside the band.
            let mut kys = [(0usize, 0usize); 16];
            let mut nky = 0;
            for ky in 0..g.kh.min(16) {
                let num = iy + py;
                if num < ky || (num - ky) % sy != 0 {
                    continue;
                }
                let oy = (num - ky) / sy;
                if oy >= r0 && oy < r1 {
                    kys[nky] = (ky, oy - r0);
                    nky += 1;
                }
            }
            if nky == 0 {
                continue;
            }
            for (cb, chunk) in row.chunks(64).enumerate() {
                let mut mask = 0u64;
                for (k, v) in chunk.iter().enumerate() {
                    mask |= ((*v != 0.0) as u64) << k;
                }
                while mask != 0 {
                    let ix = cb * 64 + mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    let num = ix + px;
                    // Output columns reached: ox = (num - kx) / sx for kx with exact division.
                    let (ox_lo, ox_hi) = if sx == 1 {
                        (num.saturating_sub(g.kw - 1), num.min(ow - 1))
                    } else {
                        (
                            num.saturating_sub(g.kw - 1).div_ceil(sx),
                            (num / sx).min(ow - 1),
                        )
                    };
                    if ox_lo > ox_hi {
                        continue;
                    }
                    for &(ky, ry) in &kys[..nky] {
                        let wrow =
                            &wt[((ci * g.kh + ky) * g.kw) * cp..((ci * g.kh + ky + 1) * g.kw) * cp];
                        let arow = &mut acc[ry * ow * cp..(ry + 1) * ow * cp];
                        for ox in ox_lo..=ox_hi {
                            let kx = num - ox * sx;
                            add_column(
                                &mut arow[ox * cp..(ox + 1) * cp],
                                &wrow[kx * cp..(kx + 1) * cp],
                            );
                        }
                        taps += (ox_hi - ox_lo + 1) as u64;
                    }
                }
            }
        }
    }
    taps
}

/// `acc += w`, both a multiple of [`LANES`] long (portable; the AVX-512 variants live in
/// [`crate::simd`]).
#[inline(always)]
pub(crate) fn add_column<A: Copy + std::ops::AddAssign>(acc: &mut [A], w: &[A]) {
    for (a, w) in acc.chunks_exact_mut(LANES).zip(w.chunks_exact(LANES)) {
        for l in 0..LANES {
            a[l] += w[l];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spikerc_compiler::Tensor;

    /// Strides 1 and 2, 1x1 and 3x3, several firing rates: with f16 weights the scatter and
    /// masked kernels give identical bits and AC counts; with f32 weights the gather kernel
    /// gives the dense MAC path's bits (same canonical order) and the same AC count.
    #[test]
    fn spike_kernels_agree_bit_for_bit() {
        let level = Level::detect();
        let mut seed = 7u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 100_000) as f32 / 100_000.0
        };
        for (ci, co, k, s, p) in [(5, 20, 3, 1, 1), (8, 33, 3, 2, 1), (6, 17, 1, 1, 0)] {
            let w: Vec<f32> = (0..co * ci * k * k).map(|_| rnd() - 0.5).collect();
            let b: Vec<f32> = (0..co).map(|_| rnd() * 0.1).collect();
            let conv = Conv2d {
                weight: Tensor::from_f32(vec![co, ci, k, k], w),
                bias: Some(Tensor::from_f32(vec![co], b)),
                stride: [s, s],
                padding: [p, p],
                event_driven: true,
            };
            let half = Conv2d {
                weight: conv.weight.to_f16(),
                ..conv.clone()
            };
            let (h, wd) = (13, 22);
            let (oh, ow) = ((h + 2 * p - k) / s + 1, (wd + 2 * p - k) / s + 1);
            for rate in [0.05, 0.3, 0.9] {
                let x: Vec<f32> = (0..2 * ci * h * wd)
                    .map(|_| (rnd() < rate) as u8 as f32)
                    .collect();
                for c in [&conv, &half] {
                    let sc = SpikeConv::new(c);
                    let (a, ca) = sc.run_with(&x, 2, (h, wd), (oh, ow), level, AcKernel::Scatter);
                    let (m, cm) = sc.run_with(&x, 2, (h, wd), (oh, ow), level, AcKernel::Masked);
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        bits(&a),
                        bits(&m),
                        "ci {ci} co {co} k {k} s {s} rate {rate}"
                    );
                    assert_eq!((ca.ac, ca.spikes_in), (cm.ac, cm.spikes_in));
                    let dense = DenseConv::new(c).run(&x, 2, (h, wd), (oh, ow), level).0;
                    if !sc.is_exact() {
                        assert_eq!(bits(&a), bits(&dense), "f32 AC path equals the MAC path");
                    }
                }
            }
        }
    }
}
