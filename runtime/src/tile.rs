//! Whole images of any size: reflect padding to the model's divisor, and overlapping tiles.
//!
//! [`run_image`] pads the bottom/right edges by reflection up to the multiple of
//! `Graph::spatial_divisor` the depth needs, runs, and crops every image-sized output back.
//! [`run_tiled`] cuts the image into `tile x tile` windows, extends each by `overlap` pixels of
//! context on every side (clipped at the image border), runs each window through
//! [`run_image`] and keeps only its central part, so peak memory is that of one tile however
//! large the image. Spike and op counts are summed over tiles (they count the work actually
//! done, overlaps included).
//!
//! [`plan`] picks between the two within a memory budget: from the program's peak-memory
//! estimate ([`Program::peak_bytes`]) it runs the image whole if that fits, else in the
//! largest tiles that fit, else refuses with the bytes needed. [`run_planned`] runs a plan.

use crate::program::{gib, Program, RunOptions, RunResult, RuntimeError};
use spikerc_compiler::interp::{Array, InterpError};

/// Checks an `[N, C, H, W]` input's rank and channels (any H, W).
fn check_rank(p: &Program, input: &Array) -> Result<(usize, usize, usize), RuntimeError> {
    let channels = match p.graph().input().map(|i| &p.graph().node(i).op) {
        Some(spikerc_compiler::Op::Input { channels }) => *channels,
        _ => unreachable!("verified graphs have an input"),
    };
    if input.shape.len() != 4 || input.shape[1] != channels {
        return Err(InterpError::InputRank {
            found: input.shape.clone(),
            channels,
        }
        .into());
    }
    let (n, h, w) = (input.shape[0], input.shape[2], input.shape[3]);
    if n == 0 || h == 0 || w == 0 {
        return Err(InterpError::Empty { n, h, w }.into());
    }
    Ok((n, h, w))
}

/// Runs an image batch of any `H x W`: reflect-pads to the divisor, runs, crops outputs back.
pub fn run_image(p: &Program, input: &Array, opts: &RunOptions) -> Result<RunResult, RuntimeError> {
    let (_, h, w) = check_rank(p, input)?;
    let div = p.graph().spatial_divisor();
    let padded = input.pad_reflect_to_multiple(div);
    let (ph, pw) = (padded.shape[2], padded.shape[3]);
    let mut res = p.run(&padded, opts)?;
    for o in &mut res.outputs {
        let r = o.shape.len();
        if r >= 2 && o.shape[r - 2] == ph && o.shape[r - 1] == pw {
            *o = o.crop(h, w);
        }
    }
    Ok(res)
}

/// Copies rows `[y0, y1)` x cols `[x0, x1)` of every plane of `a` (`[N, C, H, W]`).
fn window(a: &Array, (y0, y1): (usize, usize), (x0, x1): (usize, usize)) -> Array {
    let (n, c, h, w) = (a.shape[0], a.shape[1], a.shape[2], a.shape[3]);
    let mut data = Vec::with_capacity(n * c * (y1 - y0) * (x1 - x0));
    for p in 0..n * c {
        for y in y0..y1 {
            let row = p * h * w + y * w;
            data.extend_from_slice(&a.data[row + x0..row + x1]);
        }
    }
    Array::new(vec![n, c, y1 - y0, x1 - x0], data)
}

