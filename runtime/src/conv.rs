//! Convolution kernels: the event-driven accumulate (AC) path for spike inputs and the dense
//! multiply-accumulate (MAC) path for real inputs.
//!
//! Both keep the interpreter's arithmetic contract bit for bit:
//!
//! * **MAC path** ([`DenseConv`]): every output is accumulated in f32, in the canonical order
//!   kernel row -> kernel column -> input channel, from 0, no fused multiply-add, bias last.
//!   The kernel vectorises across output channels (weights stored `[ky][kx][ci][co]`, co padded
//!   to 16 lanes) and register-blocks output pixels of a row; taps that fall in the zero
//!   padding are skipped (exact: adding `w * 0` to an accumulator that started at `+0` never
//!   changes it), so the input is read in place. Convolutions marked Winograd take
//!   [`crate::winograd`] instead ([`MacConv`] dispatches on the op's algorithm).
//! * **AC path** ([`SpikeConv`]): the gather kernel ([`crate::gather`]) adds, for every output
//!   pixel, the weight vectors of its active inputs in the canonical order. With f16 weights
//!   the accumulator is integer fixed point with 24 fraction bits: every f16 is an integer
//!   multiple of 2^-24, so the sum is exact, order-free and equal to the interpreter's f64 sum;
//!   it is rounded once to f32 before the f32 bias is added. The integers are i32 (16 lanes
//!   per zmm, as many as f32) when no output channel's sum of |weights| x 2^24 exceeds
//!   `i32::MAX` — then no partial sum of any spike pattern can overflow ([`fits_i32`]) — and
//!   i64 otherwise; both give the same exact integer, hence the same bits.
//!
//! Both kernels accumulate one output row channel-last in an aligned row buffer and transpose
//! it into the `[co, oh, ow]` planes ([`via_row_buffer`]). Work is split over (plane, band of
//! output rows) with rayon; every output is computed by exactly one task, so results do not
//! depend on the thread count.

use spikerc_compiler::ir::{Conv2d, ConvAlgorithm};
use spikerc_compiler::tensor::TensorData;
use std::cell::RefCell;

use crate::disjoint::{self, ChannelRows};
use crate::gather;
use crate::simd::{self, Level};
use crate::winograd::WinogradConv;

/// Lanes of one weight chunk; output channels are padded to a multiple of this.
pub const LANES: usize = 16;
/// Scale of the f16 fixed-point accumulator (2^24: every f16 is a multiple of 2^-24).
pub(crate) const FIX_SCALE: f64 = 16_777_216.0;

/// An accumulator element of the kernels: f32 (f32 weights) or exact i32 / i64 fixed point
/// (f16 weights). Sealed to these three: all-zero bytes are a valid zero of each.
pub(crate) trait Acc:
    Copy + Default + Send + Sync + std::ops::AddAssign + sealed::Sealed + 'static
{
    /// Elements per 512-bit register.
    const PER_ZMM: usize = 64 / std::mem::size_of::<Self>();
    /// The accumulated sum as f32 (one rounding for fixed point).
    fn to_f32(self) -> f32;
    /// Runs `f` on this thread's row buffer of this type, resized to `len` zeros.
    fn with_row<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
    /// Writes the channel-last row `buf` (`[n][cp]`, `n = dst.len()`) as f32 into the `co`
    /// rows of `dst`, adding the bias last ([`simd::store_planes`]).
    fn store_planes(
        level: Level,
        buf: &[Self],
        g: &Geometry,
        dst: &mut ChannelRows<'_>,
        bias: Option<&[f32]>,
    );
    /// The gather kernel's AVX-512 pass with `NZ` registers per pixel.
    ///
    /// # Safety
    /// As [`gather::pass512_f32`].
    #[cfg(target_arch = "x86_64")]
    unsafe fn pass512<const NZ: usize>(
        g: &Geometry,
        wt: &[Self],
        mp: &[u64],
        wn: (usize, usize),
        oy: usize,
        ow: usize,
        c0: usize,
        out: &mut [Self],
    );
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for i32 {}
    impl Sealed for i64 {}
}

thread_local! {
    /// Channel-last accumulators of one output row (`[ow][cp]`), reused across rows.
    static ROW_F32: RefCell<Lines<f32>> = RefCell::new(Lines::zeroed(0));
    static ROW_I32: RefCell<Lines<i32>> = RefCell::new(Lines::zeroed(0));
    static ROW_I64: RefCell<Lines<i64>> = RefCell::new(Lines::zeroed(0));
}

