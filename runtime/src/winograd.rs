//! Winograd F(2x2, 3x3) on the MAC path: real-valued 3x3 convolutions marked
//! [`ConvAlgorithm::Winograd2x2`](spikerc_compiler::ir::ConvAlgorithm) by the compiler.
//!
//! The arithmetic is the contract of [`spikerc_compiler::winograd`] (the interpreter's
//! definition), computed fast: a task takes one row of 2x2 output tiles of one plane, a chunk
//! of [`WinogradConv::chunk`] tiles wide, and
//!
//! 1. transforms the input: per input channel, the row pass `B^T d` once per input column
//!    (shared by neighbouring tiles, contiguous and vectorised), then the column pass per tile,
//!    into 16 position planes `V[p]` (`[ci][tiles]`);
//! 2. runs 16 pointwise convolutions — `M[p] = U[p] V[p]`, summed over input channels in
//!    order — with the dense MAC kernel itself ([`crate::simd::dense_acc_row`] on a 1 x tiles
//!    "image"; the kernels exist once), into channel-last accumulators;
//! 3. applies the output transform across channels (vectorised), adds the bias and writes the
//!    in-image outputs.
//!
//! Every output element is written by exactly one task, so the result does not depend on the
//! thread count.

use spikerc_compiler::ir::Conv2d;
use spikerc_compiler::winograd::{self, in_1d, out_1d, POSITIONS, TILE};
use std::cell::RefCell;

use crate::conv::{ConvCounts, DenseConv, Geometry, Lines};
use crate::disjoint::{par_regions, Region};
use crate::simd::{dense_acc_row, isa, store_planes, Isa, Level};

/// A 3x3, stride-1, padding-1 convolution by Winograd F(2x2, 3x3).
#[derive(Clone, Debug)]
pub struct WinogradConv {
    /// The 3x3 convolution's geometry.
    pub geo: Geometry,
    /// `U[p]` for each transform position `p`, as a pointwise (1x1) convolution `ci -> co`.
    positions: Vec<DenseConv>,
    bias: Option<Vec<f32>>,
}

/// Per-thread scratch of one task: `V` (`[16][ci][n]`), the row pass (`[4][2][n + 1]`), the
/// accumulators `M` (`[16][n][cp]`), the output tiles (`[2][2n][cp]`) and a row of zeros
/// (the input rows above and below the image).
#[derive(Default)]
struct Scratch {
    v: Vec<f32>,
    rows: Vec<f32>,
    m: Option<Lines<f32>>,
    y: Vec<f32>,
    zeros: Vec<f32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Most tiles per task.
const MAX_CHUNK: usize = 256;

impl WinogradConv {
    pub fn new(c: &Conv2d) -> WinogradConv {
        assert!(
            c.winograd_eligible(),
            "verified: 3x3, stride 1, padding 1, real input"
        );
        let geo = Geometry::of(c);
        let u = winograd::transform_weights(&c.weight.to_f32(), geo.co, geo.ci);
        let per = geo.co * geo.ci;
        let positions = (0..POSITIONS)
            .map(|p| DenseConv::pointwise(geo.ci, geo.co, &u[p * per..(p + 1) * per]))
            .collect();
        WinogradConv {
            geo,
            positions,
            bias: c.bias.as_ref().map(|b| b.to_f32().into_owned()),
        }
    }

    /// Tiles per task: enough for the MAC kernel's register tiles, few enough that a task's
    /// `V` and `M` (16 positions each) stay in the L2 cache.
    fn chunk(&self, tiles: usize) -> usize {
        let g = &self.geo;
        let fit = (8192 / (g.ci + g.cp).max(1)).clamp(16, MAX_CHUNK);
        tiles.div_ceil(tiles.div_ceil(fit).max(1))
    }

    /// Bytes of one thread's [`Scratch`] for images `w` wide (for the memory estimate).
    pub(crate) fn scratch_bytes(&self, w: usize) -> u64 {
        let (ci, cp, n) = (self.geo.ci, self.geo.cp, self.chunk(w.div_ceil(TILE)));
        (4 * (POSITIONS * ci * n + 8 * (n + 1) + POSITIONS * n * cp + 4 * n * cp + w)) as u64
    }

