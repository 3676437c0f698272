//! The gather AC kernel: f32 convolutions on spike input, work proportional to the spikes.
//!
//! The spike input is first packed into per-pixel channel bitmaps (`u64` words, bit `i % 64`
//! of word `i / 64` set when input channel `i` fired), zero-padded like the input. An output
//! pixel visits its `kh x kw` taps in order; at each tap it walks the set bits of the source
//! pixel's bitmap in ascending channel order and adds the weight vector
//! `W[ky][kx][ci][c0..c0 + 16 * NC]` into its accumulators. That visits the active inputs of
//! every output exactly in the canonical order kernel row -> kernel column -> input channel, so
//! the f32 sum equals the interpreter's (skipped zero inputs add `w * 0 = 0` to an accumulator
//! that started at `+0`, which changes nothing) — for every firing rate, with no dense fallback.
//!
//! **Tap-outer blocking** makes it fast: the weight rows a pixel reads are random (whichever
//! channels fired), so they must come from L1. A block of output pixels is swept tap by tap —
//! each pixel's accumulators loaded from an L1-sized channel-last buffer, the tap's active
//! channels added, stored back — and the channel block is narrowed until one tap's slice of
//! the weights fits [`TAP_BYTES`]. Buffers are cache-line aligned ([`crate::conv::Lines`]) so
//! no vector load straddles two lines. (Measured on the paper layers: tap-outer ~1.7x faster
//! than keeping a pixel's accumulators in registers across all taps; walking several pixels in
//! lock step to break the add-latency chain gained nothing.)
//!
//! Weights are laid out tap-major `[ky][kx][ci][cp]`. The accumulators of one output row are
//! transposed into the `[co, oh, ow]` planes at the end, adding the bias last.

use rayon::prelude::*;

use crate::conv::{reach, via_row_buffer, Geometry, LANES};
use crate::simd::Level;

/// Most 16-lane accumulators one pass keeps per pixel.
const MAX_NC: usize = 12;
/// Target size of one tap's weight slice for one channel block (L1 is 32-48 KiB).
const TAP_BYTES: usize = 64 * 1024;
/// Target size of the accumulator block swept tap by tap.
const BLOCK_BYTES: usize = 16 * 1024;

/// Weights `[co, ci, kh, kw]` laid out for the gather kernel: tap-major `[ky][kx][ci][cp]`.
pub(crate) fn layout(g: &Geometry, w: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0; g.kh * g.kw * g.ci * g.cp];
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

/// A spike input packed as zero-padded per-pixel channel bitmaps.
pub(crate) struct Masks {
    /// `[lead][hp][wp][words]`.
    pub data: Vec<u64>,
    pub words: usize,
    pub hp: usize,
    pub wp: usize,
    /// Spikes in the input.
    pub spikes: u64,
    /// Sum over spikes of the outputs (per output channel) each reaches: the AC count / `co`.
    pub taps: u64,
}

/// Packs `x` (`[lead, ci, h, w]` of 0/1) into [`Masks`], counting spikes and reached taps in
/// the same pass (parallel over padded rows; the counts are integer sums, order-free).
pub(crate) fn pack(
    x: &[f32],
    lead: usize,
    g: &Geometry,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
) -> Masks {
    let [py, px] = g.padding;
    let (hp, wp) = (h + 2 * py, w + 2 * px);
    let nw = g.ci.div_ceil(64);
    let ry: Vec<u64> = (0..h)
        .map(|i| reach(i, oh, g.kh, g.stride[0], py))
        .collect();
    let rx: Vec<u64> = (0..w)
        .map(|i| reach(i, ow, g.kw, g.stride[1], px))
        .collect();
    let mut data = vec![0u64; lead * hp * wp * nw];
    let (spikes, taps) = data
        .par_chunks_mut(wp * nw)
        .enumerate()
        .map(|(r, row)| {
            let (b, yp) = (r / hp, r % hp);
            if yp < py || yp >= py + h {
                return (0, 0);
            }
            let y = yp - py;
            let dst = &mut row[px * nw..(px + w) * nw];
            for i in 0..g.ci {
                let src = &x[((b * g.ci + i) * h + y) * w..((b * g.ci + i) * h + y + 1) * w];
                let (word, bit) = (i / 64, i % 64);
                for (d, &v) in dst.chunks_exact_mut(nw).zip(src) {
                    d[word] |= ((v != 0.0) as u64) << bit;
                }
            }
            let (mut s, mut t) = (0u64, 0u64);
            for (d, &r) in dst.chunks_exact(nw).zip(&rx) {
                let c: u64 = d.iter().map(|m| m.count_ones() as u64).sum();
                s += c;
                t += c * r;
            }
            (s, t * ry[y])
        })
        .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    Masks {
        data,
        words: nw,
        hp,
        wp,
        spikes,
        taps,
    }
}

