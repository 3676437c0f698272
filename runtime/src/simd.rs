//! Run-time selection of the instruction set for the hot kernels.
//!
//! The kernels are written once as plain, fixed-width lane loops that LLVM vectorises, and
//! instantiated inside `#[target_feature(enable = "avx2")]` and for the baseline target; the
//! hottest ones also have explicit AVX-512 versions (the dense tile here, the gather pass in
//! [`crate::gather`]). [`Level::detect`] picks one at run time, so the binary is portable
//! (never built with `target-cpu=native`) and still uses the widest vectors the machine has.
//! No variant uses fused multiply-add (Rust never contracts `a * b + c`), so all give
//! identical bits.

use crate::conv::{via_row_buffer, DenseConv, Window, LANES};
use crate::disjoint::ChannelRows;

/// `isa!(level, f(args))` calls `f(args)` compiled for `level` (AVX-512, AVX2 or the
/// baseline): `f` is `#[inline(always)]`, so each instantiation vectorises for its
/// instruction set. `isa!(level, unsafe f(args))` calls an unsafe `f` (the caller upholds its
/// contract).
macro_rules! isa {
    ($level:expr, unsafe $f:ident($($a:expr),*)) => {
        // SAFETY: `f`'s contract is upheld by the caller, who wrote `unsafe`.
        $crate::simd::isa!(@call $level, || unsafe { $f($($a),*) })
    };
    ($level:expr, $f:ident($($a:expr),*)) => {
        $crate::simd::isa!(@call $level, || $f($($a),*))
    };
    (@call $level:expr, $call:expr) => {{
        /// # Safety
        /// The CPU supports AVX-512F.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        /// # Safety
        /// The CPU supports AVX2.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // (Callers may already be inside an `unsafe` block.)
        #[allow(unused_unsafe)]
        let r = match $crate::simd::Level::isa($level) {
            // SAFETY: a `Level` of an ISA exists only when the CPU has it (`Level::detect`).
            #[cfg(target_arch = "x86_64")]
            $crate::simd::Isa::Avx512 => unsafe { avx512($call) },
            #[cfg(target_arch = "x86_64")]
            $crate::simd::Isa::Avx2 => unsafe { avx2($call) },
            _ => ($call)(),
        };
        r
    }};
}
pub(crate) use isa;

/// An instruction-set family the kernels are compiled for, in increasing order. A plain
/// description: only a [`Level`] (which proves the CPU has it) selects code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    Baseline,
    Avx2,
    Avx512,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512f",
            Isa::Avx2 => "avx2",
            Isa::Baseline => "baseline",
        }
    }

    /// Parses `baseline`, `avx2` or `avx512`/`avx512f` (the `SPIKERC_SIMD` values).
    pub fn parse(s: &str) -> Option<Isa> {
        match s.trim().to_ascii_lowercase().as_str() {
            "baseline" => Some(Isa::Baseline),
            "avx2" => Some(Isa::Avx2),
            "avx512" | "avx512f" => Some(Isa::Avx512),
            _ => None,
        }
    }
}

/// The instruction-set level the kernels use: a token that **proves** the running CPU
/// supports its [`Isa`]. Its field is private, so safe code obtains one only from
/// [`Level::detect`] (or [`Level::baseline`], always valid) and can only lower it
/// ([`Level::capped`]); the `#[target_feature]` kernels rely on this for soundness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Level(Isa);

impl Level {
    /// The best level this CPU supports, capped by the environment variable `SPIKERC_SIMD`
    /// (`baseline|avx2|avx512`; used for tests and for valgrind, which lacks AVX-512). The
    /// variable can only lower the level: naming an instruction set the CPU lacks, or an
    /// unknown value, leaves the detected one.
    pub fn detect() -> Level {
        let best = Level(Self::hardware());
        match std::env::var("SPIKERC_SIMD").ok().as_deref().and_then(Isa::parse) {
            Some(cap) => best.capped(cap),
            None => best,
        }
    }

