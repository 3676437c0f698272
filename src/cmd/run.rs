//! `spikerc run ARTIFACT --input IN --output OUT [--engine interp] [--stats FILE]`

use anyhow::Context;
use clap::{Args as ClapArgs, ValueEnum};
use serde_json::json;
use spikerc_compiler::{interp, Artifact};
use std::path::PathBuf;

use crate::io::{read_input, write_atomic, write_output};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Engine {
    /// The reference interpreter (the oracle; slow).
    Interp,
}

#[derive(ClapArgs)]
pub struct Args {
    /// Compiled artifact.
    pub artifact: PathBuf,
    /// Input: .safetensors (tensor `input`, [N,3,H,W] f32 in [0,1]) or an image (PNG/JPEG).
    #[arg(long)]
    pub input: PathBuf,
    /// Output: .safetensors (tensor `output`) or an image.
    #[arg(long)]
    pub output: PathBuf,
    #[arg(long, value_enum, default_value = "interp")]
    pub engine: Engine,
    /// Write spike counts per LIF module (and neuron updates) as JSON.
    #[arg(long)]
    pub stats: Option<PathBuf>,
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let art = Artifact::load(&a.artifact)?;
    let input = read_input(&a.input)?;
    let div = art.graph.spatial_divisor();
    let (h, w) = (
        input.shape.get(2).copied().unwrap_or(0),
        input.shape.get(3).copied().unwrap_or(0),
    );
    let padded = input.pad_reflect_to_multiple(div);
    let exec = match a.engine {
        Engine::Interp => interp::run(&art.graph, &padded)?,
    };
    let out = exec.outputs[0].crop(h, w);
    let stats = a.stats.as_ref().map(|_| {
        json!({"engine": format!("{:?}", a.engine).to_lowercase(), "spikes": exec.spikes, "neurons": exec.neurons,
               "input_shape": input.shape, "padded_shape": padded.shape})
    });
    write_output(&a.output, &out).with_context(|| format!("writing {}", a.output.display()))?;
    if let (Some(p), Some(s)) = (&a.stats, stats) {
        write_atomic(p, &serde_json::to_vec_pretty(&s)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    let total: u64 = exec.spikes.values().sum();
    let neurons: u64 = exec.neurons.values().sum();
    println!(
        "ran {} on {:?} -> {} ({} spikes, firing rate {:.3})",
        a.artifact.display(),
        input.shape,
        a.output.display(),
        total,
        total as f64 / neurons.max(1) as f64
    );
    Ok(())
}
