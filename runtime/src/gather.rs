//! The gather AC kernel: convolutions on spike input, work proportional to the spikes.
//!
//! The spike input is first packed into per-pixel channel bitmaps (`u64` words, bit `i % 64`
//! of word `i / 64` set when input channel `i` fired), zero-padded like the input. An output
//! pixel visits its `kh x kw` taps in order; at each tap it walks the set bits of the source
//! pixel's bitmap in ascending channel order and adds the weight vector
//! `W[ky][kx][ci][c0..]` into its accumulators. That visits the active inputs of every output
//! exactly in the canonical order kernel row -> kernel column -> input channel, so an f32 sum
//! equals the interpreter's (skipped zero inputs add `w * 0 = 0` to an accumulator that started
//! at `+0`, which changes nothing) — for every firing rate, with no dense fallback. With f16
//! weights the accumulators are i32 or i64 fixed point ([`crate::conv::FIX_SCALE`], i32 when
//! no partial sum can overflow it): exact, so equal to the interpreter's exact sum in any order.
//!
//! **Tap-outer blocking** makes it fast: the weight rows a pixel reads are random (whichever
//! channels fired), so they must come from L1. A block of output pixels is swept tap by tap —
//! each pixel's accumulators loaded from an L1-sized channel-last buffer, the tap's active
//! channels added, stored back — and the channel block is narrowed (to no fewer than 4
//! registers) until one tap's slice of the weights fits [`TAP_BYTES`]. Buffers are cache-line aligned ([`Lines`]) so no vector load
//! straddles two lines. (Measured on the paper layers: tap-outer ~1.7x faster than keeping a
//! pixel's accumulators in registers across all taps; walking several pixels in lock step to
//! break the add-latency chain gained nothing; alignment gained ~1.4x.)
//!
//! Weights are laid out tap-major `[ky][kx][ci][cp]`. The accumulators of one output row are
//! transposed into the `[co, oh, ow]` planes at the end, adding the bias last.

use rayon::prelude::*;

use crate::conv::{reach, via_row_buffer, Acc, Geometry, Lines};
use crate::disjoint::ChannelRows;
use crate::simd::{isa, Isa, Level};

/// Most zmm accumulators one pass keeps per pixel.
const MAX_ZMM: usize = 12;
/// Target size of one tap's weight slice for one channel block (measured best with a 48 KiB
/// L1 and a 1 MiB L2: the slice mostly stays in L1, the rest streams from L2).
const TAP_BYTES: usize = 64 * 1024;
/// Target size of the accumulator block swept tap by tap.
const BLOCK_BYTES: usize = 16 * 1024;

/// Weights `[co, ci, kh, kw]` laid out for the gather kernel: tap-major `[ky][kx][ci][cp]`,
/// cache-line aligned.
pub(crate) fn layout<T: Acc>(g: &Geometry, w: &[T]) -> Lines<T> {
    let mut out = Lines::zeroed(g.kh * g.kw * g.ci * g.cp);
    for o in 0..g.co {
        for i in 0..g.ci {
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let row = (ky * g.kw + kx) * g.ci + i;
                    out[row * g.cp + o] = w[((o * g.ci + i) * g.kh + ky) * g.kw + kx];
                }
            }
        }
    }
    out
}

/// A spike input packed as zero-padded per-pixel channel bitmaps (made by [`pack`] from 0/1
/// planes, or directly by a LIF whose only consumer is a spike convolution).
#[derive(Debug)]
pub struct Masks {
    /// `[lead][hp][wp][words]`.
    pub(crate) data: Vec<u64>,
    pub(crate) words: usize,
    pub(crate) hp: usize,
    pub(crate) wp: usize,
}

