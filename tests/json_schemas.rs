//! The schema of every JSON document the CLI writes, as insta snapshots (docs/json.md
//! describes each field): every field path with its JSON type, values left out, so a renamed,
//! added or retyped field shows in review. Maps keyed by module paths or actions are shown by
//! one entry (`{*}`), arrays by their first element (`[]`). Also checked here: the naming
//! scheme (units in names, byte counts integers, lowercase enums, shapes as arrays).

mod common;

use common::{ok, s};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    common::shared_dir().join("fixtures/spikerir-l3-d16")
}

/// Objects whose keys are data (module paths, actions, parameter names), not field names.
const MAPS: [&str; 4] = ["spikes", "modules", "energy_by_action_pj", "assumed_values"];

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_u64() || n.is_i64() => "int",
        Value::Number(_) => "float",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `path: type` lines of `v`.
fn schema(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            let last = path.rsplit('.').next().unwrap_or("");
            if MAPS.contains(&last) {
                out.push(format!("{path}: map"));
                if let Some((_, first)) = m.iter().next() {
                    schema(first, &format!("{path}.{{*}}"), out);
                }
                return;
            }
            for (k, x) in m {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                schema(x, &p, out);
            }
        }
        Value::Array(a) => {
            out.push(format!("{path}: array"));
            if let Some(first) = a.first() {
                schema(first, &format!("{path}[]"), out);
            }
        }
        _ => out.push(format!("{path}: {}", kind(v))),
    }
}

fn schema_of(v: &Value) -> String {
    let mut out = vec![];
    schema(v, "", &mut out);
    out.join("\n")
}

fn read(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// The naming scheme over a whole document: every `*_bytes` is an integer, no field is named
/// like a bare unit-less energy or PSNR, enums are lowercase.
fn check_names(v: &Value, path: &str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{path}.{k}");
                if k.ends_with("_bytes") {
                    assert!(x.is_u64(), "{p} = {x}: byte counts are integers");
                }
                assert!(k != "psnr" && k != "snn_ann_ratio" && k != "seconds" && k != "energy_by_action", "{p}: name without its unit");
                if k == "precision" || k == "engine" || k == "dtype" {
                    let s = x.as_str().unwrap_or("");
                    assert_eq!(s, s.to_lowercase(), "{p}: enums are lowercase");
                }
                if k == "shape" {
                    assert!(x.is_array(), "{p}: shapes are arrays");
                }
                if !MAPS.contains(&k.as_str()) {
                    check_names(x, &p); // map keys are data (module paths, parameter names)
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| check_names(x, path)),
        _ => {}
    }
}

fn snap(name: &str, v: &Value) {
    assert_eq!(v["schema_version"], 1, "{name}: schema_version");
    check_names(v, name);
    insta::assert_snapshot!(name, schema_of(v));
}

#[test]
fn every_document_has_a_schema_version_and_a_stable_schema() {
    let d = tempfile::tempdir().unwrap();
    let fx = fixture();
    let j = |n: &str| d.path().join(n);
    let images = j("images");
    std::fs::create_dir_all(&images).unwrap();
    for (k, w) in [21u32, 24].into_iter().enumerate() {
        image::RgbImage::from_fn(w, 19, |x, y| image::Rgb([(x * 11) as u8, (y * 13 + k as u32 * 50) as u8, 77]))
            .save(images.join(format!("im{k}.png")))
            .unwrap();
    }
    let art = j("m.spk");
    let weights = fx.join("model.safetensors");
    ok(&["compile", s(&weights), "--config", s(&fx.join("meta.json")), "--precision", "f16", "--report", s(&j("compile.json")), "-o", s(&art)]);
    snap("compile_report", &read(&j("compile.json")));

    let o = ok(&["inspect", s(&art), "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["meta"]["precision"], "f16");
    snap("inspect_artifact", &v);
    let o = ok(&["inspect", s(&weights), "--json"]);
    snap("inspect_checkpoint", &serde_json::from_slice(&o.stdout).unwrap());

    ok(&["run", s(&art), "--input", s(&images), "--output", s(&j("out")), "--stats", s(&j("stats.json"))]);
    let st = read(&j("stats.json"));
    assert!(st["threads"].as_u64().unwrap() >= 1, "the threads used, not the flag's 0");
    assert_eq!(st["images"].as_array().unwrap().len(), 2, "one entry per file");
    snap("run_stats", &st);

    ok(&["eval", s(&art), "--data", s(&images), "--quiet", "--threads", "1", "--json", s(&j("eval.json"))]);
    snap("eval", &read(&j("eval.json")));

    let dep = j("dep");
    ok(&["compile", s(&weights), "--config", s(&fx.join("meta.json")), "--target", "lynxi:ka200-like", "--input-size", "19x21", "-o", s(&dep)]);
    ok(&["simulate", s(&dep), "--input", s(&images.join("im0.png")), "--report", s(&j("sim.json"))]);
    let sim = read(&j("sim.json"));
    assert_eq!(sim["image_size"], serde_json::json!([19, 21]));
    snap("simulate_report", &sim);
}
