//! The compiler spine through the CLI: `spikerc compile` + `spikerc run --engine interp`
//! reproduce every fixture's golden output and spike counts (from `.safetensors`, and from
//! `.pt` with feature `torch`); `spikerc inspect --ir` prints the textual IR (snapshotted).

mod common;

use common::*;
use spikerc_compiler::interp::Array;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn spikerc(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_spikerc")).args(args).output().unwrap();
    assert!(out.status.success(), "spikerc {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn read_output(path: &Path) -> Array {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("output").unwrap();
    Array::new(t.shape().to_vec(), t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
}

fn compile_and_run(dir: &Path, weights: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let art = tmp.path().join("model.spk");
    let out = tmp.path().join("out.safetensors");
    let stats = tmp.path().join("stats.json");
    let w = dir.join(weights);
    spikerc(&["compile", w.to_str().unwrap(), "--config", dir.join("meta.json").to_str().unwrap(), "-o", art.to_str().unwrap()]);
    let golden_file = dir.join("golden.safetensors");
    spikerc(&["run", art.to_str().unwrap(), "--engine", "interp", "--input", golden_file.to_str().unwrap(), "--output", out.to_str().unwrap(), "--stats", stats.to_str().unwrap()]);
    let gold = golden(dir);
    let d = max_abs_diff(&read_output(&out), &gold.output);
    assert!(d <= 1e-4, "{}/{weights}: output differs by {d}", dir.display());
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&stats).unwrap()).unwrap();
    let spikes: BTreeMap<String, u64> = serde_json::from_value(s["spikes"].clone()).unwrap();
    assert_spikes(weights, &spikes, &gold.spikes);
}

#[test]
fn compile_and_run_interp_reproduce_every_fixture_from_safetensors() {
    for dir in fixtures() {
        compile_and_run(&dir, "model.safetensors");
    }
}

#[cfg(feature = "torch")]
#[test]
fn compile_and_run_interp_reproduce_every_fixture_from_pt() {
    for dir in fixtures() {
        compile_and_run(&dir, "model.pt");
    }
}

#[test]
fn textual_ir_of_the_l3_fixture() {
    let dir = shared_dir().join("fixtures/spikerir-l3-d16");
    let tmp = tempfile::tempdir().unwrap();
    let art = tmp.path().join("l3.spk");
    let f16 = tmp.path().join("l3-f16.spk");
    let w = dir.join("model.safetensors");
    let cfg = dir.join("meta.json");
    spikerc(&["compile", w.to_str().unwrap(), "--config", cfg.to_str().unwrap(), "-o", art.to_str().unwrap()]);
    spikerc(&["compile", w.to_str().unwrap(), "--config", cfg.to_str().unwrap(), "--precision", "f16", "-o", f16.to_str().unwrap()]);
    insta::assert_snapshot!("l3_optimized_ir", spikerc(&["inspect", art.to_str().unwrap(), "--ir"]));
    insta::assert_snapshot!("l3_imported_ir", spikerc(&["inspect", w.to_str().unwrap(), "--config", cfg.to_str().unwrap(), "--ir"]));
    // f16 differs from f32 only in parameter storage and the rounded LIF threshold.
    let f16_ir = spikerc(&["inspect", f16.to_str().unwrap(), "--ir"]);
    assert!(f16_ir.contains("w:f16 b:f16") && !f16_ir.contains("w:f32"));
    assert!(f16_ir.contains("vth=0.15002441"), "threshold rounded to f16");
    let j: serde_json::Value = serde_json::from_str(&spikerc(&["inspect", f16.to_str().unwrap(), "--json"])).unwrap();
    assert_eq!(j["meta"]["precision"], "f16");
    assert_eq!(j["spatial_divisor"], 4);
    let q = &j["report"]["quantization"];
    assert!(q["layers"].as_array().unwrap().len() > 40);
    assert!(q["rel_error"].as_f64().unwrap() < 1e-3);
}
