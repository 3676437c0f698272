//! Run-time selection of the instruction set for the hot kernels.
//!
//! The kernels in [`crate::conv`] are written once as plain, fixed-width lane loops
//! (`[f32; 16]` blocks) that LLVM vectorises. Here each is instantiated three times — inside
//! `#[target_feature(enable = "avx512f")]`, inside `avx2`, and for the baseline target — and
//! [`Level::detect`] picks one at run time, so the binary is portable (never built with
//! `target-cpu=native`) and still uses the widest vectors the machine has. No variant uses
//! fused multiply-add (Rust never contracts `a * b + c`), so all three give identical bits.

use crate::conv::{scatter, DenseConv, Geometry, LANES};

/// The instruction-set level used by the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Avx512,
    Avx2,
    Baseline,
}

impl Level {
    /// The best level this CPU supports (`SPIKERC_SIMD=baseline|avx2` caps it, for testing).
    pub fn detect() -> Level {
        let cap = std::env::var("SPIKERC_SIMD").unwrap_or_default();
        #[cfg(target_arch = "x86_64")]
        {
            if cap != "baseline" && cap != "avx2" && is_x86_feature_detected!("avx512f") {
                return Level::Avx512;
            }
            if cap != "baseline" && is_x86_feature_detected!("avx2") {
                return Level::Avx2;
            }
        }
        let _ = cap;
        Level::Baseline
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Avx512 => "avx512f",
            Level::Avx2 => "avx2",
            Level::Baseline => "baseline",
        }
    }
}

/// One output row of a dense convolution, all output channels.
#[inline(always)]
fn dense_row_body(c: &DenseConv, xb: &[f32], hw: (usize, usize), oy: usize, ohw: (usize, usize), ob: &mut [f32]) {
    let ow = ohw.1;
    let nch = c.geo.cp / LANES;
    let mut ch = 0;
    while ch < nch {
        let rem = nch - ch;
        let c0 = ch * LANES;
        macro_rules! run {
            ($p:literal, $nc:literal) => {{
                let mut ox = 0;
                while ox + $p <= ow {
                    c.tile::<$p, $nc>(xb, hw, oy, ox, c0, ohw, ob);
                    ox += $p;
                }
                while ox < ow {
                    c.tile::<1, $nc>(xb, hw, oy, ox, c0, ohw, ob);
                    ox += 1;
                }
                ch += $nc;
            }};
        }
        match rem {
            1 => run!(8, 1),
            2 => run!(8, 2),
            3 => run!(6, 3),
            _ => run!(4, 4),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dense_row_avx512(c: &DenseConv, xb: &[f32], hw: (usize, usize), oy: usize, ohw: (usize, usize), ob: &mut [f32]) {
    dense_row_body(c, xb, hw, oy, ohw, ob)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dense_row_avx2(c: &DenseConv, xb: &[f32], hw: (usize, usize), oy: usize, ohw: (usize, usize), ob: &mut [f32]) {
    dense_row_body(c, xb, hw, oy, ohw, ob)
}

/// Dispatches one dense output row to the kernel of `level`.
pub fn dense_row(level: Level, c: &DenseConv, xb: &[f32], hw: (usize, usize), oy: usize, ohw: (usize, usize), ob: &mut [f32]) {
    match level {
        // SAFETY: `Level::detect` only returns these levels when the CPU has the feature.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { dense_row_avx512(c, xb, hw, oy, ohw, ob) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { dense_row_avx2(c, xb, hw, oy, ohw, ob) },
        _ => dense_row_body(c, xb, hw, oy, ohw, ob),
    }
}

macro_rules! scatter_variants {
    ($name:ident, $t:ty, $v512:ident, $v2:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        unsafe fn $v512(g: &Geometry, wt: &[$t], xb: &[f32], hw: (usize, usize), rows: (usize, usize), ow: usize, acc: &mut [$t]) -> u64 {
            scatter(g, wt, xb, hw, rows, ow, acc)
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $v2(g: &Geometry, wt: &[$t], xb: &[f32], hw: (usize, usize), rows: (usize, usize), ow: usize, acc: &mut [$t]) -> u64 {
            scatter(g, wt, xb, hw, rows, ow, acc)
        }
        /// Dispatches the spike scatter of one band to the kernel of `level`.
        #[allow(clippy::too_many_arguments)]
        pub fn $name(level: Level, g: &Geometry, wt: &[$t], xb: &[f32], hw: (usize, usize), rows: (usize, usize), ow: usize, acc: &mut [$t]) -> u64 {
            match level {
                // SAFETY: `Level::detect` only returns these levels when the CPU has them.
                #[cfg(target_arch = "x86_64")]
                Level::Avx512 => unsafe { $v512(g, wt, xb, hw, rows, ow, acc) },
                #[cfg(target_arch = "x86_64")]
                Level::Avx2 => unsafe { $v2(g, wt, xb, hw, rows, ow, acc) },
                _ => scatter(g, wt, xb, hw, rows, ow, acc),
            }
        }
    };
}

scatter_variants!(scatter_f32, f32, scatter_f32_avx512, scatter_f32_avx2);
scatter_variants!(scatter_i64, i64, scatter_i64_avx512, scatter_i64_avx2);
