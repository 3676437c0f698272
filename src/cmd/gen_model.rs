//! `spikerc gen-model --levels 4 --dim 48 --blocks 2 [--time-steps 4] --seed S -o paper.safetensors`
//!
//! Generates the standard benchmark model: a random SpikerIR checkpoint initialised as PyTorch
//! does (`spikerc_models::spikerir::random_checkpoint`) whose BatchNorm running statistics are
//! then calibrated on real image crops (Kodak24, read in place from `$SPIKERC_SHARED`) so every
//! LIF layer fires at a realistic rate (~20-30 %), the recipe of the shared fixtures.
//! Calibration is one forward pass of the event-driven runtime in which every BatchNorm takes
//! its statistics from its own input right before it is applied
//! (`Program::calibrate_batch_norms`). Writes the checkpoint (`.safetensors`, f32) and a
//! `meta.json`-style config beside it (`<output stem>.json`) for `spikerc compile --config`.

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use serde_json::json;
use spikerc_compiler::interp::Array;
use spikerc_compiler::Verified;
use spikerc_models::spikerir::{import, random_checkpoint, Architecture};
use spikerc_models::{Checkpoint, HyperParams};
use spikerc_runtime::{Program, RunOptions};
use std::path::{Path, PathBuf};

use crate::io::read_input;

#[derive(ClapArgs)]
pub struct Args {
    /// U-Net levels.
    #[arg(long, default_value_t = 4)]
    pub levels: usize,
    /// Width of level 1 (doubles per level).
    #[arg(long, default_value_t = 48)]
    pub dim: usize,
    /// Blocks per level, encoder and decoder.
    #[arg(long, default_value_t = 2)]
    pub blocks: usize,
    /// Time steps T.
    #[arg(long, default_value_t = 4)]
    pub time_steps: usize,
    /// Random seed of the weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Calibration images (PNG/JPEG), first N in name order [default: $SPIKERC_SHARED/data/test/Kodak24].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Number of calibration crops.
    #[arg(long, default_value_t = 4)]
    pub calib_images: usize,
    /// Side of the (centre) calibration crops.
    #[arg(long, default_value_t = 128)]
    pub calib_size: usize,
    /// Output checkpoint (.safetensors); the config goes to `<stem>.json` beside it.
    #[arg(short, long)]
    pub output: PathBuf,
}

