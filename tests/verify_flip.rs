//! `verify --layerwise` tells an accumulation-order flip from a bug, on a model no fixture
//! covers: a calibrated `gen-model` SpikerIR with 4 levels, dim 24, T = 8, on 32x32 crops.
//!
//! * Flip: crops of the built-in image are searched until libtorch and the artifact differ in
//!   a spike; every such run must be classified `flip` (never `mismatch`: the artifact is a
//!   valid evaluation of its checkpoint), name the first flipping module and neuron with its
//!   margin within the bound, and agree layer-wise in every module.
//! * Bug: an artifact compiled from the checkpoint with one weight of
//!   `encoder_level1.0.residual.1` changed by +0.5 is a `mismatch`, and the layer-wise check
//!   names a module of `encoder_level1.0.residual`.
#![cfg(feature = "torch")]

mod common;
#[path = "golden/weights.rs"]
mod weights;

use serde_json::Value;
use spikerc_compiler::interp::Array;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn spikerc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spikerc"))
        .args(args)
        .env("SPIKERC_SHARED", common::shared_dir())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Writes `x` as a `.safetensors` input.
fn write_input(p: &Path, x: &Array) {
    let bytes: Vec<u8> = x.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, x.shape.clone(), &bytes).unwrap();
    std::fs::write(p, safetensors::serialize([("input", view)], &None).unwrap()).unwrap();
}

/// A 32x32 crop of the built-in image at (y0, x0).
fn crop(img: &Array, y0: usize, x0: usize) -> Array {
    let (h, w) = (img.shape[2], img.shape[3]);
    let mut d = Vec::with_capacity(3 * 32 * 32);
    for c in 0..3 {
        for y in y0..y0 + 32 {
            let row = c * h * w + y * w + x0;
            d.extend_from_slice(&img.data[row..row + 32]);
        }
    }
    Array::new(vec![1, 3, 32, 32], d)
}

