//! Whole images of any size: reflect padding to the model's divisor, and overlapping tiles.
//!
//! [`run_image`] pads the bottom/right edges by reflection up to the multiple of
//! `Graph::spatial_divisor` the depth needs, runs, and crops every image-sized output back.
//! [`run_tiled`] cuts the image into `tile x tile` windows, extends each by `overlap` pixels of
//! context on every side (clipped at the image border), runs each window through
//! [`run_image`] and keeps only its central part, so peak memory is that of one tile however
//! large the image. Spike and op counts are summed over tiles (they count the work actually
//! done, overlaps included).

use crate::program::{Program, RunOptions, RunResult, RuntimeError};
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
    let div = p.graph().spatial_divisor();
    if tile < div {
        return Err(RuntimeError::Tile {
            tile,
            overlap,
            reason: format!("the tile must be at least the model's divisor {div}"),
        });
    }
    let mut total = RunResult::default();
    let mut outputs: Vec<Array> = vec![];
    for ty in (0..h).step_by(tile) {
        for tx in (0..w).step_by(tile) {
            let (cy1, cx1) = ((ty + tile).min(h), (tx + tile).min(w));
            let (y0, x0) = (ty.saturating_sub(overlap), tx.saturating_sub(overlap));
            let (y1, x1) = ((cy1 + overlap).min(h), (cx1 + overlap).min(w));
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