    /// What the CPU supports (no cap).
    fn hardware() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") {
                return Isa::Avx2;
            }
        }
        Isa::Baseline
    }

    /// The portable level, valid on every CPU.
    pub fn baseline() -> Level {
        Level(Isa::Baseline)
    }

    /// This level lowered to at most `cap` (never raised: the result is still supported).
    pub fn capped(self, cap: Isa) -> Level {
        Level(self.0.min(cap))
    }

    /// This level and every lower one, highest first (for tests that all give the same bits).
    pub fn and_below(self) -> Vec<Level> {
        [Isa::Avx512, Isa::Avx2, Isa::Baseline]
            .into_iter()
            .filter(|&i| i <= self.0)
            .map(Level)
            .collect()
    }

    /// The instruction set this level selects.
    pub fn isa(self) -> Isa {
        self.0
    }

    pub fn name(self) -> &'static str {
        self.0.name()
    }
}

/// Sweeps output row `oy` of a dense convolution into `acc` (`[ow][cp]`), calling the tile
/// kernel `$tile::<P, NC>` (same signature as [`tile512`]): per channel block (its width and
/// tile size picked from the 16-lane chunks left by the `match` arms), interior tiles of `P`
/// pixels — the last one overlapping the one before it (same values) — then single pixels,
/// and finally the border pixels outside [`DenseConv::window`], checked tap by tap.
macro_rules! dense_sweep {
    ($tile:ident, $c:expr, $xb:expr, $hw:expr, $oy:expr, $ow:expr, $acc:expr,
     { $($rem:pat => ($p:literal, $nc:literal)),+ $(,)? }) => {{
        let (c, xb, hw, oy, ow, acc) = ($c, $xb, $hw, $oy, $ow, $acc);
        let win = c.window(hw, oy, ow);
        let (lo, hi) = win.ox;
        let nch = c.geo.cp / LANES;
        let mut ch = 0;
        while ch < nch {
            let c0 = ch * LANES;
            match nch - ch {
                $($rem => {
                    let mut ox = lo;
                    while ox + $p <= hi {
                        $tile::<$p, $nc>(c, xb, hw, &win, oy, ox, c0, acc);
                        ox += $p;
                    }
                    if ox < hi && hi - lo >= $p {
                        $tile::<$p, $nc>(c, xb, hw, &win, oy, hi - $p, c0, acc);
                        ox = hi;
                    }
                    while ox < hi {
                        $tile::<1, $nc>(c, xb, hw, &win, oy, ox, c0, acc);
                        ox += 1;
                    }
                    ch += $nc;
                })+
            }
        }
        for ox in (0..lo).chain(hi..ow) {
            c.edge_pixel(xb, hw, oy, ox, acc);
        }
    }};
}

/// [`DenseConv::tile`] with [`tile512`]'s signature, for [`dense_sweep`].
#[inline(always)]
fn tile_portable<const P: usize, const NC: usize>(
    c: &DenseConv,
    xb: &[f32],
    hw: (usize, usize),
    win: &Window,
    oy: usize,
    ox0: usize,
    c0: usize,
    out: &mut [f32],
) {
    c.tile::<P, NC>(xb, hw, win, oy, ox0, c0, out)
}

/// One output row of a dense convolution, all output channels, into `acc` (`[ow][cp]`).
#[inline(always)]
fn dense_row_body(
    c: &DenseConv,
    xb: &[f32],
    hw: (usize, usize),
    oy: usize,
    ow: usize,
    acc: &mut [f32],
) {
    dense_sweep!(tile_portable, c, xb, hw, oy, ow, acc, {
        1 => (8, 1),
        2 => (8, 2),
        3 => (6, 3),
        _ => (4, 4),
    });
}