/// Accumulators per pixel in one pass over `ci` input channels (a tap's slice of the weights
/// fits [`TAP_BYTES`]), and the balanced pass width for `nch` 16-lane chunks.
fn pass_width(ci: usize, nch: usize) -> usize {
    let fit = (TAP_BYTES / (ci * LANES * 4).max(1)).clamp(1, MAX_NC);
    nch.div_ceil(nch.div_ceil(fit))
}

/// Output row `oy` of plane `b` of a gather convolution with weights `wt` in the [`layout`]
/// order, all output channels, written into `ob` (`[co, oh, ow]` of plane `b`).
pub(crate) fn row(
    level: Level,
    g: &Geometry,
    wt: &[f32],
    bias: Option<&[f32]>,
    m: &Masks,
    b: usize,
    oy: usize,
    (oh, ow): (usize, usize),
    ob: &mut [f32],
) {
    let plane = m.hp * m.wp * m.words;
    let mp = &m.data[b * plane..(b + 1) * plane];
    assert!((oy * g.stride[0] + g.kh) <= m.hp && ((ow - 1) * g.stride[1] + g.kw) <= m.wp);
    assert!(wt.len() == g.kh * g.kw * g.ci * g.cp && g.ci <= m.words * 64);
    via_row_buffer(g, bias, oy, (oh, ow), ob, |acc| {
        let nch = g.cp / LANES;
        let per = pass_width(g.ci, nch);
        let mut ch = 0;
        while ch < nch {
            let n = per.min(nch - ch);
            let c0 = ch * LANES;
            macro_rules! pass {
                ($($nc:literal)*) => {
                    match n {
                        $($nc => dispatch::<$nc>(level, g, wt, mp, (m.wp, m.words), oy, ow, c0, acc),)*
                        _ => unreachable!("at most {MAX_NC} accumulators per pass"),
                    }
                };
            }
            pass!(1 2 3 4 5 6 7 8 9 10 11 12);
            ch += n;
        }
    });
}

/// Runs the `NC`-accumulator pass over one row with the kernel of `level`.
#[inline(always)]
fn dispatch<const NC: usize>(
    level: Level,
    g: &Geometry,
    wt: &[f32],
    mp: &[u64],
    wn: (usize, usize),
    oy: usize,
    ow: usize,
    c0: usize,
    acc: &mut [f32],
) {
    match level {
        // SAFETY: `Level::detect` only returns these levels when the CPU has the feature; the
        // geometry was checked by `row`.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { pass_avx512::<NC>(g, wt, mp, wn, oy, ow, c0, acc) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { pass_avx2::<NC>(g, wt, mp, wn, oy, ow, c0, acc) },
        _ => pass_portable::<NC>(g, wt, mp, wn, oy, ow, c0, acc),
    }
}