/// `Acc` for one element type: its f32 conversion, its row buffer, its AVX-512 pass and its
/// transposing store.
macro_rules! impl_acc {
    ($t:ty, $row:ident, $pass:ident, $planes:ident, |$x:ident| $to_f32:expr) => {
        impl Acc for $t {
            fn to_f32(self) -> f32 {
                let $x = self;
                $to_f32
            }
            fn store_planes(
                level: Level,
                buf: &[$t],
                g: &Geometry,
                dst: &mut ChannelRows<'_>,
                bias: Option<&[f32]>,
            ) {
                $planes(level, buf, g, dst, bias)
            }
            fn with_row<R>(len: usize, f: impl FnOnce(&mut [$t]) -> R) -> R {
                $row.with(|b| {
                    let mut b = b.borrow_mut();
                    b.resize_zeroed(len);
                    f(&mut b)
                })
            }
            /// # Safety
            /// As [`gather::pass512_f32`].
            #[cfg(target_arch = "x86_64")]
            unsafe fn pass512<const NZ: usize>(
                g: &Geometry,
                wt: &[$t],
                mp: &[u64],
                wn: (usize, usize),
                oy: usize,
                ow: usize,
                c0: usize,
                out: &mut [$t],
            ) {
                gather::$pass::<NZ>(g, wt, mp, wn, oy, ow, c0, out)
            }
        }
    };
}

impl_acc!(f32, ROW_F32, pass512_f32, store_planes_f32, |x| x);
impl_acc!(
    i32,
    ROW_I32,
    pass512_i32,
    store_planes_fixed,
    |x| (x as f64 / FIX_SCALE) as f32
);
impl_acc!(
    i64,
    ROW_I64,
    pass512_i64,
    store_planes_fixed,
    |x| (x as f64 / FIX_SCALE) as f32
);

/// [`Acc::store_planes`] for f32: the transposing store of [`simd::store_planes`].
fn store_planes_f32(
    level: Level,
    buf: &[f32],
    g: &Geometry,
    dst: &mut ChannelRows<'_>,
    bias: Option<&[f32]>,
) {
    debug_assert_eq!(dst.channels(), g.co);
    simd::store_planes(level, buf, g.cp, dst, bias)
}

/// [`Acc::store_planes`] for fixed point: convert (one rounding), then add the bias.
fn store_planes_fixed<T: Acc>(
    _: Level,
    buf: &[T],
    g: &Geometry,
    dst: &mut ChannelRows<'_>,
    bias: Option<&[f32]>,
) {
    assert!(dst.channels() == g.co && buf.len() >= dst.len() * g.cp);
    for o in 0..g.co {
        let row = dst.row(o);
        let col = buf[o..].iter().step_by(g.cp);
        match bias {
            Some(bb) => row
                .iter_mut()
                .zip(col)
                .for_each(|(d, &s)| *d = s.to_f32() + bb[o]),
            None => row.iter_mut().zip(col).for_each(|(d, &s)| *d = s.to_f32()),
        }
    }
}

/// One cache line.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Line([u8; 64]);

/// A buffer of `T` aligned to cache lines, so the kernels' vector loads and stores at
/// multiples of 64 bytes never straddle two lines.
#[derive(Clone, Debug)]
pub(crate) struct Lines<T: Acc> {
    lines: Vec<Line>,
    len: usize,
    _t: std::marker::PhantomData<T>,
}

impl<T: Acc> Lines<T> {
    /// `len` zeros.
    pub(crate) fn zeroed(len: usize) -> Lines<T> {
        let mut l = Lines {
            lines: vec![],
            len: 0,
            _t: std::marker::PhantomData,
        };
        l.resize_zeroed(len);
        l
    }

    /// Resizes to `len` elements, all zero.
    pub(crate) fn resize_zeroed(&mut self, len: usize) {
        self.lines.clear();
        let bytes = len * std::mem::size_of::<T>();
        self.lines.resize(bytes.div_ceil(64), Line([0; 64]));
        self.len = len;
    }

    pub(crate) fn from_slice(v: &[T]) -> Lines<T> {
        let mut l = Lines::zeroed(v.len());
        l.copy_from_slice(v);
        l
    }
}