/// One `P x (16 * NC)` register tile of a dense convolution with explicit AVX-512: the same
/// arithmetic as [`DenseConv::tile`] (multiply, then add, canonical order), with the
/// accumulators pinned in zmm registers.
///
/// # Safety
/// Called only from AVX-512F code (a `Level` of AVX-512 exists); the bounds it reads and
/// writes through raw pointers are asserted on entry.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile512<const P: usize, const NC: usize>(
    c: &DenseConv,
    xb: &[f32],
    (h, w): (usize, usize),
    win: &Window,
    oy: usize,
    ox0: usize,
    c0: usize,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    let g = &c.geo;
    let ([sy, sx], [py, px]) = (g.stride, g.padding);
    assert!(out.len() >= (ox0 + P) * g.cp && c0 + NC * LANES <= g.cp);
    assert!(ox0 >= win.ox.0 && ox0 + P <= win.ox.1 && xb.len() >= g.ci * h * w);
    let mut acc = [[_mm512_setzero_ps(); NC]; P];
    let wptr = c.wt.as_ptr();
    let xptr = xb.as_ptr();
    for ky in win.ky.0..win.ky.1 {
        let iy = oy * sy + ky - py;
        for kx in 0..g.kw {
            let wtap = wptr.add((ky * g.kw + kx) * g.ci * g.cp + c0);
            for i in 0..g.ci {
                // SAFETY: row iy < h (window rows) and columns (ox0 + p) * sx + kx - px in
                // 0..w for every pixel of the tile (window columns, asserted); weights padded.
                let row = xptr.add((i * h + iy) * w + ox0 * sx + kx - px);
                let wb = wtap.add(i * g.cp);
                let mut wv = [_mm512_setzero_ps(); NC];
                for (k, w) in wv.iter_mut().enumerate() {
                    *w = _mm512_loadu_ps(wb.add(k * LANES));
                }
                for (p, ap) in acc.iter_mut().enumerate() {
                    let xv = _mm512_set1_ps(*row.add(p * sx));
                    for k in 0..NC {
                        ap[k] = _mm512_add_ps(ap[k], _mm512_mul_ps(wv[k], xv));
                    }
                }
            }
        }
    }
    for (p, ap) in acc.iter().enumerate() {
        let dst = out.as_mut_ptr().add((ox0 + p) * g.cp + c0);
        for (k, v) in ap.iter().enumerate() {
            // SAFETY: ox0 + p < ow and c0 + 16 NC <= cp: inside `out` (`[ow][cp]`).
            _mm512_storeu_ps(dst.add(k * LANES), *v);
        }
    }
}

/// [`dense_row_body`] with [`tile512`].
///
/// # Safety
/// The CPU supports AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dense_row_avx512(
    c: &DenseConv,
    xb: &[f32],
    hw: (usize, usize),
    oy: usize,
    ow: usize,
    acc: &mut [f32],
) {
    dense_sweep!(tile512, c, xb, hw, oy, ow, acc, {
        1 => (12, 1),
        2 => (12, 2),
        4 => (6, 2),
        _ => (8, 3),
    });
}

/// Dispatches one dense output row `oy` (all `dst.len()` columns) to the kernel of `level`,
/// writing it into `dst` (one row per output channel).
pub fn dense_row(
    level: Level,
    c: &DenseConv,
    xb: &[f32],
    hw: (usize, usize),
    oy: usize,
    dst: &mut ChannelRows<'_>,
) {
    let ow = dst.len();
    via_row_buffer(level, &c.geo, c.bias.as_deref(), dst, |acc| {
        dense_acc_row(level, c, xb, hw, oy, ow, acc)
    });
}

/// Output row `oy` of a dense convolution (no bias) into the channel-last accumulators
/// `acc` (`[ow][cp]`, every element overwritten), with the kernel of `level`.
pub(crate) fn dense_acc_row(
    level: Level,
    c: &DenseConv,
    xb: &[f32],
    hw: (usize, usize),
    oy: usize,
    ow: usize,
    acc: &mut [f32],
) {
    match level.isa() {
        // SAFETY: a `Level` of AVX-512 exists only when the CPU has it.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { dense_row_avx512(c, xb, hw, oy, ow, acc) },
        _ => isa!(level, dense_row_body(c, xb, hw, oy, ow, acc)),
    }
}

/// Body of the peak-throughput probe: 12 independent `[f32; 16]` chains of `x = x * a + b`
/// (one multiply and one add per lane, the MAC kernel's instruction mix without FMA).
#[inline(always)]
fn peak_body(iters: u64, a: f32, b: f32) -> f32 {
    let mut acc = [[1.0f32; 16]; 12];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            for x in v.iter_mut() {
                *x = *x * a + b;
            }
        }
    }
    acc.iter().flatten().sum()
}

