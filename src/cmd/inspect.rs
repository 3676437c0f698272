//! `spikerc inspect FILE [--ir] [--json]`: describe a checkpoint or an artifact. The JSON
//! document (`schema_version` [`INSPECT_SCHEMA_VERSION`]) is described in `docs/json.md`.

use clap::Args as ClapArgs;
use serde_json::json;
use spikerc_compiler::{Artifact, Graph};
use spikerc_models::spikerir::{self, Architecture};
use spikerc_models::Checkpoint;
use std::path::PathBuf;

use super::HyperOpts;

#[derive(ClapArgs)]
pub struct Args {
    /// A checkpoint (.safetensors / .pt) or a compiled artifact.
    pub file: PathBuf,
    /// Print the textual IR (for a checkpoint: the imported, unoptimized IR).
    #[arg(long)]
    pub ir: bool,
    /// Machine-readable JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub hyper: HyperOpts,
}

/// Version of the `inspect --json` document.
pub const INSPECT_SCHEMA_VERSION: u32 = 1;

/// A symbolic shape as a JSON array: fixed sides as numbers, symbolic ones (`"N"`, `"H/2"`)
/// as strings.
fn shape_json(s: &spikerc_compiler::ir::Shape) -> serde_json::Value {
    use spikerc_compiler::ir::Dim;
    s.0.iter()
        .map(|d| match d {
            Dim::Fixed(v) => json!(v),
            other => json!(other.to_string()),
        })
        .collect()
}

/// Per-node rows: module path, op, value fact, parameter count.
fn layers(g: &Graph) -> Vec<serde_json::Value> {
    g.topo_order()
        .unwrap_or_default()
        .into_iter()
        .map(|id| {
            let n = g.node(id);
            let params: usize = n.op.params().iter().map(|(_, t)| t.len()).sum();
            json!({"id": id.to_string(), "name": n.name, "op": n.op.mnemonic(), "kind": n.fact.kind.to_string(),
                   "shape": shape_json(&n.fact.shape), "dtype": n.fact.dtype.to_string(), "params": params})
        })
        .collect()
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let bytes = std::fs::read(&a.file)
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", a.file.display()))?;
    if Artifact::sniff(&bytes) {
        let art = Artifact::from_bytes(&bytes, &a.file.display().to_string())?;
        let g = art.graph.graph();
        if a.json {
            let v = json!({"schema_version": INSPECT_SCHEMA_VERSION, "kind": "artifact", "meta": art.meta, "nodes": g.node_count(), "params": g.param_count(),
                           "spatial_divisor": g.spatial_divisor(), "report": art.report.document(), "layers": layers(g),
                           "ir": if a.ir { Some(g.to_text()) } else { None }});
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else if a.ir {
            print!("{}", g.to_text());
        } else {
            println!("artifact {}", a.file.display());
            println!("  model      {}", art.meta.model);
            println!("  source     {}", art.meta.source);
            println!("  precision  {}", art.meta.precision);
            println!("  T          {}", art.meta.time_steps);
            println!("  nodes      {}", g.node_count());
            println!("  params     {}", g.param_count());
            println!("  image side multiple of {}", g.spatial_divisor());
            print_layer_table(g);
        }
        return Ok(());
    }
    let ckpt = Checkpoint::load(&a.file)?;
    let arch = Architecture::infer(&ckpt)?;
    if a.ir {
        let imported = spikerir::import(&ckpt, &a.hyper.resolve(Some(&a.file))?)
            .map_err(|e| a.hyper.hint(&a.file, e.into()))?;
        if a.json {
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({"schema_version": INSPECT_SCHEMA_VERSION, "kind": "checkpoint", "ir": imported.graph.to_text()})
                )?
            );
        } else {
            print!("{}", imported.graph.to_text());
        }
        return Ok(());
    }
    if a.json {
        let tensors: Vec<_> = ckpt
            .tensors
            .iter()
            .map(|(k, t)| json!({"key": k, "dtype": t.dtype.to_lowercase(), "shape": t.shape}))
            .collect();
        let v = json!({"schema_version": INSPECT_SCHEMA_VERSION, "kind": "checkpoint", "architecture": arch, "params": ckpt.param_count(), "tensors": tensors});
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("checkpoint {}", a.file.display());
        println!("  {}", arch.summary());
        println!(
            "  params {} in {} tensors",
            ckpt.param_count(),
            ckpt.tensors.len()
        );
        for (k, t) in &ckpt.tensors {
            println!("  {k:<56} {:<8} {:?}", t.dtype, t.shape);
        }
    }
    Ok(())
}

/// A [`shape_json`] array as the IR prints it: `[N, 16, H/2, W/2]`.
fn shape_text(v: &serde_json::Value) -> String {
    let dims: Vec<String> = v
        .as_array()
        .map(|a| a.iter().map(|d| d.as_str().map_or_else(|| d.to_string(), str::to_string)).collect())
        .unwrap_or_default();
    format!("[{}]", dims.join(", "))
}

fn print_layer_table(g: &Graph) {
    println!(
        "  {:<5} {:<44} {:<12} {:<34} {:>9}",
        "id", "module", "op", "value", "params"
    );
    for row in layers(g) {
        let op = row["op"].as_str().unwrap_or("");
        if matches!(
            op,
            "conv2d"
                | "conv2d.ac"
                | "lif"
                | "input"
                | "output"
                | "upsample2x"
                | "axis_linear"
                | "mean_t"
        ) {
            println!(
                "  {:<5} {:<44} {:<12} {:<34} {:>9}",
                row["id"].as_str().unwrap_or(""),
                row["name"].as_str().unwrap_or(""),
                op,
                format!(
                    "{}<{}>{}",
                    row["kind"].as_str().unwrap_or(""),
                    row["dtype"].as_str().unwrap_or(""),
                    shape_text(&row["shape"])
                ),
                row["params"]
            );
        }
    }
}
