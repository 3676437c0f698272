//! The shipped trained models (`models/trained/denoise-l3-d16`, the demo's, and the smaller
//! `denoise-l3-d8`): each checkpoint compiles with its
//! `meta.json`, the f16 artifact really denoises a CBSD68 image through the runtime, and (with
//! feature `torch`) scores within 0.05 dB of the libtorch f32 reference.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn ok(args: &[&str]) {
    let o = Command::new(env!("CARGO_BIN_EXE_spikerc"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "spikerc {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mean_psnr(p: &Path) -> f64 {
    let v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    v["mean_psnr_db"].as_f64().unwrap()
}

#[test]
fn shipped_d16_compiles_to_f16_and_denoises() {
    compiles_to_f16_and_denoises("denoise-l3-d16", 27.0);
}

#[test]
fn shipped_d8_compiles_to_f16_and_denoises() {
    compiles_to_f16_and_denoises("denoise-l3-d8", 25.0);
}

/// One CBSD68 image at sigma 25 (noisy: about 20.5 dB): the f16 artifact on the runtime scores
/// above `floor` dB and, with libtorch, within 0.05 dB of the f32 checkpoint.
fn compiles_to_f16_and_denoises(name: &str, floor: f64) {
    let m = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/trained").join(name);
    let d = tempfile::tempdir().unwrap();
    let art = d.path().join("m16.spk");
    ok(&[
        "compile",
        s(&m.join("model.safetensors")),
        "--config",
        s(&m.join("meta.json")),
        "--precision",
        "f16",
        "-o",
        s(&art),
    ]);
    let data = common::shared_dir().join("data/test/CBSD68");
    let j16 = d.path().join("f16.json");
    ok(&[
        "eval",
        s(&art),
        "--data",
        s(&data),
        "--limit",
        "1",
        "--quiet",
        "--json",
        s(&j16),
    ]);
    let p16 = mean_psnr(&j16);
    assert!(p16 > floor, "{name}: f16 artifact PSNR {p16}");
    #[cfg(feature = "torch")]
    {
        let jt = d.path().join("t.json");
        ok(&[
            "eval",
            s(&m.join("model.safetensors")),
            "--config",
            s(&m.join("meta.json")),
            "--data",
            s(&data),
            "--limit",
            "1",
            "--quiet",
            "--json",
            s(&jt),
        ]);
        let pt = mean_psnr(&jt);
        assert!(
            (pt - p16).abs() < 0.05,
            "{name}: deployment loss {} dB (torch f32 {pt}, f16 {p16})",
            pt - p16
        );
    }
}