fn shared_dir() -> PathBuf {
    std::env::var_os("SPIKERC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

/// Centre `size x size` crops of the first `n` images of `dir`, as one batch.
pub(crate) fn calibration_batch(dir: &Path, n: usize, size: usize) -> anyhow::Result<Array> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| {
            format!(
                "{}: cannot list calibration images (use --data or set SPIKERC_SHARED)",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    files.sort();
    if files.len() < n {
        bail!(
            "{}: {} image(s), --calib-images needs {n}",
            dir.display(),
            files.len()
        );
    }
    let mut data = Vec::with_capacity(n * 3 * size * size);
    for f in &files[..n] {
        let img = read_input(f)?;
        let (h, w) = (img.shape[2], img.shape[3]);
        if h < size || w < size {
            bail!(
                "{}: image is {h}x{w}, smaller than --calib-size {size}",
                f.display()
            );
        }
        let (y0, x0) = ((h - size) / 2, (w - size) / 2);
        for c in 0..3 {
            for y in y0..y0 + size {
                let row = c * h * w + y * w + x0;
                data.extend_from_slice(&img.data[row..row + size]);
            }
        }
    }
    Ok(Array::new(vec![n, 3, size, size], data))
}

/// Serialises a checkpoint's f32 tensors as safetensors.
fn safetensors_bytes(ckpt: &Checkpoint) -> anyhow::Result<Vec<u8>> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = ckpt
        .tensors
        .iter()
        .map(|(k, t)| {
            let d = t.data.as_ref().expect("generated tensors hold data");
            (
                k.clone(),
                t.shape.clone(),
                d.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(k, s, b)| {
            Ok((
                k.as_str(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)?,
            ))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    Ok(safetensors::serialize(views, &None)?)
}

pub fn main(a: Args) -> anyhow::Result<()> {
    if a.levels == 0 || a.dim == 0 || a.blocks == 0 || a.time_steps == 0 {
        bail!("--levels, --dim, --blocks and --time-steps must be positive");
    }
    for (flag, v, max) in [("--levels", a.levels, 8), ("--dim", a.dim, 1024), ("--blocks", a.blocks, 16), ("--calib-images", a.calib_images, 4096), ("--calib-size", a.calib_size, 4096)] {
        if v > max {
            bail!("{flag} {v} is larger than the supported {max}");
        }
    }
    let meta_path = a.output.with_extension("json");
    if meta_path == a.output {
        bail!("{}: -o must end in .safetensors (the config is written beside it as .json)", a.output.display());
    }
    let mut outs = crate::outputs::Outputs::new();
    if let Some(d) = &a.data {
        outs.input(d);
    }
    outs.claim(&a.output, "-o")?;
    outs.claim(&meta_path, "the config beside -o")?;
    if a.calib_images == 0 || a.calib_size == 0 || !a.calib_size.is_multiple_of(1 << (a.levels - 1))
    {
        bail!(
            "--calib-images must be positive and --calib-size a multiple of {} (2^(levels-1)), got {}",
            1 << (a.levels - 1),
            a.calib_size
        );
    }
    let arch = Architecture {
        dim: a.dim,
        levels: a.levels,
        en_blocks: vec![a.blocks; a.levels],
        de_blocks: vec![a.blocks; a.levels],
        in_channels: 3,
        out_channels: 3,
    };
    let hp = HyperParams {
        time_steps: a.time_steps,
        ..HyperParams::default()
    };
    hp.validate()?;
    let mut ckpt = random_checkpoint(&arch, &hp, a.seed)?;
    let data = a
        .data
        .clone()
        .unwrap_or_else(|| shared_dir().join("data/test/Kodak24"));
    let batch = calibration_batch(&data, a.calib_images, a.calib_size)?;
    // BatchNorms unfolded: import without optimisation passes.
    let graph = Verified::new(import(&ckpt, &hp)?.graph)?;
    let spinner = crate::progress::Progress::step(&format!("calibrating BatchNorms on {} crops", a.calib_images));
    let (res, stats) =
        Program::new(&graph).calibrate_batch_norms(&batch, &RunOptions::default())?;
    drop(spinner);
    for (module, s) in &stats {
        for (role, v) in [("running_mean", &s.mean), ("running_var", &s.var)] {
            let key = format!("{module}.{role}");
            let t = ckpt
                .tensors
                .get_mut(&key)
                .with_context(|| format!("calibrated BatchNorm {module} has no `{key}`"))?;
            t.data = Some(v.clone());
        }
    }
    let rates: Vec<(String, f64)> = res
        .spikes
        .iter()
        .map(|(m, s)| {
            (
                m.clone(),
                *s as f64 / res.ops[m].neuron_updates.max(1) as f64,
            )
        })
        .collect();
    let total = res.total_ops();
    let mean_rate = total.spikes_out as f64 / total.neuron_updates.max(1) as f64;
    let (lo, hi) = rates.iter().fold((f64::MAX, 0f64), |(lo, hi), (_, r)| {
        (lo.min(*r), hi.max(*r))
    });
    outs.write(&a.output, &safetensors_bytes(&ckpt)?)?;
    let meta = json!({
        "schema_version": spikerc_models::config::META_SCHEMA_VERSION,
        "architecture": "spikerir", "dim": a.dim, "levels": a.levels,
        "en_blocks": arch.en_blocks, "de_blocks": arch.de_blocks, "time_steps": a.time_steps,
        "v_threshold": hp.v_threshold, "tau": hp.tau, "decay_input": hp.decay_input, "v_reset": hp.v_reset,
        "mda": {"reduction_t": hp.reduction_t, "reduction_c": hp.reduction_c}, "frb_reduction": hp.frb_reduction,
        "seed": a.seed, "params": ckpt.param_count(),
        "calibration": {"images": data.display().to_string(), "count": a.calib_images, "crop": a.calib_size,
                        "batch_norms": stats.len()},
        "mean_firing_rate": mean_rate, "min_layer_firing_rate": lo, "max_layer_firing_rate": hi,
    });
    outs.write(&meta_path, &serde_json::to_vec_pretty(&meta)?)?;
    outs.commit()?;
    println!(
        "generated {} ({}, {} params, {} BatchNorms calibrated on {} crop(s) {}x{}; firing rate {:.3}, layers {:.3}..{:.3}); config {}",
        a.output.display(),
        arch.summary(),
        ckpt.param_count(),
        stats.len(),
        a.calib_images,
        a.calib_size,
        a.calib_size,
        mean_rate,
        lo,
        hi,
        meta_path.display()
    );
    Ok(())
}