fn gen_model(dir: &Path, seed: u64) -> (PathBuf, PathBuf) {
    let m = dir.join(format!("m{seed}.safetensors"));
    let o = spikerc(&[
        "gen-model", "--levels", "4", "--dim", "24", "--blocks", "1", "--time-steps", "8",
        "--seed", &seed.to_string(), "--calib-images", "2", "--calib-size", "32", "-o", m.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    (m.clone(), m.with_extension("json"))
}

fn verify(weights: &Path, config: &Path, input: &Path, json: &Path, extra: &[&str]) -> (Output, Value) {
    let mut args = vec![
        "verify", weights.to_str().unwrap(), "--config", config.to_str().unwrap(),
        "--input", input.to_str().unwrap(), "--json", json.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = spikerc(&args);
    let j: Value = serde_json::from_slice(&std::fs::read(json).unwrap_or_default()).unwrap_or(Value::Null);
    (o, j)
}

#[test]
fn an_accumulation_order_flip_is_a_flip_and_agrees_layerwise() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let img = spikerc_check::assets::builtin_image().unwrap();
    let input = t.join("x.safetensors");
    let json = t.join("v.json");
    let mut found = None;
    let mut tried = 0;
    'search: for seed in [1u64, 2, 3] {
        let (m, cfg) = gen_model(t, seed);
        for (y0, x0) in [(0, 0), (64, 96), (32, 48), (0, 96), (64, 0), (16, 24), (48, 72), (8, 64)] {
            tried += 1;
            write_input(&input, &crop(&img, y0, x0));
            let (o, j) = verify(&m, &cfg, &input, &json, &[]);
            let verdict = j["verdict"].as_str().unwrap_or("?").to_string();
            assert_ne!(verdict, "mismatch", "a valid artifact was called a mismatch (seed {seed}, crop {y0},{x0}):\n{}", text(&o));
            assert!(o.status.success(), "{}", text(&o));
            if verdict == "flip" {
                found = Some((m, cfg, seed, y0, x0));
                break 'search;
            }
        }
    }
    let (m, cfg, seed, y0, x0) = found.unwrap_or_else(|| panic!("no accumulation-order flip in {tried} runs"));
    write_input(&input, &crop(&img, y0, x0));
    let (o, j) = verify(&m, &cfg, &input, &json, &["--layerwise"]);
    let out = text(&o);
    assert!(o.status.success(), "seed {seed}, crop {y0},{x0}: {out}");
    assert_eq!(j["verdict"], "flip", "{out}");
    let fd = &j["first_divergence"];
    let module = fd["module"].as_str().unwrap();
    assert!(module.contains('.'), "{module}");
    let n = &fd["neurons"][0];
    for k in ["t", "n", "c", "y", "x", "margin", "bound"] {
        assert!(n[k].is_number(), "neuron field {k}: {fd}");
    }
    let (margin, bound) = (n["margin"].as_f64().unwrap(), n["bound"].as_f64().unwrap());
    // The free-run bound is carried from the image through every real-valued op (measured
    // 1.9e-4 at this model's flip in up2_1.up.0, the attention means dominating): it holds
    // the flip and is far below a real bug's margins (the changed weight below: 2.5e-2 and up).
    assert!(margin.abs() <= bound && bound < 1e-3, "margin {margin:e}, bound {bound:e}");
    assert_eq!(j["layerwise"]["disagreeing"], serde_json::json!([]), "{out}");
    // Every LIF module of this seeded L4 model (one block per level: 25 LIF modules) is compared.
    assert_eq!(j["layerwise"]["checked"].as_u64().unwrap(), 25, "{}", j["layerwise"]);
    assert!(out.contains(&format!("of {module} at t=")), "{out}");
    assert!(out.contains("an accumulation-order flip; every module agrees layer-wise"), "{out}");
    eprintln!("{out}");
}

#[test]
fn a_changed_weight_is_a_mismatch_located_in_its_module() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (m, cfg) = gen_model(t, 1);
    let img = spikerc_check::assets::builtin_image().unwrap();
    let input = t.join("x.safetensors");
    write_input(&input, &crop(&img, 32, 48));
    let json = t.join("v.json");
    // The centre tap of output channel 0 from input channel `ci`: the first input channel
    // whose spikes reach it (a silent channel's weights change nothing).
    let mut result = None;
    for ci in [5usize, 11, 17, 2] {
        let changed = t.join("changed.safetensors");
        weights::copy_with_change(&m, &changed, "encoder_level1.0.residual.1.weight", |v| v[(ci * 3 + 1) * 3 + 1] += 0.5);
        let art = t.join("changed.spk");
        let o = spikerc(&["compile", changed.to_str().unwrap(), "--config", cfg.to_str().unwrap(), "-o", art.to_str().unwrap()]);
        assert!(o.status.success(), "{}", text(&o));
        let (o, j) = verify(&m, &cfg, &input, &json, &["--artifact", art.to_str().unwrap(), "--layerwise"]);
        if j["verdict"] != "pass" {
            result = Some((o, j));
            break;
        }
    }
    let (o, j) = result.expect("some input channel of encoder_level1.0.residual.0 spikes");
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert_eq!(j["verdict"], "mismatch", "{out}");
    assert!(out.contains("error: verification FAILED (mismatch)"), "{out}");
    let lw: Vec<&str> = j["layerwise"]["disagreeing"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(lw.iter().any(|m| m.starts_with("encoder_level1.0.residual")), "{lw:?}\n{out}");
    assert!(!lw.iter().any(|m| m.starts_with("decoder_level1")), "downstream modules agree layer-wise: {lw:?}");
    let fd = j["first_divergence"]["module"].as_str().unwrap();
    assert!(fd.starts_with("encoder_level1.0.residual"), "{fd}");
    assert!(j["first_divergence"]["beyond_bound"].as_u64().unwrap() > 0);
    eprintln!("{out}");
}
