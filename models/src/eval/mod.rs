//! Restoration evaluation: PSNR/SSIM of a model over a test set.
//!
//! * [`metrics`] — PSNR and SSIM on 0–255 RGB (definitions in its docs).
//! * [`noise`] — deterministic Gaussian noise for denoising.
//! * [`data`] — image loading and input/target pairing.
//! * [`document`] — the `eval --json` document (`schema_version`, per image and mean) and the
//!   merge of shards.
//! * `torch` (feature `torch`) — checkpoints through the libtorch reference.
//!
//! [`evaluate`] is engine-agnostic: the caller passes a `restore` function mapping a `[1, 3, H, W]`
//! input in `[0, 1]` to the restored `[1, 3, H, W]` image (reference interpreter, runtime or
//! libtorch). Inputs are reflect-padded to the model's spatial divisor first and outputs cropped
//! back. Each output is clamped to `[0, 1]` and quantised to 8 bits (as a saved PNG would be)
//! before it is scored against the 8-bit ground truth, over the whole image (no border crop
//! for PSNR).

pub mod data;
pub mod document;
pub mod metrics;
pub mod noise;
#[cfg(feature = "torch")]
pub mod torch;

use serde::{Deserialize, Serialize};
use spikerc_compiler::interp::Array;
use std::path::Path;

pub use document::{merge, EvalDocument, EVAL_SCHEMA_VERSION};
pub use data::{clean_dir, list_images, load_rgb8, pair_dir, Pair, Rgb8};

/// Everything that can go wrong reading a test set or running an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{path}: cannot decode image: {reason}")]
    Image { path: String, reason: String },
    #[error("{path}: image has {channels} channel(s) ({color}); the model expects 3 (RGB)")]
    Channels {
        path: String,
        channels: usize,
        color: String,
    },
    #[error("{dir}: no images (png, jpg, jpeg, bmp, tif) found")]
    NoImages { dir: String },
    #[error("{dir}: {reason}")]
    Layout { dir: String, reason: String },
    #[error("{input}: cannot pair with a target: {reason}")]
    Pairing { input: String, reason: String },
    #[error("{input}: input is {ih}x{iw} but its target {target} is {th}x{tw}")]
    SizeMismatch {
        input: String,
        target: String,
        ih: usize,
        iw: usize,
        th: usize,
        tw: usize,
    },
    #[error("sigma must be a finite number >= 0, found {0}")]
    Sigma(f32),
    #[error("{name}: the model returned shape {found:?}, expected {expected:?}")]
    OutputShape {
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("{name}: {reason}")]
    Engine { name: String, reason: String },
}

/// A restoration task.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "task")]
pub enum Task {
    /// Additive white Gaussian noise of standard deviation `sigma` (0–255 scale), noise seeded
    /// per image from `seed` and the file name.
    Denoise { sigma: f32, seed: u64 },
    /// Input/target pairs (rainy -> clean).
    Derain,
    /// Input/target pairs (hazy -> clear).
    Dehaze,
}

impl Task {
    /// The cases of a test folder for this task.
    pub fn cases(&self, dir: &Path) -> Result<Vec<Pair>, EvalError> {
        match self {
            Task::Denoise { sigma, .. } => {
                if !(sigma.is_finite() && *sigma >= 0.0) {
                    return Err(EvalError::Sigma(*sigma));
                }
                clean_dir(dir)
            }
            Task::Derain | Task::Dehaze => pair_dir(dir),
        }
    }

