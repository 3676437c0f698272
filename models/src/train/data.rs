//! Training data: images held in memory as 8-bit RGB, random patch batches with flips, noise
//! synthesis for denoising, and a small fixed validation set.
//!
//! Everything random comes from a caller-supplied generator, so the trainer can derive one
//! generator per step from `(seed, step)` and a resumed run draws exactly the batches an
//! uninterrupted run would.

use rand::Rng;
use std::path::Path;

use crate::eval::{self, noise, EvalError, Rgb8};

/// How inputs are made from targets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Degradation {
    /// Gaussian noise, sigma (0–255 scale) drawn uniformly from `[lo, hi]` per patch (`lo == hi`:
    /// fixed sigma).
    Noise { lo: f32, hi: f32 },
    /// The input image of a pair (deraining, dehazing).
    Paired,
}

/// A training set in memory: `(input, target)` with `input = None` for denoising.
pub struct TrainSet {
    pub images: Vec<(Option<Rgb8>, Rgb8)>,
    pub degradation: Degradation,
}

/// A batch: `[N, 3, P, P]` planar f32 inputs and targets in `[0, 1]` (inputs may leave the
/// range after noise).
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub n: usize,
    pub patch: usize,
    pub input: Vec<f32>,
    pub target: Vec<f32>,
}

impl TrainSet {
    /// Loads a folder: every image for denoising, `input/`+`target/` pairs otherwise. `limit`
    /// keeps the first images only (sorted by name).
    pub fn load(
        dir: &Path,
        degradation: Degradation,
        limit: Option<usize>,
    ) -> Result<TrainSet, EvalError> {
        let mut cases = match degradation {
            Degradation::Noise { .. } => eval::clean_dir(dir)?,
            Degradation::Paired => eval::pair_dir(dir)?,
        };
        if let Some(l) = limit {
            cases.truncate(l.max(1));
        }
        let mut images = Vec::with_capacity(cases.len());
        for c in &cases {
            let target = eval::load_rgb8(&c.target)?;
            let input = match degradation {
                Degradation::Noise { .. } => None,
                Degradation::Paired => {
                    let i = eval::load_rgb8(&c.input)?;
                    if (i.h, i.w) != (target.h, target.w) {
                        return Err(EvalError::SizeMismatch {
                            input: c.input.display().to_string(),
                            target: c.target.display().to_string(),
                            ih: i.h,
                            iw: i.w,
                            th: target.h,
                            tw: target.w,
                        });
                    }
                    Some(i)
                }
            };
            images.push((input, target));
        }
        Ok(TrainSet {
            images,
            degradation,
        })
    }

    /// The smallest image side (patches must fit).
    pub fn min_side(&self) -> usize {
        self.images
            .iter()
            .map(|(_, t)| t.h.min(t.w))
            .min()
            .unwrap_or(0)
    }

    /// Draws a batch of `n` random `patch x patch` crops, each flipped horizontally and/or
    /// vertically with probability 1/2, degraded per [`Degradation`].
    pub fn batch(&self, n: usize, patch: usize, rng: &mut impl Rng) -> Batch {
        let pp = patch * patch;
        let mut input = vec![0f32; n * 3 * pp];
        let mut target = vec![0f32; n * 3 * pp];
        for b in 0..n {
            let (inp, tgt) = &self.images[rng.gen_range(0..self.images.len())];
            let y0 = rng.gen_range(0..=tgt.h - patch);
            let x0 = rng.gen_range(0..=tgt.w - patch);
            let (fh, fv) = (rng.gen_bool(0.5), rng.gen_bool(0.5));
            let crop = |img: &Rgb8, out: &mut [f32]| {
                for c in 0..3 {
                    for y in 0..patch {
                        let sy = y0 + if fv { patch - 1 - y } else { y };
                        for x in 0..patch {
                            let sx = x0 + if fh { patch - 1 - x } else { x };
                            out[c * pp + y * patch + x] =
                                img.data[c * img.h * img.w + sy * img.w + sx] / 255.0;
                        }
                    }
                }
            };
            let t = &mut target[b * 3 * pp..(b + 1) * 3 * pp];
            crop(tgt, t);
            let i = &mut input[b * 3 * pp..(b + 1) * 3 * pp];
            match (self.degradation, inp) {
                (Degradation::Noise { lo, hi }, _) => {
                    let sigma = if hi > lo { rng.gen_range(lo..=hi) } else { lo };
                    i.copy_from_slice(&noise::add_gaussian_with(t, sigma, rng));
                }
                (Degradation::Paired, Some(src)) => crop(src, i),
                (Degradation::Paired, None) => unreachable!("paired sets hold inputs"),
            }
        }
        Batch {
            n,
            patch,
            input,
            target,
        }
    }
}