    /// `x` is `[lead, ci, h, w]` flattened; writes `[lead, co, h, w]`.
    pub fn run(
        &self,
        x: &[f32],
        lead: usize,
        (h, w): (usize, usize),
        level: Level,
    ) -> (Vec<f32>, ConvCounts) {
        let g = &self.geo;
        let tw = w.div_ceil(TILE);
        let n = self.chunk(tw).max(1);
        let mut out = crate::buffers::overwritten(lead * g.co * h * w);
        // Cells of 2 rows x 2n columns: one tile row of one chunk of n tiles (the last ones
        // clipped to the image).
        par_regions(&mut out, lead, g.co, (h, w), (TILE, TILE * n), |cell| {
            let b = cell.plane();
            let (ty, tx0) = (cell.rows().start / TILE, cell.col0() / TILE);
            let n = n.min(tw - tx0);
            let xb = &x[b * g.ci * h * w..(b + 1) * g.ci * h * w];
            SCRATCH.with(|s| self.task(&mut s.borrow_mut(), xb, (h, w), ty, tx0, n, level, cell));
        });
        let mac = (lead * g.co * h * w * g.ci * 9) as u64;
        (
            out,
            ConvCounts {
                mac,
                ..Default::default()
            },
        )
    }

    /// Tiles `tx0 .. tx0 + n` of tile row `ty` of one plane.
    fn task(
        &self,
        s: &mut Scratch,
        xb: &[f32],
        (h, w): (usize, usize),
        ty: usize,
        tx0: usize,
        n: usize,
        level: Level,
        mut cell: Region<'_>,
    ) {
        let g = &self.geo;
        let (ci, cp) = (g.ci, g.cp);
        s.v.resize(POSITIONS * ci * n, 0.0);
        s.rows.resize(8 * (n + 1), 0.0);
        s.y.resize(2 * 2 * n * cp, 0.0);
        s.zeros.resize(w, 0.0);
        let m = s.m.get_or_insert_with(|| Lines::zeroed(0));
        if m.len() < POSITIONS * n * cp {
            m.resize_zeroed(POSITIONS * n * cp);
        }
        for i in 0..ci {
            let rows: [&[f32]; 4] =
                std::array::from_fn(|r| match (2 * ty + r).checked_sub(1).filter(|&y| y < h) {
                    Some(y) => &xb[(i * h + y) * w..(i * h + y + 1) * w],
                    None => &s.zeros[..],
                });
            isa!(
                level,
                input_transform(level, rows, w, tx0, n, i, ci, &mut s.rows, &mut s.v)
            );
        }
        for (p, conv) in self.positions.iter().enumerate() {
            let v = &s.v[p * ci * n..(p + 1) * ci * n];
            dense_acc_row(
                level,
                conv,
                v,
                (1, n),
                0,
                n,
                &mut m[p * n * cp..(p + 1) * n * cp],
            );
        }
        isa!(
            level,
            output_transform(&m[..POSITIONS * n * cp], n, cp, &mut s.y)
        );
        // The cell is rows 2ty.. and columns 2tx0.. of the tiles, clipped to the image.
        for oy in cell.rows() {
            let r = oy - TILE * ty;
            let y = &s.y[r * TILE * n * cp..(r + 1) * TILE * n * cp];
            store_planes(level, y, cp, &mut cell.rows_at(oy), self.bias.as_deref());
        }
    }
}

/// 16 f32 lanes with elementwise `+` and `-`: the shared 1-D transforms ([`in_1d`],
/// [`out_1d`]) instantiated on it compile to one vector instruction per operation.
#[derive(Clone, Copy)]
struct L16([f32; 16]);

impl std::ops::Add for L16 {
    type Output = L16;
    #[inline(always)]
    fn add(mut self, o: L16) -> L16 {
        for j in 0..16 {
            self.0[j] += o.0[j];
        }
        self
    }
}

impl std::ops::Sub for L16 {
    type Output = L16;
    #[inline(always)]
    fn sub(mut self, o: L16) -> L16 {
        for j in 0..16 {
            self.0[j] -= o.0[j];
        }
        self
    }
}

impl L16 {
    #[inline(always)]
    fn load(s: &[f32]) -> L16 {
        L16(s[..16].try_into().unwrap())
    }
    /// The even and the odd elements of `s[..32]`.
    #[inline(always)]
    fn deinterleave(level: Level, s: &[f32]) -> (L16, L16) {
        let s = &s[..32];
        #[cfg(target_arch = "x86_64")]
        if level.isa() == Isa::Avx512 {
            // SAFETY: a `Level` of AVX-512 exists only on CPUs with AVX-512F; 32 elements.
            return unsafe { deinterleave512(s) };
        }
        let _ = level;
        let (mut ev, mut od) = ([0f32; 16], [0f32; 16]);
        for j in 0..16 {
            ev[j] = s[2 * j];
            od[j] = s[2 * j + 1];
        }
        (L16(ev), L16(od))
    }
    #[inline(always)]
    fn store(self, d: &mut [f32]) {
        d[..16].copy_from_slice(&self.0);
    }
}

/// [`L16::deinterleave`] with two permutes.
///
/// # Safety
/// The CPU supports AVX-512F and `s` holds at least 32 elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn deinterleave512(s: &[f32]) -> (L16, L16) {
    use std::arch::x86_64::*;
    let (a, b) = (
        _mm512_loadu_ps(s.as_ptr()),
        _mm512_loadu_ps(s.as_ptr().add(16)),
    );
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let (mut ev, mut od) = (L16([0.0; 16]), L16([0.0; 16]));
    _mm512_storeu_ps(ev.0.as_mut_ptr(), _mm512_permutex2var_ps(a, even, b));
    _mm512_storeu_ps(od.0.as_mut_ptr(), _mm512_permutex2var_ps(a, odd, b));
    (ev, od)
}