/// The portable pass, one pixel at a time with `[f32; 16]` lane arrays that LLVM vectorises.
#[inline(always)]
fn pass_portable<const NC: usize>(
    g: &Geometry,
    wt: &[f32],
    mp: &[u64],
    (wp, nw): (usize, usize),
    oy: usize,
    ow: usize,
    c0: usize,
    out: &mut [f32],
) {
    let [sy, sx] = g.stride;
    for ox in 0..ow {
        let mut acc = [[0f32; LANES]; NC];
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
                        let w0 = (tap + i) * g.cp + c0;
                        let wv = &wt[w0..w0 + NC * LANES];
                        for (k, a) in acc.iter_mut().enumerate() {
                            for l in 0..LANES {
                                a[l] += wv[k * LANES + l];
                            }
                        }
                    }
                }
            }
        }
        let dst = &mut out[ox * g.cp + c0..ox * g.cp + c0 + NC * LANES];
        for (k, a) in acc.iter().enumerate() {
            dst[k * LANES..(k + 1) * LANES].copy_from_slice(a);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn pass_avx2<const NC: usize>(
    g: &Geometry,
    wt: &[f32],
    mp: &[u64],
    wn: (usize, usize),
    oy: usize,
    ow: usize,
    c0: usize,
    out: &mut [f32],
) {
    pass_portable::<NC>(g, wt, mp, wn, oy, ow, c0, out)
}

/// The AVX-512 pass: blocks of output pixels swept tap by tap (so one tap's weight slice
/// stays in L1); per pixel and tap, `NC` zmm accumulators loaded from `out` (`[ow][cp]`, zero
/// at the start), one `vaddps` with a memory operand per active channel and accumulator, and
/// stored back.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pass_avx512<const NC: usize>(
    g: &Geometry,
    wt: &[f32],
    mp: &[u64],
    (wp, nw): (usize, usize),
    oy: usize,
    ow: usize,
    c0: usize,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    let [sy, sx] = g.stride;
    let cp = g.cp;
    assert!(out.len() >= ow * cp && c0 + NC * LANES <= cp);
    assert!(wt.len() >= g.kh * g.kw * g.ci * cp);
    assert!(mp.len() >= ((oy * sy + g.kh - 1) * wp + (ow - 1) * sx + g.kw) * nw);
    let block = (BLOCK_BYTES / (NC * LANES * 4)).max(1);
    let (wptr, mptr, optr) = (wt.as_ptr().add(c0), mp.as_ptr(), out.as_mut_ptr().add(c0));
    let mut x0 = 0;
    while x0 < ow {
        let x1 = (x0 + block).min(ow);
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let wtap = wptr.add((ky * g.kw + kx) * g.ci * cp);
                for ox in x0..x1 {
                    // SAFETY (all pointer accesses): accumulators of pixel ox < ow, lanes
                    // c0 .. c0 + 16 NC <= cp, inside `out`; this tap's mask words inside the
                    // padded plane; weight rows `tap * ci + i` with i < ci inside `wt`
                    // (asserted above).
                    let o = optr.add(ox * cp);
                    let mut acc = [_mm512_setzero_ps(); NC];
                    for (k, a) in acc.iter_mut().enumerate() {
                        *a = _mm512_loadu_ps(o.add(k * LANES));
                    }
                    let mq = mptr.add(((oy * sy + ky) * wp + ox * sx + kx) * nw);
                    for word in 0..nw {
                        let mut bits = *mq.add(word);
                        let wword = wtap.add(word * 64 * cp);
                        while bits != 0 {
                            let wv = wword.add(bits.trailing_zeros() as usize * cp);
                            bits &= bits - 1;
                            for (k, a) in acc.iter_mut().enumerate() {
                                *a = _mm512_add_ps(*a, _mm512_loadu_ps(wv.add(k * LANES)));
                            }
                        }
                    }
                    for (k, a) in acc.iter().enumerate() {
                        _mm512_storeu_ps(o.add(k * LANES), *a);
                    }
                }
            }
        }
        x0 = x1;
    }
}
