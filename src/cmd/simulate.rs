//! `spikerc simulate DIR --input IN [--output OUT] --report REPORT.json [--report-html FILE]`
//! and the `--target` half of `spikerc compile` (building a deployment directory).
//!
//! The simulator runs the deployed artifact with the runtime's kernels (the output equals
//! `spikerc run` of the same artifact bit for bit) and prints latency, energy per image, the
//! paper's Eq. 1 figure, the ANN-equivalent figure and where the energy goes.

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use spikerc_compiler::passes::Precision;
use spikerc_compiler::Artifact;
use spikerc_targets::lynxi::{self, kib};
use spikerc_targets::{SimOptions, TargetSpec};
use std::path::{Path, PathBuf};

use crate::io::{check_output_path, encode_output, is_deep_image, read_input};
use crate::outputs::Outputs;

#[derive(ClapArgs)]
pub struct Args {
    /// Deployment directory written by `spikerc compile --target lynxi...`.
    pub dir: PathBuf,
    /// Input: .safetensors (tensor `input`, [N,3,H,W]) or an image, of the deployed size.
    #[arg(long)]
    pub input: PathBuf,
    /// Output: .safetensors (tensor `output`) or an image.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Report (JSON).
    #[arg(long)]
    pub report: PathBuf,
    /// Report as a self-contained HTML page with charts.
    #[arg(long)]
    pub report_html: Option<PathBuf>,
    /// Runtime worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Modules listed in the printed table.
    #[arg(long, default_value_t = 12)]
    pub top: usize,
}

/// Parses `HxW`.
pub fn parse_size(s: &str) -> anyhow::Result<[usize; 2]> {
    let (h, w) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("--input-size `{s}`: expected HxW, e.g. 256x256"))?;
    let p = |v: &str| {
        v.trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .with_context(|| format!("--input-size `{s}`: `{v}` is not a positive integer"))
    };
    Ok([p(h)?, p(w)?])
}

/// `spikerc compile WEIGHTS --target ... -o DIR`.
pub fn compile_target(a: &super::compile::Args, target: &str) -> anyhow::Result<()> {
    let spec = TargetSpec::parse(target).map_err(anyhow::Error::msg)?;
    let (mut machine, label) = spec.load()?;
    if let Some(n) = a.chips {
        if n == 0 || n > spikerc_targets::machine::MAX_CHIPS {
            bail!(
                "--chips {n}: must be between 1 and {}",
                spikerc_targets::machine::MAX_CHIPS
            );
        }
        machine = machine.with_chips(n);
    }
    let size = parse_size(&a.input_size)?;
    let mut outs = a.outputs(true)?;
    let bytes = std::fs::read(&a.weights)
        .with_context(|| format!("{}: cannot read", a.weights.display()))?;
    let art = if Artifact::sniff(&bytes) {
        if a.precision.is_some() || a.no_winograd {
            bail!(
                "{}: is a compiled artifact; --precision and --no-winograd apply to checkpoints only",
                a.weights.display()
            );
        }
        Artifact::from_bytes(&bytes, &a.weights.display().to_string())?
    } else {
        let hp = a.hyper.resolve(Some(&a.weights))?;
        spikerc_models::compile_checkpoint(&a.weights, &hp, a.options(Precision::F16))
            .map_err(|e| a.hyper.hint(&a.weights, e.into()))?
    };
    let spinner = crate::progress::Progress::step("mapping onto the accelerator");
    let dep = lynxi::compile_with(
        &art,
        &machine,
        &lynxi::Options {
            input_size: size,
            preset: label.clone(),
        },
        a.schedule,
    )?;
    drop(spinner);
    if let Some(r) = &a.report {
        outs.write(r, &serde_json::to_vec_pretty(&art.report.document())?)?;
    }
    dep.write_dir(&a.output)?;
    outs.commit()?;
    let s = &dep.manifest.summary;
    let [dh, dw] = dep.manifest.model.input_size;
    println!(
        "deployed {} -> {}/ ({}, {} chip(s), {}, {}x{}{}, T={}, schedule {})",
        a.weights.display(),
        a.output.display(),
        label,
        s.chips,
        art.meta.precision,
        size[0],
        size[1],
        if [dh, dw] != size {
            format!(" run as {dh}x{dw}")
        } else {
            String::new()
        },
        art.meta.time_steps,
        a.schedule
    );
    println!(
        "  {} layers in {} slices on {} of {} cores; weights {} ({:.1} % of weight SRAM); {} tensors buffered on chip, {} staged in DRAM ({})",
        s.layers,
        s.slices,
        s.cores_used,
        s.cores_total,
        kib(s.weight_bytes),
        100.0 * s.weight_sram_fill,
        s.edges_sram,
        s.edges_dram,
        kib(s.dram_staging_bytes)
    );
    let modes = dep
        .manifest
        .stages
        .iter()
        .fold(std::collections::BTreeMap::<String, usize>::new(), |mut m, st| {
            *m.entry(format!("{:?}", st.mode).to_lowercase()).or_default() += 1;
            m
        });
    println!(
        "  {} stages ({}); estimated hops per spike {:.2} (serpentine walk {:.2}), per byte of all traffic {:.2} ({:.2})",
        s.stages,
        modes
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", "),
        s.hops_per_spike,
        s.hops_per_spike_serpentine,
        s.hops_per_byte,
        s.hops_per_byte_serpentine
    );
    Ok(())
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let mut outs = Outputs::new();
    outs.input(&a.dir).input(&a.input);
    for f in ["manifest.json", "weights.bin", "routes.bin", "model.spk"] {
        outs.input(&a.dir.join(f));
    }
    if let Some(o) = &a.output {
        check_output_path(o)?;
        outs.claim(o, "--output")?;
    }
    outs.claim(&a.report, "--report")?;
    if let Some(p) = &a.report_html {
        outs.claim(p, "--report-html")?;
    }
    let dep = lynxi::load_dir(&a.dir)?;
    let input = read_input(&a.input)?;
    if input.shape.len() != 4 {
        bail!(
            "{}: input has shape {:?}, expected [N, 3, H, W]",
            a.input.display(),
            input.shape
        );
    }
    let (h, w) = (input.shape[2], input.shape[3]);
    let padded = input.pad_reflect_to_multiple(dep.artifact.graph.spatial_divisor());
    let spinner = crate::progress::Progress::step("simulating");
    let sim = spikerc_targets::sim::simulate_image(
        &dep,
        &padded,
        &SimOptions { threads: a.threads },
        Some([h, w]),
    )
        .with_context(|| format!("simulating {} on {}", a.dir.display(), a.input.display()))?;
    drop(spinner);
    let json = serde_json::to_vec_pretty(&sim.report.document())?;
    if let Some(o) = &a.output {
        outs.write(o, &encode_output(o, &sim.outputs[0].crop(h, w), is_deep_image(&a.input))?)?;
    }
    outs.write(&a.report, &json)?;
    if let Some(p) = &a.report_html {
        outs.write(p, sim.report.html().as_bytes())?;
    }
    outs.commit()?;
    print!("{}", sim.report.table(a.top));
    println!(
        "report: {}{}",
        a.report.display(),
        a.report_html
            .as_deref()
            .map(|p: &Path| format!(", {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}
