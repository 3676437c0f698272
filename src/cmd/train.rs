//! `spikerc train --out DIR [--task denoise|derain|dehaze] [--dim 8 --levels 3 ...] [--steps N]
//! [--teacher-steps N | --teacher FILE | --no-kd] [--seed S] [--resume]`
//!
//! Trains a SpikerIR student with H-KD (feature `torch`; see `spikerc_models::train`) and
//! writes `DIR/student.safetensors` (a checkpoint `spikerc compile` imports), `DIR/meta.json`
//! (hyperparameters in the fixtures' schema plus the training record), `DIR/curve.csv`
//! (validation PSNR per step) and, when distilling, `DIR/teacher.safetensors`.

use anyhow::bail;
use clap::{Args as ClapArgs, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use spikerc_models::spikerir::Architecture;
use spikerc_models::train::trainer::{curve_csv, Event, HintMode, TrainConfig, Trainer};
use spikerc_models::train::{Degradation, TrainSet, ValSet};
use std::path::PathBuf;
use std::time::Instant;

use super::HyperOpts;
use crate::io::write_atomic;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TrainTask {
    /// Gaussian denoising of a folder of clean images (`--sigma` or `--sigma-range`).
    Denoise,
    /// Deraining on `input/` + `target/` pairs.
    Derain,
    /// Dehazing on `input/` + `target/` pairs.
    Dehaze,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Hints {
    Adapted,
    Raw,
}

#[derive(ClapArgs)]
pub struct Args {
    /// Output folder (created).
    #[arg(short = 'o', long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value = "denoise")]
    pub task: TrainTask,
    /// Training folder [default: $SPIKERC_SHARED/data/train/CBSD432].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Use only the first N training images (sorted by name).
    #[arg(long)]
    pub limit_images: Option<usize>,
    /// Fixed noise level (0-255 scale) for denoising.
    #[arg(long, default_value_t = 25.0, conflicts_with = "sigma_range")]
    pub sigma: f32,
    /// Blind denoising: sigma drawn uniformly per patch from LO,HI.
    #[arg(long, value_delimiter = ',', num_args = 2)]
    pub sigma_range: Option<Vec<f32>>,
    /// Validation folder [default: $SPIKERC_SHARED/data/test/CBSD68].
    #[arg(long)]
    pub val_data: Option<PathBuf>,
    #[arg(long, default_value_t = 4)]
    pub val_images: usize,
    /// Validation centre crop side (rounded down to the model's divisor).
    #[arg(long, default_value_t = 128)]
    pub val_crop: usize,
    /// Noise level of the validation set [default: --sigma, or 25 with --sigma-range].
    #[arg(long)]
    pub val_sigma: Option<f32>,
    #[arg(long, default_value_t = 8)]
    pub dim: usize,
    #[arg(long, default_value_t = 3)]
    pub levels: usize,
    /// Blocks per encoder level (default 1 each).
    #[arg(long, value_delimiter = ',')]
    pub en_blocks: Option<Vec<usize>>,
    /// Blocks per decoder level (default 1 each).
    #[arg(long, value_delimiter = ',')]
    pub de_blocks: Option<Vec<usize>>,
    #[command(flatten)]
    pub hyper: HyperOpts,
    /// Student steps.
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Teacher steps (trained first, when distilling and no --teacher is given).
    #[arg(long, default_value_t = 300)]
    pub teacher_steps: usize,
    /// A trained teacher checkpoint (ANN twin, as written to DIR/teacher.safetensors).
    #[arg(long, conflicts_with = "no_kd")]
    pub teacher: Option<PathBuf>,
    /// Teacher width (default: the student's --dim; wider teachers get 1x1 hint projections).
    #[arg(long)]
    pub teacher_dim: Option<usize>,
    /// Ablation: train the student alone (no teacher, no feature hints).
    #[arg(long)]
    pub no_kd: bool,
    /// Weight of the feature-hint MSEs.
    #[arg(long, default_value_t = 0.12)]
    pub gamma: f64,
    /// Feature hints: `adapted` (learned 1x1 adapter per level, MSE normalised by the teacher
    /// feature's mean square) or `raw` (plain MSE, projection only where widths differ).
    #[arg(long, value_enum, default_value = "adapted")]
    pub hints: Hints,
    /// Weight of the FFT-L1 term.
    #[arg(long, default_value_t = 0.1)]
    pub fft_weight: f64,
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    #[arg(long, default_value_t = 64)]
    pub patch: usize,
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 1e-5)]
    pub lr_min: f64,
    #[arg(long, default_value_t = 0.05)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 50)]
    pub val_every: usize,
    #[arg(long, default_value_t = 50)]
    pub ckpt_every: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Continue from DIR/state (same options) instead of starting over.
    #[arg(long)]
    pub resume: bool,
    /// Stop after N steps in this invocation (state saved; continue with --resume).
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// libtorch intra-op threads (default: libtorch's choice).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `$SPIKERC_SHARED`, or `../shared` beside the repository.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("SPIKERC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

fn blocks(name: &str, given: &Option<Vec<usize>>, levels: usize) -> anyhow::Result<Vec<usize>> {
    match given {
        None => Ok(vec![1; levels]),
        Some(v) if v.len() == levels => Ok(v.clone()),
        Some(v) => bail!(
            "--{name} lists {} levels ({v:?}) but --levels is {levels}",
            v.len()
        ),
    }
}

pub fn main(a: Args) -> anyhow::Result<()> {
    if a.levels == 0 || a.dim == 0 {
        bail!(
            "--levels ({}) and --dim ({}) must be positive",
            a.levels,
            a.dim
        );
    }
    let hp = a.hyper.resolve(None)?;
    hp.validate()?;
    let arch = Architecture {
        dim: a.dim,
        levels: a.levels,
        en_blocks: blocks("en-blocks", &a.en_blocks, a.levels)?,
        de_blocks: blocks("de-blocks", &a.de_blocks, a.levels)?,
        in_channels: 3,
        out_channels: 3,
    };
    let degradation = match (a.task, &a.sigma_range) {
        (TrainTask::Denoise, Some(r)) => {
            if !(r[0] >= 0.0 && r[1] >= r[0] && r[1].is_finite()) {
                bail!("--sigma-range {},{} must satisfy 0 <= LO <= HI", r[0], r[1]);
            }
            Degradation::Noise { lo: r[0], hi: r[1] }
        }
        (TrainTask::Denoise, None) => {
            if !(a.sigma >= 0.0 && a.sigma.is_finite()) {
                bail!("--sigma {} must be a finite number >= 0", a.sigma);
            }
            Degradation::Noise {
                lo: a.sigma,
                hi: a.sigma,
            }
        }
        _ => Degradation::Paired,
    };
    let paired = degradation == Degradation::Paired;
    let data = match (&a.data, a.task) {
        (Some(d), _) => d.clone(),
        (None, TrainTask::Denoise) => shared_dir().join("data/train/CBSD432"),
        (None, t) => bail!("--data is required for {t:?} (a folder with input/ and target/)"),
    };
    let val_data = match (&a.val_data, a.task) {
        (Some(d), _) => d.clone(),
        (None, TrainTask::Denoise) => shared_dir().join("data/test/CBSD68"),
        (None, t) => bail!("--val-data is required for {t:?}"),
    };
    let val_sigma = a.val_sigma.unwrap_or(if a.sigma_range.is_some() {
        25.0
    } else {
        a.sigma
    });
    if let Some(t) = a.threads {
        spikerc_models::train::trainer::set_threads(t);
    }
    let cfg = TrainConfig {
        arch: arch.clone(),
        hp: hp.clone(),
        steps: a.steps,
        teacher_steps: a.teacher_steps,
        teacher_dim: a.teacher_dim.unwrap_or(a.dim),
        distill: !a.no_kd,
        gamma: a.gamma,
        hints: match a.hints {
            Hints::Adapted => HintMode::Adapted,
            Hints::Raw => HintMode::Raw,
        },
        fft_weight: a.fft_weight,
        batch: a.batch,
        patch: a.patch,
        lr_max: a.lr,
        lr_min: a.lr_min,
        weight_decay: a.weight_decay,
        val_every: a.val_every,
        ckpt_every: a.ckpt_every,
        seed: a.seed,
    };
    let t_load = Instant::now();
    let train = TrainSet::load(&data, degradation, a.limit_images)?;
    let val = ValSet::load(
        &val_data,
        paired,
        a.val_images,
        a.val_crop,
        1 << (a.levels - 1),
        val_sigma,
    )?;
    eprintln!(
        "training {} on {} images of {} ({:.1}s to load), validating on {} crops of {}",
        arch.summary(),
        train.images.len(),
        data.display(),
        t_load.elapsed().as_secs_f64(),
        val.items.len(),
        val_data.display()
    );
    let trainer = Trainer {
        cfg: cfg.clone(),
        device: spikerc_models::train::trainer::best_device(),
        train: &train,
        val: &val,
        out: a.out.clone(),
        teacher: a.teacher.clone(),
        stop_after: a.stop_after,
    };
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:30}] {pos}/{len} {elapsed}<{eta} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let t0 = Instant::now();
    let mut last_val = f64::NAN;
    let prog = trainer.run(a.resume, &mut |e| match e {
        Event::Start { phase, from, total } => {
            bar.set_prefix(phase);
            bar.set_length(total as u64);
            bar.set_position(from as u64);
            bar.reset_eta();
        }
        Event::Step { step, loss, lr, .. } => {
            bar.set_position(step as u64);
            bar.set_message(format!("loss {loss:.4} lr {lr:.2e} val {last_val:.2} dB"));
        }
        Event::Val(p) => {
            last_val = p.val_psnr;
            bar.println(format!(
                "{:>8} step {:>6}: val PSNR {:.3} dB (loss {:.4})",
                p.phase, p.step, p.val_psnr, p.loss
            ));
        }
    })?;
    bar.finish_and_clear();
    let wall = t0.elapsed().as_secs_f64();
    if !prog.finished {
        println!(
            "stopped at {} step {} after {wall:.0}s; continue with the same options and --resume",
            prog.phase, prog.step
        );
        return Ok(());
    }
    write_atomic(&a.out.join("curve.csv"), curve_csv(&prog.curve).as_bytes())?;
    let final_val = prog
        .curve
        .iter()
        .rev()
        .find(|p| p.phase == "student")
        .map(|p| p.val_psnr);
    let meta = json!({
        "schema_version": spikerc_models::config::META_SCHEMA_VERSION,
        "architecture": "spikerir",
        "dim": arch.dim,
        "levels": arch.levels,
        "en_blocks": arch.en_blocks,
        "de_blocks": arch.de_blocks,
        "time_steps": hp.time_steps,
        "v_threshold": hp.v_threshold,
        "tau": hp.tau,
        "decay_input": hp.decay_input,
        "v_reset": hp.v_reset,
        "mda": {"reduction_t": hp.reduction_t, "reduction_c": hp.reduction_c, "kernel_size": 3},
        "frb_reduction": hp.frb_reduction,
        "training": {
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "task": format!("{:?}", a.task).to_lowercase(),
            "degradation": match degradation { Degradation::Noise { lo, hi } => json!({"sigma": [lo, hi]}), Degradation::Paired => json!("pairs") },
            "data": data.display().to_string(),
            "train_images": train.images.len(),
            "val_data": val_data.display().to_string(),
            "val_images": val.items.len(),
            "val_crop": a.val_crop,
            "val_sigma": val_sigma,
            "config": cfg,
            "wall_ms_this_invocation": wall * 1e3,
            "final_val_psnr_db": final_val,
            "curve_csv": "curve.csv",
        }
    });
    write_atomic(&a.out.join("meta.json"), &serde_json::to_vec_pretty(&meta)?)?;
    println!(
        "trained {} in {:.0}s -> {} (val PSNR {:.3} dB)",
        arch.summary(),
        wall,
        a.out.join("student.safetensors").display(),
        final_val.unwrap_or(f64::NAN)
    );
    Ok(())
}