/// Spikes in `m` and the sum over spikes of the outputs (per output channel) each reaches,
/// i.e. the AC count / `co`, for a convolution of geometry `g` from `(h, w)` to `(oh, ow)`.
pub(crate) fn count(
    m: &Masks,
    g: &Geometry,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
) -> (u64, u64) {
    let [py, px] = g.padding;
    let nw = m.words;
    let ry: Vec<u64> = (0..h)
        .map(|i| reach(i, oh, g.kh, g.stride[0], py))
        .collect();
    let rx: Vec<u64> = (0..w)
        .map(|i| reach(i, ow, g.kw, g.stride[1], px))
        .collect();
    m.data
        .par_chunks(m.wp * nw)
        .enumerate()
        .map(|(r, row)| {
            let yp = r % m.hp;
            if yp < py || yp >= py + h {
                return (0, 0);
            }
            let (mut s, mut t) = (0u64, 0u64);
            for (d, &r) in row[px * nw..(px + w) * nw].chunks_exact(nw).zip(&rx) {
                let c: u64 = d.iter().map(|m| m.count_ones() as u64).sum();
                s += c;
                t += c * r;
            }
            (s, t * ry[yp - py])
        })
        .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// Packs `x` (`[lead, ci, h, w]` of 0/1) into [`Masks`] for a convolution of geometry `g`
/// (parallel over padded rows).
pub(crate) fn pack(
    level: Level,
    x: &[f32],
    lead: usize,
    g: &Geometry,
    (h, w): (usize, usize),
) -> Masks {
    let [py, px] = g.padding;
    let (hp, wp) = (h + 2 * py, w + 2 * px);
    let nw = g.ci.div_ceil(64);
    let mut data = vec![0u64; lead * hp * wp * nw];
    data.par_chunks_mut(wp * nw)
        .enumerate()
        .for_each(|(r, row)| {
            let (b, yp) = (r / hp, r % hp);
            if yp < py || yp >= py + h {
                return;
            }
            let dst = &mut row[px * nw..(px + w) * nw];
            let planes = &x[b * g.ci * h * w..(b + 1) * g.ci * h * w];
            pack_row(level, planes, g.ci, (h, w), yp - py, nw, dst);
        });
    Masks {
        data,
        words: nw,
        hp,
        wp,
    }
}

/// ORs the channel bits of input row `y` (`planes` = `[ci, h, w]`) into `dst` (`[w][nw]`),
/// compiled for the widest instruction set (the loop vectorises).
fn pack_row(
    level: Level,
    planes: &[f32],
    ci: usize,
    (h, w): (usize, usize),
    y: usize,
    nw: usize,
    dst: &mut [u64],
) {
    #[inline(always)]
    fn body(p: &[f32], ci: usize, (h, w): (usize, usize), y: usize, nw: usize, dst: &mut [u64]) {
        for i in 0..ci {
            let src = &p[(i * h + y) * w..(i * h + y + 1) * w];
            let (word, bit) = (i / 64, i % 64);
            if nw == 1 {
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d |= ((v != 0.0) as u64) << bit;
                }
            } else {
                for (d, &v) in dst.chunks_exact_mut(nw).zip(src) {
                    d[word] |= ((v != 0.0) as u64) << bit;
                }
            }
        }
    }
    isa!(level, body(planes, ci, (h, w), y, nw, dst))
}

/// zmm accumulators per pixel in one pass over `ci` input channels (a tap's slice of the
/// weights fits [`TAP_BYTES`]), balanced over the `nz` registers a row of `cp` lanes needs.
fn pass_width(ci: usize, nz: usize) -> usize {
    // At least 4 registers even when a tap's slice then spills to L2 (384-channel layers):
    // below that the bit walk, repeated per pass, costs more than the misses (measured).
    let fit = (TAP_BYTES / (ci * 64).max(1)).clamp(4, MAX_ZMM);
    nz.div_ceil(nz.div_ceil(fit))
}

/// Output row `oy` of plane `b` of a gather convolution with weights `wt` in the [`layout`]
/// order, all output channels, all `ow = dst.len()` columns, written into `dst` (that row of
/// every output channel).
pub(crate) fn row<T: Acc>(
    level: Level,
    g: &Geometry,
    wt: &[T],
    bias: Option<&[f32]>,
    m: &Masks,
    b: usize,
    oy: usize,
    dst: &mut ChannelRows<'_>,
) {
    let ow = dst.len();
    let plane = m.hp * m.wp * m.words;
    let mp = &m.data[b * plane..(b + 1) * plane];
    assert!((oy * g.stride[0] + g.kh) <= m.hp && ((ow - 1) * g.stride[1] + g.kw) <= m.wp);
    assert!(wt.len() == g.kh * g.kw * g.ci * g.cp && g.ci <= m.words * 64);
    via_row_buffer::<T>(level, g, bias, dst, |acc| {
        if level.isa() != Isa::Avx512 {
            return pass_portable(level, g, wt, mp, (m.wp, m.words), oy, ow, acc);
        }
        let nz = g.cp / T::PER_ZMM;
        let per = pass_width(g.ci, nz);
        let mut z = 0;
        while z < nz {
            let n = per.min(nz - z);
            let c0 = z * T::PER_ZMM;
            macro_rules! pass {
                ($($nz:literal)*) => {
                    match n {
                        // SAFETY: AVX-512 was detected; `row` checked the geometry, and
                        // c0 + n * PER_ZMM <= cp.
                        $($nz => unsafe {
                            T::pass512::<$nz>(g, wt, mp, (m.wp, m.words), oy, ow, c0, acc)
                        },)*
                        _ => unreachable!("at most {MAX_ZMM} accumulators per pass"),
                    }
                };
            }
            pass!(1 2 3 4 5 6 7 8 9 10 11 12);
            z += n;
        }
    });
}