impl<T: Acc> std::ops::Deref for Lines<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `lines` holds at least `len * size_of::<T>()` initialised bytes, 64-byte
        // aligned (>= align_of::<T>()), and every bit pattern is a valid f32 / i64 (`Acc` is
        // sealed to those).
        unsafe { std::slice::from_raw_parts(self.lines.as_ptr() as *const T, self.len) }
    }
}

impl<T: Acc> std::ops::DerefMut for Lines<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.lines.as_mut_ptr() as *mut T, self.len) }
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
    pub(crate) fn of(c: &Conv2d) -> Geometry {
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
}

/// See [`DenseConv::window`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    /// Kernel rows inside the input.
    pub ky: (usize, usize),
    /// Output columns all of whose kernel columns are inside the input.
    pub ox: (usize, usize),
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
    pub(crate) wt: Lines<f32>,
    pub(crate) bias: Option<Vec<f32>>,
}

/// Calls `row(b, oy, dst)` for every output row `oy` of every plane `b` of `out`
/// (`[lead, co, oh, ow]`), in parallel over (plane, band of rows) cells
/// ([`disjoint::par_regions`]); `dst` is that row of every output channel. Every output row
/// is computed by exactly one task, so results do not depend on the thread count.
fn par_output_rows(
    out: &mut [f32],
    lead: usize,
    g: &Geometry,
    (oh, ow): (usize, usize),
    row: impl Fn(usize, usize, &mut ChannelRows<'_>) + Sync,
) {
    let rows_per_task = 1usize.max(4096 / (ow * g.cp).max(1));
    disjoint::par_regions(out, lead, g.co, (oh, ow), (rows_per_task, ow), |mut cell| {
        let b = cell.plane();
        for oy in cell.rows() {
            row(b, oy, &mut cell.rows_at(oy));
        }
    });
}

/// Runs `fill` on a zeroed channel-last accumulator row (`[ow][cp]`, `ow = dst.len()`), then
/// writes it into `dst` (one output row per channel, as f32), adding the bias last. Kernels
/// accumulate with vector stores into the row; the transposition writes each plane's row
/// contiguously (storing a register tile straight into `co` planes would touch a new cache
/// line per element).
pub(crate) fn via_row_buffer<T: Acc>(
    level: Level,
    g: &Geometry,
    bias: Option<&[f32]>,
    dst: &mut ChannelRows<'_>,
    fill: impl FnOnce(&mut [T]),
) {
    T::with_row(dst.len() * g.cp, |buf| {
        fill(buf);
        T::store_planes(level, buf, g, dst, bias);
    });
}

impl DenseConv {
    pub fn new(c: &Conv2d) -> DenseConv {
        let geo = Geometry::of(c);
        let wt = Lines::from_slice(&geo.tap_major(&c.weight.to_f32()));
        DenseConv {
            geo,
            wt,
            bias: c.bias.as_ref().map(|b| b.to_f32().into_owned()),
        }
    }

    /// A pointwise (1x1, stride 1, no padding, no bias) convolution with weights `[co][ci]`.
    pub(crate) fn pointwise(ci: usize, co: usize, w: &[f32]) -> DenseConv {
        let geo = Geometry {
            ci,
            co,
            cp: co.div_ceil(LANES) * LANES,
            kh: 1,
            kw: 1,
            stride: [1, 1],
            padding: [0, 0],
        };
        DenseConv {
            wt: Lines::from_slice(&geo.tap_major(w)),
            geo,
            bias: None,
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
        let mut out = crate::buffers::overwritten(lead * g.co * oh * ow);
        par_output_rows(&mut out, lead, g, (oh, ow), |b, oy, dst| {
            let xb = &x[b * g.ci * h * w..(b + 1) * g.ci * h * w];
            simd::dense_row(level, self, xb, (h, w), oy, dst);
        });
        let mac = (lead * g.co * oh * ow * g.ci * g.kh * g.kw) as u64;
        (
            out,
            ConvCounts {
                mac,
                ..Default::default()
            },
        )
    }

    /// The part of output row `oy` whose taps all lie inside the `h x w` input: the kernel
    /// rows `ky0..ky1` that do (the others only meet zero padding, and adding `w * 0` to an
    /// accumulator that started at `+0` changes nothing, so they are skipped), and the output
    /// columns `ox_lo..ox_hi` all of whose kernel columns do. The columns outside take
    /// [`DenseConv::edge_pixel`].
    pub(crate) fn window(&self, (h, w): (usize, usize), oy: usize, ow: usize) -> Window {
        let g = &self.geo;
        let ([sy, sx], [py, px]) = (g.stride, g.padding);
        let top = oy * sy;
        let ky0 = py.saturating_sub(top).min(g.kh);
        let ky1 = (h + py).saturating_sub(top).min(g.kh).max(ky0);
        let ox_lo = px.div_ceil(sx).min(ow);
        let ox_hi = if w + px >= g.kw {
            ((w + px - g.kw) / sx + 1).min(ow).max(ox_lo)
        } else {
            ox_lo
        };
        Window {
            ky: (ky0, ky1),
            ox: (ox_lo, ox_hi),
        }
    }

    /// Output pixel `(oy, ox)`, all channels, into `out` (`[ow][cp]`), checking every tap
    /// against the input borders (for the few pixels outside [`DenseConv::window`]).
    #[inline(always)]
    pub(crate) fn edge_pixel(
        &self,
        xb: &[f32],
        (h, w): (usize, usize),
        oy: usize,
        ox: usize,
        out: &mut [f32],
    ) {
        let g = &self.geo;
        let ([sy, sx], [py, px]) = (g.stride, g.padding);
        let acc = &mut out[ox * g.cp..(ox + 1) * g.cp];
        acc.fill(0.0);
        for ky in 0..g.kh {
            let Some(iy) = (oy * sy + ky).checked_sub(py).filter(|&iy| iy < h) else {
                continue;
            };
            for kx in 0..g.kw {
                let Some(ix) = (ox * sx + kx).checked_sub(px).filter(|&ix| ix < w) else {
                    continue;
                };
                for i in 0..g.ci {
                    let xv = xb[(i * h + iy) * w + ix];
                    let wbase = ((ky * g.kw + kx) * g.ci + i) * g.cp;
                    for (a, &wv) in acc.iter_mut().zip(&self.wt[wbase..wbase + g.cp]) {
                        *a += wv * xv;
                    }
                }
            }
        }
    }

    /// Computes output row `oy` of one plane for output channels `[c0, c0 + 16 * nc)` and
    /// interior output columns `[ox0, ox0 + P)` (inside `win`) into the channel-last row
    /// `out` (`[ow][cp]`).
    #[inline(always)]
    pub(crate) fn tile<const P: usize, const NC: usize>(
        &self,
        xb: &[f32],
        (h, w): (usize, usize),
        win: &Window,
        oy: usize,
        ox0: usize,
        c0: usize,
        out: &mut [f32],
    ) {
        let g = &self.geo;
        let ([sy, sx], [py, px]) = (g.stride, g.padding);
        let mut acc = [[[0f32; LANES]; NC]; P];
        for ky in win.ky.0..win.ky.1 {
            let iy = oy * sy + ky - py;
            for kx in 0..g.kw {
                for i in 0..g.ci {
                    let row = &xb[(i * h + iy) * w..(i * h + iy + 1) * w];
                    let wbase = ((ky * g.kw + kx) * g.ci + i) * g.cp + c0;
                    let mut wv = [[0f32; LANES]; NC];
                    for (c, wc) in wv.iter_mut().enumerate() {
                        wc.copy_from_slice(&self.wt[wbase + c * LANES..wbase + (c + 1) * LANES]);
                    }
                    for (p, ap) in acc.iter_mut().enumerate() {
                        let xv = row[(ox0 + p) * sx + kx - px];
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

/// A convolution on real values (MAC path), computed with the algorithm its op carries.
#[derive(Clone, Debug)]
pub enum MacConv {
    Direct(DenseConv),
    Winograd(WinogradConv),
}

impl MacConv {
    pub fn new(c: &Conv2d) -> MacConv {
        match c.algorithm {
            ConvAlgorithm::Direct => MacConv::Direct(DenseConv::new(c)),
            ConvAlgorithm::Winograd2x2 => MacConv::Winograd(WinogradConv::new(c)),
        }
    }

    /// `x` is `[lead, ci, h, w]` flattened; writes `[lead, co, oh, ow]`.
    pub fn run(
        &self,
        x: &[f32],
        lead: usize,
        hw: (usize, usize),
        ohw: (usize, usize),
        level: Level,
    ) -> (Vec<f32>, ConvCounts) {
        match self {
            MacConv::Direct(c) => c.run(x, lead, hw, ohw, level),
            MacConv::Winograd(c) => c.run(x, lead, hw, level),
        }
    }
}

/// Weights of an event-driven convolution, in the gather layout ([`gather::layout`]).
#[derive(Clone, Debug)]
enum SpikeWeights {
    /// f32 weights.
    F32(Lines<f32>),
    /// f16 weights as exact i32 fixed point (x 2^24), when [`fits_i32`].
    Fixed32(Lines<i32>),
    /// f16 weights as exact i64 fixed point (x 2^24).
    Fixed(Lines<i64>),
}

/// The accumulator an event-driven convolution uses (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpikeAccumulator {
    /// f32 weights, f32 sums in the canonical order.
    F32,
    /// f16 weights, exact sums in i32 fixed point.
    FixedI32,
    /// f16 weights, exact sums in i64 fixed point.
    FixedI64,
}

/// Whether exact i32 accumulation of the fixed-point weights `fixed` (`[co, fan_in]` row-major,
/// each `w x 2^24`) can never overflow: for every output channel, the sum of the magnitudes of
/// all its weights — a bound on every partial sum of every spike pattern, since a spike
/// adds each weight at most once — is at most `i32::MAX`.
pub(crate) fn fits_i32(fixed: &[i64], co: usize) -> bool {
    let fan_in = fixed.len() / co.max(1);
    fixed.chunks(fan_in.max(1)).all(|row| {
        row.iter().map(|w| w.unsigned_abs() as u128).sum::<u128>() <= i32::MAX as u128
    })
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
                if fits_i32(&fixed, geo.co) {
                    // In range by `fits_i32` (each |w| is at most the row sum).
                    let narrow: Vec<i32> = fixed.iter().map(|&w| w as i32).collect();
                    SpikeWeights::Fixed32(gather::layout(&geo, &narrow))
                } else {
                    SpikeWeights::Fixed(gather::layout(&geo, &fixed))
                }
            }
            TensorData::F32(v) => SpikeWeights::F32(gather::layout(&geo, v)),
        };
        SpikeConv {
            geo,
            weights,
            bias: c.bias.as_ref().map(|b| b.to_f32().into_owned()),
        }
    }

    /// Whether this conv uses exact fixed-point accumulation (f16 weights).
    pub fn is_exact(&self) -> bool {
        self.accumulator() != SpikeAccumulator::F32
    }

    /// The accumulator this conv sums in.
    pub fn accumulator(&self) -> SpikeAccumulator {
        match self.weights {
            SpikeWeights::F32(_) => SpikeAccumulator::F32,
            SpikeWeights::Fixed32(_) => SpikeAccumulator::FixedI32,
            SpikeWeights::Fixed(_) => SpikeAccumulator::FixedI64,
        }
    }

    /// `x` is `[lead, ci, h, w]` of 0/1 spikes; writes `[lead, co, oh, ow]`: the spikes are
    /// packed into channel bitmaps, then every output row is gathered.
    pub fn run(
        &self,
        x: &[f32],
        lead: usize,
        hw: (usize, usize),
        ohw: (usize, usize),
        level: Level,
    ) -> (Vec<f32>, ConvCounts) {
        let masks = gather::pack(level, x, lead, &self.geo, hw);
        self.run_packed(&masks, lead, hw, ohw, level)
    }

    /// [`SpikeConv::run`] on spikes already packed for this convolution's geometry (by
    /// [`crate::ops::lif_packed`], or by `run`).
    pub fn run_packed(
        &self,
        masks: &gather::Masks,
        lead: usize,
        hw: (usize, usize),
        ohw: (usize, usize),
        level: Level,
    ) -> (Vec<f32>, ConvCounts) {
        let counts = gather::count(masks, &self.geo, hw, ohw);
        self.gather(masks, counts, lead, ohw, level)
    }

    fn gather(
        &self,
        masks: &gather::Masks,
        (spikes, taps): (u64, u64),
        lead: usize,
        (oh, ow): (usize, usize),
        level: Level,
    ) -> (Vec<f32>, ConvCounts) {
        let g = &self.geo;
        let mut out = crate::buffers::overwritten(lead * g.co * oh * ow);
        let bias = self.bias.as_deref();
        par_output_rows(&mut out, lead, g, (oh, ow), |b, oy, dst| match &self.weights {
            SpikeWeights::F32(wt) => gather::row(level, g, wt, bias, masks, b, oy, dst),
            SpikeWeights::Fixed32(wt) => gather::row(level, g, wt, bias, masks, b, oy, dst),
            SpikeWeights::Fixed(wt) => gather::row(level, g, wt, bias, masks, b, oy, dst),
        });
        (
            out,
            ConvCounts {
                spikes_in: spikes,
                ac: taps * g.co as u64,
                mac: 0,
            },
        )
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

#[cfg(test)]
mod tests {
    use super::*;
    use spikerc_compiler::interp::{conv2d, Array};
    use spikerc_compiler::Tensor;

    /// The i32 bound is on the sum of magnitudes per output channel, inclusive at `i32::MAX`.
    #[test]
    fn i32_fixed_point_bound() {
        let max = i32::MAX as i64;
        assert!(fits_i32(&[max - 5, -5, 7, 1], 2));
        assert!(!fits_i32(&[max - 5, -6, 7, 1], 2));
        assert!(!fits_i32(&[1, 2, max, 1], 2));
        assert!(fits_i32(&[-max, 0], 1));
        assert!(fits_i32(&[], 3));
    }

    /// Strides 1 and 2, 1x1 and 3x3, channel counts across word boundaries, several firing
    /// rates, f32 and f16 weights: the gather kernel gives the interpreter's bits at every
    /// instruction-set level, the f32 AC path equals the MAC path, and the AC count is the
    /// brute-force count of (active input, reached output) pairs times `co`.
    #[test]
    fn spike_kernels_match_the_interpreter_bit_for_bit() {
        let mut seed = 7u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % 100_000) as f32 / 100_000.0
        };
        let levels = Level::detect().and_below();
        for (ci, co, k, s, p) in [(5, 20, 3, 1, 1), (70, 33, 3, 2, 1), (6, 17, 1, 1, 0)] {
            let w: Vec<f32> = (0..co * ci * k * k).map(|_| rnd() - 0.5).collect();
            let b: Vec<f32> = (0..co).map(|_| rnd() * 0.1).collect();
            let conv = Conv2d {
                weight: Tensor::from_f32(vec![co, ci, k, k], w),
                bias: Some(Tensor::from_f32(vec![co], b)),
                stride: [s, s],
                padding: [p, p],
                event_driven: true,
                algorithm: Default::default(),
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
                let mut reached = 0u64;
                for b in 0..2 {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            for (ky, kx) in (0..k).flat_map(|a| (0..k).map(move |c| (a, c))) {
                                let (iy, ix) = (
                                    (oy * s + ky) as isize - p as isize,
                                    (ox * s + kx) as isize - p as isize,
                                );
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                for i in 0..ci {
                                    let v = x[((b * ci + i) * h + iy as usize) * wd + ix as usize];
                                    reached += (v != 0.0) as u64;
                                }
                            }
                        }
                    }
                }
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                for c in [&conv, &half] {
                    let oracle = conv2d(
                        &Array::new(vec![2, ci, h, wd], x.clone()),
                        c,
                        &[2, co, oh, ow],
                        false,
                    );
                    let sc = SpikeConv::new(c);
                    // Fan-in 45 and 6 with |w| <= 0.5 fit i32; fan-in 630 (mean |w| 0.25:
                    // sum ~157 > 128 = 2^31 / 2^24) needs i64: both fixed-point paths run.
                    let want = match (&c.weight.data, ci) {
                        (TensorData::F32(_), _) => SpikeAccumulator::F32,
                        (_, 70) => SpikeAccumulator::FixedI64,
                        _ => SpikeAccumulator::FixedI32,
                    };
                    assert_eq!(sc.accumulator(), want, "ci {ci}");
                    for &level in &levels {
                        let (a, ca) = sc.run(&x, 2, (h, wd), (oh, ow), level);
                        let what = format!(
                            "ci {ci} co {co} k {k} s {s} rate {rate} {level:?} {:?}",
                            sc.accumulator()
                        );
                        assert_eq!(bits(&a), bits(&oracle.data), "{what}");
                        assert_eq!(ca.ac, reached * co as u64, "{what}");
                        assert_eq!(ca.spikes_in, x.iter().filter(|v| **v != 0.0).count() as u64);
                        if !sc.is_exact() {
                            let dense = DenseConv::new(c).run(&x, 2, (h, wd), (oh, ow), level).0;
                            assert_eq!(bits(&a), bits(&dense), "{what}: AC path = MAC path");
                        }
                    }
                }
            }
        }
    }
}