/// Runs an image batch tile by tile (`tile x tile` windows with `overlap` pixels of context on
/// each side) and stitches the outputs; the model's outputs must be image-sized
/// `[N, C', H, W]`.
pub fn run_tiled(
    p: &Program,
    input: &Array,
    tile: usize,
    overlap: usize,
    opts: &RunOptions,
) -> Result<RunResult, RuntimeError> {
    let (n, h, w) = check_rank(p, input)?;
    check_tile(p, tile, overlap)?;
    let mut total = RunResult::default();
    let mut outputs: Vec<Array> = vec![];
    for ty in (0..h).step_by(tile) {
        for tx in (0..w).step_by(tile) {
            let (cy1, cx1) = (ty.saturating_add(tile).min(h), tx.saturating_add(tile).min(w));
            let (y0, x0) = (ty.saturating_sub(overlap), tx.saturating_sub(overlap));
            let (y1, x1) = (cy1.saturating_add(overlap).min(h), cx1.saturating_add(overlap).min(w));
            let part = window(input, (y0, y1), (x0, x1));
            let res = run_image(p, &part, opts)?;
            if outputs.is_empty() {
                for o in &res.outputs {
                    if o.shape.len() != 4 || o.shape[0] != n || o.shape[2..] != [y1 - y0, x1 - x0] {
                        return Err(RuntimeError::Tile {
                            tile,
                            overlap,
                            reason: format!(
                                "the model's output {:?} is not image-sized, so it cannot be tiled",
                                o.shape
                            ),
                        });
                    }
                    outputs.push(Array::zeros(vec![n, o.shape[1], h, w]));
                }
            }
            for (dst, o) in outputs.iter_mut().zip(&res.outputs) {
                let (oh, ow) = (o.shape[2], o.shape[3]);
                for pl in 0..n * o.shape[1] {
                    for y in ty..cy1 {
                        let s = pl * oh * ow + (y - y0) * ow + (tx - x0);
                        let d = pl * h * w + y * w + tx;
                        dst.data[d..d + (cx1 - tx)].copy_from_slice(&o.data[s..s + (cx1 - tx)]);
                    }
                }
            }
            total.merge_counts(&res);
            total.timeline.extend(res.timeline);
        }
    }
    total.outputs = outputs;
    Ok(total)
}

/// Refuses a tile below the model's divisor and an overlap larger than the tile (each window
/// would be mostly context; `--tile 8 --overlap 16` used to be accepted silently).
pub fn check_tile(p: &Program, tile: usize, overlap: usize) -> Result<(), RuntimeError> {
    let div = p.graph().spatial_divisor();
    let reason = if tile < div {
        format!("the tile must be at least the model's divisor {div}")
    } else if overlap > tile {
        "the overlap must not exceed the tile (each window would be mostly context)".to_string()
    } else {
        return Ok(());
    };
    Err(RuntimeError::Tile {
        tile,
        overlap,
        reason,
    })
}

/// Bytes of `elems` f32 values (saturating).
fn f32_bytes(elems: &[usize]) -> u64 {
    elems.iter().fold(4u64, |a, &d| a.saturating_mul(d as u64))
}

/// The input's channels.
fn channels(p: &Program) -> usize {
    match p.graph().input().map(|i| &p.graph().node(i).op) {
        Some(spikerc_compiler::Op::Input { channels }) => *channels,
        _ => unreachable!("verified graphs have an input"),
    }
}

/// Bytes of the model's outputs for an `[n, C, h, w]` input.
fn output_bytes(p: &Program, (n, h, w): (usize, usize, usize)) -> u64 {
    let g = p.graph();
    g.outputs()
        .into_iter()
        .map(|o| f32_bytes(&g.node(o).fact.shape.resolve(n, h, w).unwrap_or_default()))
        .fold(0, u64::saturating_add)
}

/// Estimated peak heap bytes [`run_image`] adds for an `[n, C, h, w]` input of any size: the
/// padded copy, the run ([`Program::peak_bytes`]) and the cropped outputs.
pub fn image_peak_bytes(p: &Program, (n, h, w): (usize, usize, usize), threads: usize) -> u64 {
    let div = p.graph().spatial_divisor().max(1);
    let (ph, pw) = (h.div_ceil(div).saturating_mul(div), w.div_ceil(div).saturating_mul(div));
    f32_bytes(&[n, channels(p), ph, pw])
        .saturating_add(p.peak_bytes((n, ph, pw), threads))
        .saturating_add(output_bytes(p, (n, h, w)))
}