/// [`peak_body`] in explicit AVX-512.
///
/// # Safety
/// The CPU supports AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn peak_avx512(iters: u64, a: f32, b: f32) -> f32 {
    use std::arch::x86_64::*;
    let (va, vb) = (_mm512_set1_ps(a), _mm512_set1_ps(b));
    let mut acc = [_mm512_set1_ps(1.0); 12];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_add_ps(_mm512_mul_ps(*v, va), vb);
        }
    }
    let mut s = _mm512_setzero_ps();
    for v in acc {
        s = _mm512_add_ps(s, v);
    }
    _mm512_reduce_add_ps(s)
}

/// [`peak_body`] compiled for AVX2.
///
/// # Safety
/// The CPU supports AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn peak_avx2(iters: u64, a: f32, b: f32) -> f32 {
    peak_body(iters, a, b)
}

/// Measures this machine's peak rate of f32 multiply + add pairs (i.e. non-fused MACs) per
/// second on `threads` threads at `level`, running each thread for about `seconds`.
pub fn peak_mac_per_s(level: Level, threads: usize, seconds: f64) -> f64 {
    let run = |iters: u64| -> f32 {
        let (a, b) = (
            std::hint::black_box(0.999_f32),
            std::hint::black_box(0.001_f32),
        );
        match level.isa() {
            // SAFETY: a `Level` exists only for instruction sets the CPU has.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { peak_avx512(iters, a, b) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { peak_avx2(iters, a, b) },
            _ => peak_body(iters, a, b),
        }
    };
    // Calibrate the iteration count on one thread, then run all threads at once.
    let mut iters = 1u64 << 16;
    loop {
        let t = std::time::Instant::now();
        std::hint::black_box(run(iters));
        let el = t.elapsed().as_secs_f64();
        if el > 0.05 {
            iters = ((iters as f64) * seconds / el).max(1.0) as u64;
            break;
        }
        iters *= 4;
    }
    let t = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| std::hint::black_box(run(iters)));
        }
    });
    let el = t.elapsed().as_secs_f64();
    (iters as f64 * 12.0 * 16.0 * threads.max(1) as f64) / el
}

/// Writes the channel-last row `src` (`[n][cp]`, `cp` a multiple of 16) into the `co =
/// dst.channels()` rows of `dst` (`n = dst.len()`): `dst.row(o)[x] = src[x * cp + o]`, plus
/// `bias[o]` when given (one f32 add, as everywhere). Pure data movement apart from that add,
/// so every level gives the same bits; AVX-512 transposes 16 x 16 blocks in registers.
pub(crate) fn store_planes(
    level: Level,
    src: &[f32],
    cp: usize,
    dst: &mut ChannelRows<'_>,
    bias: Option<&[f32]>,
) {
    let (co, n) = (dst.channels(), dst.len());
    assert!(cp.is_multiple_of(LANES) && co <= cp && src.len() >= n * cp);
    assert!(bias.is_none_or(|b| b.len() >= co));
    let mut x0 = 0;
    #[cfg(target_arch = "x86_64")]
    if level.isa() == Isa::Avx512 {
        // SAFETY: a `Level` of AVX-512 exists only when the CPU has it; bounds asserted above.
        x0 = unsafe { store_planes512(src, cp, dst, bias) };
    }
    let _ = level;
    if x0 == n {
        return;
    }
    for o in 0..co {
        let row = &mut dst.row(o)[x0..n];
        let col = src[x0 * cp + o..].iter().step_by(cp);
        match bias {
            Some(bb) => row.iter_mut().zip(col).for_each(|(d, &s)| *d = s + bb[o]),
            None => row.iter_mut().zip(col).for_each(|(d, &s)| *d = s),
        }
    }
}