    /// Loads one case: the model input (`[1, 3, H, W]`, `[0, 1]`) and the 8-bit target.
    pub fn load(&self, pair: &Pair) -> Result<(Array, Rgb8), EvalError> {
        let target = load_rgb8(&pair.target)?;
        let input = match self {
            Task::Denoise { sigma, seed } => noise::add_gaussian(
                &target.to_unit(),
                *sigma,
                noise::image_seed(*seed, &pair.name),
            ),
            Task::Derain | Task::Dehaze => {
                let inp = load_rgb8(&pair.input)?;
                if (inp.h, inp.w) != (target.h, target.w) {
                    return Err(EvalError::SizeMismatch {
                        input: pair.input.display().to_string(),
                        target: pair.target.display().to_string(),
                        ih: inp.h,
                        iw: inp.w,
                        th: target.h,
                        tw: target.w,
                    });
                }
                inp.to_unit()
            }
        };
        Ok((Array::new(vec![1, 3, target.h, target.w], input), target))
    }
}

/// Scores of one image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageScore {
    pub name: String,
    pub height: usize,
    pub width: usize,
    /// PSNR of the model input against the target (the "before" number), dB.
    #[serde(rename = "input_psnr_db")]
    pub input_psnr: f64,
    /// PSNR of the restored image against the target, dB.
    #[serde(rename = "psnr_db")]
    pub psnr: f64,
    pub ssim: f64,
}

/// Result of an evaluation: per image and mean scores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// `"task": "denoise", "sigma", "seed"` or `"task": "derain"|"dehaze"`, at this level.
    #[serde(flatten)]
    pub task: Task,
    pub images: Vec<ImageScore>,
    #[serde(rename = "mean_input_psnr_db")]
    pub mean_input_psnr: f64,
    #[serde(rename = "mean_psnr_db")]
    pub mean_psnr: f64,
    pub mean_ssim: f64,
}

/// Scores a restored `[1, 3, H, W]` `[0, 1]` image against an 8-bit target.
pub fn score(
    name: &str,
    input: &Array,
    restored: &Array,
    target: &Rgb8,
) -> Result<ImageScore, EvalError> {
    let expected = vec![1, 3, target.h, target.w];
    if restored.shape != expected {
        return Err(EvalError::OutputShape {
            name: name.into(),
            found: restored.shape.clone(),
            expected,
        });
    }
    let out = metrics::quantize_u8(&restored.data);
    let inp = metrics::quantize_u8(&input.data);
    let ssim = metrics::ssim(&out, &target.data, 3, target.h, target.w).unwrap_or(f64::NAN);
    Ok(ImageScore {
        name: name.into(),
        height: target.h,
        width: target.w,
        input_psnr: metrics::psnr(&inp, &target.data),
        psnr: metrics::psnr(&out, &target.data),
        ssim,
    })
}

/// Evaluates `restore` on `cases`. `divisor` is the model's spatial divisor (2^(levels-1)):
/// inputs are reflect-padded to it and outputs cropped back. `progress(i, score, restored)` is called
/// after every image with the restored `[1, 3, H, W]` image (cropped back).
pub fn evaluate(
    task: Task,
    cases: &[Pair],
    divisor: usize,
    mut restore: impl FnMut(&Array) -> Result<Array, String>,
    mut progress: impl FnMut(usize, &ImageScore, &Array),
) -> Result<Report, EvalError> {
    let mut images = Vec::with_capacity(cases.len());
    for (i, pair) in cases.iter().enumerate() {
        let (input, target) = task.load(pair)?;
        let padded = input.pad_reflect_to_multiple(divisor.max(1));
        let out = restore(&padded).map_err(|reason| EvalError::Engine {
            name: pair.name.clone(),
            reason,
        })?;
        if out.shape.len() != 4 || out.shape[2] < target.h || out.shape[3] < target.w {
            return Err(EvalError::OutputShape {
                name: pair.name.clone(),
                found: out.shape,
                expected: padded.shape,
            });
        }
        let restored = out.crop(target.h, target.w);
        let s = score(&pair.name, &input, &restored, &target)?;
        progress(i, &s, &restored);
        images.push(s);
    }
    Ok(summarize(task, images))
}

