//! `spikerc compile WEIGHTS [--config FILE] [--time-steps T] [--precision f32|f16] [--no-winograd] -o OUT`
//! `spikerc compile WEIGHTS --target lynxi[:PRESET|:FILE.toml] [--input-size HxW] -o DIR`
//! (an accelerator deployment directory, f16 by default; see `spikerc-targets`)

use clap::Args as ClapArgs;
use spikerc_compiler::passes::{OptimizeOptions, Precision};
use std::path::PathBuf;

use super::HyperOpts;
use crate::outputs::Outputs;

#[derive(ClapArgs)]
pub struct Args {
    /// Checkpoint: .safetensors or PyTorch .pt state_dict.
    pub weights: PathBuf,
    #[command(flatten)]
    pub hyper: HyperOpts,
    /// Parameter precision of the artifact (default f32; f16 with --target).
    #[arg(long)]
    pub precision: Option<Precision>,
    /// Deploy to an accelerator: `lynxi`, `lynxi:PRESET` (ka200-like, tianjic-like,
    /// loihi-like) or `lynxi:FILE.toml`; OUT is then a directory.
    #[arg(long)]
    pub target: Option<String>,
    /// Fixed input image size of the deployment, HxW (with --target; other sizes are
    /// reflect-padded to the model's multiple).
    #[arg(long, default_value = "256x256", requires = "target")]
    pub input_size: String,
    /// Schedule of the deployment (with --target): layer-serial, pipelined, fused or auto
    /// (the cost model picks per stage and the manifest says why).
    #[arg(long, default_value = "auto", requires = "target")]
    pub schedule: spikerc_targets::Schedule,
    /// Chips on the card (with --target; default: the machine description's `[card]`).
    #[arg(long, requires = "target")]
    pub chips: Option<usize>,
    /// Output artifact file (a directory with --target).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Compute every convolution directly: no Winograd F(2x2, 3x3) for the real-valued 3x3
    /// convolutions (slower on the CPU runtime; plain-convolution rounding).
    #[arg(long)]
    pub no_winograd: bool,
    /// Also write the compile report (passes, quantization error) as JSON.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

impl Args {
    /// The pipeline options, with `default` precision unless `--precision` is given.
    pub fn options(&self, default: Precision) -> OptimizeOptions {
        OptimizeOptions {
            precision: self.precision.unwrap_or(default),
            winograd: !self.no_winograd,
        }
    }
}

impl Args {
    /// The inputs and destinations of this command, checked before any work; `dir_output`
    /// when OUT is a deployment directory.
    pub fn outputs(&self, dir_output: bool) -> anyhow::Result<Outputs> {
        let mut outs = Outputs::new();
        outs.input(&self.weights);
        if let Some(c) = self.hyper.config.clone().or_else(|| super::beside(&self.weights)) {
            outs.input(&c);
        }
        if dir_output {
            outs.claim_replaced_dir(&self.output, "-o")?;
        } else {
            outs.claim(&self.output, "-o")?;
        }
        if let Some(r) = &self.report {
            outs.claim(r, "--report")?;
        }
        Ok(outs)
    }
}

pub fn main(a: Args) -> anyhow::Result<()> {
    if let Some(t) = &a.target {
        return super::simulate::compile_target(&a, t);
    }
    let mut outs = a.outputs(false)?;
    let hp = a.hyper.resolve(Some(&a.weights))?;
    let art = spikerc_models::compile_checkpoint(&a.weights, &hp, a.options(Precision::F32))
        .map_err(|e| a.hyper.hint(&a.weights, e.into()))?;
    let bytes = art.to_bytes();
    if let Some(r) = &a.report {
        outs.write(r, &serde_json::to_vec_pretty(&art.report.document())?)?;
    }
    outs.write(&a.output, &bytes)?;
    outs.commit()?;
    println!(
        "compiled {} -> {} ({}, {}, T={}, {} nodes, {} params, {} bytes)",
        a.weights.display(),
        a.output.display(),
        art.meta.model,
        art.meta.precision,
        art.meta.time_steps,
        art.graph.node_count(),
        art.graph.param_count(),
        bytes.len()
    );
    if let Some(q) = &art.report.quantization {
        println!(
            "f16 quantization: max abs weight error {:.3e}, relative error {:.3e} over {} layers",
            q.max_abs_error,
            q.rel_error,
            q.layers.len()
        );
    }
    Ok(())
}