/// Input channel `i` of tiles `tx0 .. tx0 + n`. The row pass `B^T d` runs once per input
/// column `c` of `2 tx0 - 1 .. 2 (tx0 + n) + 1` (all `+0` outside the image, which is what it
/// gives for zero columns) into `e` (`[4][2][n + 1]`: pass row, column parity, column / 2),
/// then the column pass per tile into `v` (`[16][ci][n]`). `rows` are the patch's four input
/// rows (zeros above and below the image).
#[inline(always)]
fn input_transform(
    level: Level,
    rows: [&[f32]; 4],
    w: usize,
    tx0: usize,
    n: usize,
    i: usize,
    ci: usize,
    e: &mut [f32],
    v: &mut [f32],
) {
    let half = n + 1;
    let e = &mut e[..8 * half];
    // Column c of the pass is input column x = 2 tx0 + c - 1.
    let col = |c: usize| -> [f32; 4] {
        match (2 * tx0 + c).checked_sub(1).filter(|&x| x < w) {
            Some(x) => in_1d([rows[0][x], rows[1][x], rows[2][x], rows[3][x]]),
            None => [0.0; 4],
        }
    };
    let mut k = 0;
    while k < half {
        // 16 column pairs at once where all 32 columns are inside the image.
        let x = (2 * tx0 + 2 * k).wrapping_sub(1);
        if k + 16 <= half && 2 * tx0 + 2 * k >= 1 && x + 32 <= w {
            let (e0, o0) = L16::deinterleave(level, &rows[0][x..]);
            let (e1, o1) = L16::deinterleave(level, &rows[1][x..]);
            let (e2, o2) = L16::deinterleave(level, &rows[2][x..]);
            let (e3, o3) = L16::deinterleave(level, &rows[3][x..]);
            for (odd, d) in [(0, [e0, e1, e2, e3]), (1, [o0, o1, o2, o3])] {
                let q = in_1d(d);
                for r in 0..4 {
                    q[r].store(&mut e[(2 * r + odd) * half + k..]);
                }
            }
            k += 16;
        } else {
            for odd in 0..2 {
                let q = col(2 * k + odd);
                for r in 0..4 {
                    e[(2 * r + odd) * half + k] = q[r];
                }
            }
            k += 1;
        }
    }
    for r in 0..4 {
        let (ev, od) = (
            &e[2 * r * half..(2 * r + 1) * half],
            &e[(2 * r + 1) * half..(2 * r + 2) * half],
        );
        let base = 4 * r * ci * n + i * n;
        let at = |k: usize, t: usize| base + k * ci * n + t;
        let mut t = 0;
        while t + 16 <= n {
            let q = in_1d([
                L16::load(&ev[t..]),
                L16::load(&od[t..]),
                L16::load(&ev[t + 1..]),
                L16::load(&od[t + 1..]),
            ]);
            for k in 0..4 {
                q[k].store(&mut v[at(k, t)..]);
            }
            t += 16;
        }
        for t in t..n {
            let q = in_1d([ev[t], od[t], ev[t + 1], od[t + 1]]);
            for k in 0..4 {
                v[at(k, t)] = q[k];
            }
        }
    }
}

/// `Y = A^T M A` for `n` tiles, 16 channels at a time: `m` is `[16][n][cp]`, `y` gets
/// `[2][2n][cp]` (output row, output column, channel).
#[inline(always)]
fn output_transform(m: &[f32], n: usize, cp: usize, y: &mut [f32]) {
    let plane = n * cp;
    let row = 2 * n * cp;
    for t in 0..n {
        for o in (0..cp).step_by(16) {
            let at = |p: usize| L16::load(&m[p * plane + t * cp + o..]);
            let mut col = [[L16([0.0; 16]); 2]; 4];
            for c in 0..4 {
                col[c] = out_1d([at(c), at(4 + c), at(8 + c), at(12 + c)]);
            }
            for r in 0..2 {
                let yr = out_1d([col[0][r], col[1][r], col[2][r], col[3][r]]);
                yr[0].store(&mut y[r * row + 2 * t * cp + o..]);
                yr[1].store(&mut y[r * row + (2 * t + 1) * cp + o..]);
            }
        }
    }
}