/// The portable pass (AVX2 or baseline): one pixel at a time, all channels, accumulating in
/// the row buffer with plain loops that LLVM vectorises.
fn pass_portable<T: Acc>(
    level: Level,
    g: &Geometry,
    wt: &[T],
    mp: &[u64],
    wn: (usize, usize),
    oy: usize,
    ow: usize,
    out: &mut [T],
) {
    #[inline(always)]
    fn body<T: Acc>(
        g: &Geometry,
        wt: &[T],
        mp: &[u64],
        (wp, nw): (usize, usize),
        oy: usize,
        ow: usize,
        out: &mut [T],
    ) {
        let [sy, sx] = g.stride;
        let cp = g.cp;
        for ox in 0..ow {
            let acc = &mut out[ox * cp..(ox + 1) * cp];
            let base = (oy * sy * wp + ox * sx) * nw;
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    let tap = (ky * g.kw + kx) * g.ci;
                    let mq = &mp[base + (ky * wp + kx) * nw..base + (ky * wp + kx + 1) * nw];
                    for (word, &bits) in mq.iter().enumerate() {
                        let mut bits = bits;
                        while bits != 0 {
                            let i = word * 64 + bits.trailing_zeros() as usize;
                            bits &= bits - 1;
                            let wv = &wt[(tap + i) * cp..(tap + i + 1) * cp];
                            for (a, &w) in acc.iter_mut().zip(wv) {
                                *a += w;
                            }
                        }
                    }
                }
            }
        }
    }
    isa!(level, body(g, wt, mp, wn, oy, ow, out))
}

/// The AVX-512 pass for one accumulator type: blocks of output pixels swept tap by tap (so
/// one tap's weight slice stays in L1); per pixel and tap, `NZ` zmm accumulators loaded from
/// `out` (`[ow][cp]`, zero at the start), one vector add with a memory operand per active
/// channel and register, stored back.
macro_rules! pass512 {
    ($name:ident, $t:ty, $v:ty, $load:ident, $add:ident, $store:ident, $zero:ident) => {
        /// # Safety
        /// The CPU must support AVX-512F, the geometry must be the one [`row`] checks, and
        /// `c0 + NZ * PER_ZMM <= cp`.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        pub(crate) unsafe fn $name<const NZ: usize>(
            g: &Geometry,
            wt: &[$t],
            mp: &[u64],
            (wp, nw): (usize, usize),
            oy: usize,
            ow: usize,
            c0: usize,
            out: &mut [$t],
        ) {
            use std::arch::x86_64::*;
            const PER: usize = 64 / std::mem::size_of::<$t>();
            let [sy, sx] = g.stride;
            let cp = g.cp;
            assert!(out.len() >= ow * cp && c0 + NZ * PER <= cp);
            assert!(wt.len() >= g.kh * g.kw * g.ci * cp);
            assert!(mp.len() >= ((oy * sy + g.kh - 1) * wp + (ow - 1) * sx + g.kw) * nw);
            let block = (BLOCK_BYTES / (NZ * 64)).max(1);
            let (wptr, mptr, optr) = (wt.as_ptr().add(c0), mp.as_ptr(), out.as_mut_ptr().add(c0));
            let mut x0 = 0;
            while x0 < ow {
                let x1 = (x0 + block).min(ow);
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let wtap = wptr.add((ky * g.kw + kx) * g.ci * cp);
                        for ox in x0..x1 {
                            // SAFETY (all pointer accesses): accumulators of pixel ox < ow,
                            // lanes c0 .. c0 + NZ * PER <= cp, inside `out`; this tap's mask
                            // words inside the padded plane; weight rows `tap * ci + i` with
                            // i < ci inside `wt` (asserted above).
                            let o = optr.add(ox * cp);
                            let mut acc = [$zero(); NZ];
                            for (k, a) in acc.iter_mut().enumerate() {
                                *a = $load(o.add(k * PER) as *const _);
                            }
                            let mq = mptr.add(((oy * sy + ky) * wp + ox * sx + kx) * nw);
                            for word in 0..nw {
                                let mut bits = *mq.add(word);
                                let wword = wtap.add(word * 64 * cp);
                                // Two active channels per iteration (half the branches),
                                // added in ascending order.
                                while bits != 0 {
                                    let w0 = wword.add(bits.trailing_zeros() as usize * cp);
                                    bits &= bits - 1;
                                    if bits == 0 {
                                        for (k, a) in acc.iter_mut().enumerate() {
                                            *a = $add(*a, $load(w0.add(k * PER) as *const _));
                                        }
                                        break;
                                    }
                                    let w1 = wword.add(bits.trailing_zeros() as usize * cp);
                                    bits &= bits - 1;
                                    for (k, a) in acc.iter_mut().enumerate() {
                                        *a = $add(*a, $load(w0.add(k * PER) as *const _));
                                        *a = $add(*a, $load(w1.add(k * PER) as *const _));
                                    }
                                }
                            }
                            for (k, a) in acc.iter().enumerate() {
                                $store(o.add(k * PER) as *mut _, *a);
                            }
                        }
                    }
                }
                x0 = x1;
            }
        }
    };
}

pass512!(
    pass512_f32,
    f32,
    __m512,
    _mm512_loadu_ps,
    _mm512_add_ps,
    _mm512_storeu_ps,
    _mm512_setzero_ps
);
pass512!(
    pass512_i32,
    i32,
    __m512i,
    _mm512_loadu_si512,
    _mm512_add_epi32,
    _mm512_storeu_si512,
    _mm512_setzero_si512
);
pass512!(
    pass512_i64,
    i64,
    __m512i,
    _mm512_loadu_si512,
    _mm512_add_epi64,
    _mm512_storeu_si512,
    _mm512_setzero_si512
);