/// Estimated peak heap bytes [`run_tiled`] adds: the stitched outputs, plus one window and
/// its [`run_image`] at the largest window size (`tile + 2 overlap`, clipped to the image).
pub fn tiled_peak_bytes(
    p: &Program,
    (n, h, w): (usize, usize, usize),
    tile: usize,
    overlap: usize,
    threads: usize,
) -> u64 {
    let side = tile.saturating_add(overlap.saturating_mul(2));
    let (wh, ww) = (side.min(h), side.min(w));
    output_bytes(p, (n, h, w))
        .saturating_add(f32_bytes(&[n, channels(p), wh, ww]))
        .saturating_add(image_peak_bytes(p, (n, wh, ww), threads))
}

/// How to run one input within a memory budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// `Some((tile, overlap))` to run in tiles, `None` to run whole.
    pub tile: Option<(usize, usize)>,
    /// Estimated peak bytes, the input included.
    pub bytes: u64,
}

/// Plans a run of an `[n, C, h, w]` input within `budget` bytes (the input itself counted):
/// whole if it fits; else the largest tiles (multiples of the model's divisor, at least
/// `overlap`) with `overlap` pixels of context that fit; else [`RuntimeError::OverBudget`].
/// `tile = Some(t)` checks that tile size instead of choosing one.
pub fn plan(
    p: &Program,
    (n, h, w): (usize, usize, usize),
    tile: Option<usize>,
    overlap: usize,
    budget: u64,
    threads: usize,
) -> Result<Plan, RuntimeError> {
    let input = f32_bytes(&[n, channels(p), h, w]);
    let whole = input.saturating_add(image_peak_bytes(p, (n, h, w), threads));
    let tiled = |t: usize| input.saturating_add(tiled_peak_bytes(p, (n, h, w), t, overlap, threads));
    let over = |detail: String| RuntimeError::OverBudget {
        needed: whole,
        h,
        w,
        budget,
        detail,
    };
    if let Some(t) = tile {
        check_tile(p, t, overlap)?;
        let bytes = tiled(t);
        if bytes > budget {
            return Err(over(format!("{t}x{t} tiles with overlap {overlap} need {}", gib(bytes))));
        }
        return Ok(Plan { tile: Some((t, overlap)), bytes });
    }
    if whole <= budget {
        return Ok(Plan { tile: None, bytes: whole });
    }
    // Tiles of k * div pixels, k in lo..=hi; the estimate grows with the tile, so bisect.
    let div = p.graph().spatial_divisor().max(1);
    let lo = overlap.max(div).div_ceil(div);
    let hi = h.max(w).div_ceil(div).max(lo);
    if tiled(lo * div) > budget {
        let t = lo * div;
        return Err(over(format!(
            "even {t}x{t} tiles with overlap {overlap} need {}",
            gib(tiled(t))
        )));
    }
    let (mut good, mut bad) = (lo, hi + 1);
    while bad - good > 1 {
        let mid = (good + bad) / 2;
        if tiled(mid * div) <= budget {
            good = mid;
        } else {
            bad = mid;
        }
    }
    let t = good * div;
    Ok(Plan { tile: Some((t, overlap)), bytes: tiled(t) })
}

/// Runs `input` as `plan` says ([`run_image`] or [`run_tiled`]).
pub fn run_planned(
    p: &Program,
    input: &Array,
    plan: &Plan,
    opts: &RunOptions,
) -> Result<RunResult, RuntimeError> {
    match plan.tile {
        None => run_image(p, input, opts),
        Some((t, o)) => run_tiled(p, input, t, o, opts),
    }
}

/// Parses a byte size: a number (decimals allowed) with an optional binary unit `K`, `M`,
/// `G` or `T` (`KiB`/`KB`/... accepted, all powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return None,
    };
    let bytes = num * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// The default memory budget: half of the memory available now (`MemAvailable` in
/// `/proc/meminfo`), or 4 GiB where that cannot be read.
pub fn default_budget() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("MemAvailable:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib.saturating_mul(1024) / 2)
        })
        .unwrap_or(4 << 30)
}