/// The 16-pixel blocks of [`store_planes`]; returns the first pixel it left to the caller.
///
/// # Safety
/// The CPU supports AVX-512F, `cp` is a multiple of 16, `dst.channels() <= cp`, `src` holds
/// `dst.len() * cp` elements and `bias` (when given) `dst.channels()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn store_planes512(
    src: &[f32],
    cp: usize,
    dst: &mut ChannelRows<'_>,
    bias: Option<&[f32]>,
) -> usize {
    use std::arch::x86_64::*;
    let (co, n) = (dst.channels(), dst.len());
    let blocks = n / LANES;
    for o0 in (0..co).step_by(LANES) {
        for xb in 0..blocks {
            let x0 = xb * LANES;
            // r[p] = channels o0..o0+16 of pixel x0 + p.
            let mut r: [__m512; 16] =
                std::array::from_fn(|p| _mm512_loadu_ps(src.as_ptr().add((x0 + p) * cp + o0)));
            // 16 x 16 transpose: 32-bit, 64-bit, then two 128-bit interleaving stages.
            let mut t = [_mm512_setzero_ps(); 16];
            for k in 0..8 {
                t[2 * k] = _mm512_unpacklo_ps(r[2 * k], r[2 * k + 1]);
                t[2 * k + 1] = _mm512_unpackhi_ps(r[2 * k], r[2 * k + 1]);
            }
            for k in 0..4 {
                for j in 0..2 {
                    let (a, b) = (
                        _mm512_castps_pd(t[4 * k + j]),
                        _mm512_castps_pd(t[4 * k + j + 2]),
                    );
                    r[4 * k + j] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
                    r[4 * k + j + 2] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
                }
            }
            for k in 0..2 {
                for j in 0..4 {
                    let (a, b) = (r[8 * k + j], r[8 * k + j + 4]);
                    t[8 * k + j] = _mm512_shuffle_f32x4::<0x88>(a, b);
                    t[8 * k + j + 4] = _mm512_shuffle_f32x4::<0xdd>(a, b);
                }
            }
            for j in 0..8 {
                let (a, b) = (t[j], t[j + 8]);
                r[j] = _mm512_shuffle_f32x4::<0x88>(a, b);
                r[j + 8] = _mm512_shuffle_f32x4::<0xdd>(a, b);
            }
            // r[q] now holds channel o0 + perm(q) for pixels x0..x0+16.
            for (q, v) in r.iter().enumerate() {
                let o = o0 + TRANSPOSE_ROW[q];
                if o < co {
                    let v = match bias {
                        Some(bb) => _mm512_add_ps(*v, _mm512_set1_ps(bb[o])),
                        None => *v,
                    };
                    // In bounds: x0 + 16 <= n = the row's length.
                    _mm512_storeu_ps(dst.row(o)[x0..x0 + LANES].as_mut_ptr(), v);
                }
            }
        }
    }
    blocks * LANES
}

/// Which channel of a block each register holds after [`store_planes512`]'s shuffles.
#[cfg(target_arch = "x86_64")]
const TRANSPOSE_ROW: [usize; 16] = [0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_planes_transposes_at_every_level() {
        for (n, co, cp) in [(37, 40, 48), (16, 16, 16), (5, 3, 16), (48, 96, 96)] {
            let src: Vec<f32> = (0..n * cp).map(|i| i as f32 * 0.5 - 3.0).collect();
            let bias: Vec<f32> = (0..co).map(|o| o as f32 * 0.25).collect();
            let stride = n + 7;
            for level in Level::detect().and_below() {
                for b in [None, Some(&bias[..])] {
                    let mut dst = vec![f32::NAN; co * stride];
                    let mut rows = ChannelRows::of_slice(&mut dst, co, n, stride);
                    store_planes(level, &src, cp, &mut rows, b);
                    for o in 0..co {
                        for x in 0..stride {
                            let got = dst[o * stride + x];
                            if x < n {
                                let want = src[x * cp + o] + b.map_or(0.0, |bb| bb[o]);
                                assert_eq!(got, want, "{level:?} n={n} co={co} o={o} x={x}");
                            } else {
                                assert!(got.is_nan(), "wrote past the row");
                            }
                        }
                    }
                }
            }
        }
    }
}