/// Builds a report (means over images) from per-image scores.
pub fn summarize(task: Task, images: Vec<ImageScore>) -> Report {
    let n = images.len().max(1) as f64;
    let mean = |f: fn(&ImageScore) -> f64| images.iter().map(f).sum::<f64>() / n;
    Report {
        task,
        mean_input_psnr: mean(|s| s.input_psnr),
        mean_psnr: mean(|s| s.psnr),
        mean_ssim: mean(|s| s.ssim),
        images,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(p: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)))
            .save(p)
            .unwrap();
    }

    #[test]
    fn identity_model_on_pairs_scores_the_input() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("input")).unwrap();
        std::fs::create_dir_all(d.path().join("target")).unwrap();
        write_png(&d.path().join("input/a.png"), 21, 13, |x, y| {
            [(x * 7) as u8, (y * 9) as u8, 100]
        });
        write_png(&d.path().join("target/a.png"), 21, 13, |x, y| {
            [(x * 7) as u8 + 1, (y * 9) as u8, 100]
        });
        let cases = Task::Derain.cases(d.path()).unwrap();
        let mut calls = vec![];
        let r = evaluate(
            Task::Derain,
            &cases,
            4,
            |x| {
                calls.push(x.shape.clone());
                Ok(x.clone())
            },
            |_, _, _| {},
        )
        .unwrap();
        // Padded to a multiple of 4 for the model, cropped back for scoring.
        assert_eq!(calls, vec![vec![1, 3, 16, 24]]);
        // One of three channels off by exactly 1 everywhere: MSE = 1/3.
        let want = 10.0 * (65025.0f64 * 3.0).log10();
        assert!((r.mean_psnr - want).abs() < 1e-9, "{}", r.mean_psnr);
        assert_eq!(r.mean_psnr, r.mean_input_psnr);
        assert!(r.mean_ssim > 0.99 && r.mean_ssim < 1.0);
    }

    #[test]
    fn denoising_is_deterministic_and_perfect_restoration_is_infinite() {
        let d = tempfile::tempdir().unwrap();
        write_png(&d.path().join("x.png"), 16, 16, |x, y| {
            [(x * 16) as u8, (y * 16) as u8, 50]
        });
        let task = Task::Denoise {
            sigma: 25.0,
            seed: 0,
        };
        let cases = task.cases(d.path()).unwrap();
        let (a, t) = task.load(&cases[0]).unwrap();
        let (b, _) = task.load(&cases[0]).unwrap();
        assert_eq!(a, b);
        // sigma 25 noise: input PSNR near 20.17 dB (before clipping/quantisation effects).
        let s = score("x", &a, &a, &t).unwrap();
        assert!(
            s.input_psnr > 19.0 && s.input_psnr < 22.0,
            "{}",
            s.input_psnr
        );
        let perfect = Array::new(vec![1, 3, 16, 16], t.to_unit());
        let r = evaluate(task, &cases, 1, |_| Ok(perfect.clone()), |_, _, _| {}).unwrap();
        assert_eq!(r.mean_psnr, f64::INFINITY);
        assert!((r.mean_ssim - 1.0).abs() < 1e-12);
    }

    #[test]
    fn wrong_output_shape_and_bad_sigma_are_errors() {
        let d = tempfile::tempdir().unwrap();
        write_png(&d.path().join("x.png"), 16, 16, |_, _| [1, 2, 3]);
        assert!(matches!(
            Task::Denoise {
                sigma: f32::NAN,
                seed: 0
            }
            .cases(d.path()),
            Err(EvalError::Sigma(_))
        ));
        let task = Task::Denoise {
            sigma: 5.0,
            seed: 0,
        };
        let cases = task.cases(d.path()).unwrap();
        let e = evaluate(
            task,
            &cases,
            1,
            |_| Ok(Array::zeros(vec![1, 1, 16, 16])),
            |_, _, _| {},
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("x.png") && e.to_string().contains("[1, 1, 16, 16]"),
            "{e}"
        );
    }
}