/// A fixed validation set: centre crops of the first `count` images of `dir` (sides a multiple
/// of `divisor`, at most `crop`), degraded deterministically (denoising: sigma `val_sigma`, noise
/// seeded by file name as in `spikerc eval`).
pub struct ValSet {
    /// `(input [1,3,h,w], target 8-bit)` per image.
    pub items: Vec<(Vec<f32>, Rgb8)>,
}

impl ValSet {
    pub fn load(
        dir: &Path,
        paired: bool,
        count: usize,
        crop: usize,
        divisor: usize,
        val_sigma: f32,
    ) -> Result<ValSet, EvalError> {
        let cases = if paired {
            eval::pair_dir(dir)?
        } else {
            eval::clean_dir(dir)?
        };
        let mut items = Vec::new();
        for c in cases.iter().take(count.max(1)) {
            let t = eval::load_rgb8(&c.target)?;
            let side = |s: usize| (s.min(crop) / divisor) * divisor;
            let (h, w) = (side(t.h), side(t.w));
            if h == 0 || w == 0 {
                return Err(EvalError::Layout {
                    dir: dir.display().to_string(),
                    reason: format!(
                        "{} is {}x{}, too small for validation crops divisible by {divisor}",
                        c.name, t.h, t.w
                    ),
                });
            }
            let center = |img: &Rgb8| {
                let (y0, x0) = ((img.h - h) / 2, (img.w - w) / 2);
                let mut d = vec![0f32; 3 * h * w];
                for ch in 0..3 {
                    for y in 0..h {
                        for x in 0..w {
                            d[ch * h * w + y * w + x] =
                                img.data[ch * img.h * img.w + (y0 + y) * img.w + x0 + x];
                        }
                    }
                }
                Rgb8 { h, w, data: d }
            };
            let tc = center(&t);
            let input = if paired {
                center(&eval::load_rgb8(&c.input)?).to_unit()
            } else {
                noise::add_gaussian(&tc.to_unit(), val_sigma, noise::image_seed(0, &c.name))
            };
            items.push((input, tc));
        }
        Ok(ValSet { items })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn set() -> TrainSet {
        let data: Vec<f32> = (0..3 * 10 * 12).map(|i| (i % 256) as f32).collect();
        TrainSet {
            images: vec![(None, Rgb8 { h: 10, w: 12, data })],
            degradation: Degradation::Noise { lo: 0.0, hi: 0.0 },
        }
    }

    #[test]
    fn batches_are_deterministic_crops_of_the_image() {
        let s = set();
        let a = s.batch(4, 8, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(a, s.batch(4, 8, &mut ChaCha8Rng::seed_from_u64(3)));
        assert_ne!(a, s.batch(4, 8, &mut ChaCha8Rng::seed_from_u64(4)));
        assert_eq!(a.input.len(), 4 * 3 * 64);
        // sigma 0: the input is the target.
        assert_eq!(a.input, a.target);
        // Every patch value comes from the image (/255).
        for v in &a.target {
            assert!((v * 255.0).round() < 256.0 && *v >= 0.0);
        }
    }

    #[test]
    fn noise_range_changes_the_input_only() {
        let mut s = set();
        s.degradation = Degradation::Noise { lo: 10.0, hi: 50.0 };
        let b = s.batch(2, 8, &mut ChaCha8Rng::seed_from_u64(0));
        assert_ne!(b.input, b.target);
        let d: f32 = b
            .input
            .iter()
            .zip(&b.target)
            .map(|(x, y)| (x - y).abs())
            .sum::<f32>()
            / b.input.len() as f32;
        assert!(d > 0.02 && d < 0.2, "mean |noise| {d}");
    }
}
