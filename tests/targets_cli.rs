//! `spikerc compile --target lynxi...` and `spikerc simulate` end to end.

mod common;

use std::path::Path;
use std::process::Command;

fn spikerc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_spikerc"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = spikerc(args);
    assert!(
        o.status.success(),
        "spikerc {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn compile_target_then_simulate_matches_spikerc_run_and_writes_reports() {
    let fx = common::fixtures()
        .into_iter()
        .find(|d| d.ends_with("spikerir-l3-d16"))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (w, cfg, golden) = (
        fx.join("model.safetensors"),
        fx.join("meta.json"),
        fx.join("golden.safetensors"),
    );
    let out = ok(&[
        "compile",
        s(&w),
        "--config",
        s(&cfg),
        "--target",
        "lynxi:tianjic-like",
        "--chips",
        "2",
        "--schedule",
        "fused",
        "--input-size",
        "48x64",
        "-o",
        s(&t.join("dep")),
    ]);
    assert!(out.contains("tianjic-like, 2 chip(s)") && out.contains("schedule fused"), "{out}");
    ok(&[
        "compile",
        s(&w),
        "--config",
        s(&cfg),
        "--precision",
        "f16",
        "-o",
        s(&t.join("a.spk")),
    ]);
    let table = ok(&[
        "simulate",
        s(&t.join("dep")),
        "--input",
        s(&golden),
        "--output",
        s(&t.join("sim.safetensors")),
        "--report",
        s(&t.join("r.json")),
        "--report-html",
        s(&t.join("r.html")),
    ]);
    assert!(
        table.contains("energy per image") && table.contains("SNN/ANN"),
        "{table}"
    );
    ok(&[
        "run",
        s(&t.join("a.spk")),
        "--input",
        s(&golden),
        "--output",
        s(&t.join("run.safetensors")),
    ]);
    assert!(
        std::fs::read(t.join("sim.safetensors")).unwrap()
            == std::fs::read(t.join("run.safetensors")).unwrap(),
        "simulate and run outputs differ"
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.join("r.json")).unwrap()).unwrap();
    for k in [
        "energy_pj",
        "paper_energy_pj",
        "ann_equivalent_energy_pj",
        "latency_cycles",
        "latency_ms",
        "ops",
        "modules",
        "cores",
    ] {
        assert!(r.get(k).is_some(), "report lacks {k}");
    }
    for k in ["ac", "mac", "neuron_updates"] {
        assert!(r["ops"][k].as_u64().unwrap() > 0, "ops.{k}");
    }
    let m = &r["modules"].as_array().unwrap()[1];
    for k in ["name", "ac", "mac", "firing_rate", "energy_pj"] {
        assert!(m.get(k).is_some(), "module lacks {k}");
    }
    for k in ["schedule", "chips", "lower_bound", "stages", "layers", "dram_tensors", "assumed_values", "step_cycles"] {
        assert!(r.get(k).is_some(), "report lacks {k}");
    }
    assert_eq!(r["schedule"], "fused");
    assert_eq!(r["chips"], 2);
    assert!(r["ops"].get("chip_link_bytes").is_some());
    let html = std::fs::read_to_string(t.join("r.html")).unwrap();
    assert!(
        html.contains("<svg")
            && html.contains("Core map")
            && html.contains("Firing rate by LIF population")
            && html.contains("Latency per time step")
            && html.contains("Timeline")
            && html.contains("5-10 %")
            && html.contains("35-50 %")
    );
    // Self-contained: the only URLs are SVG namespace names.
    assert_eq!(
        html.matches("http").count(),
        html.matches("http://www.w3.org/2000/svg").count()
    );
    assert!(!html.contains("<script") && !html.contains("src=\""));
}

#[test]
fn an_impossible_mapping_is_one_clear_error_and_leaves_nothing() {
    let fx = common::fixtures()
        .into_iter()
        .find(|d| d.ends_with("spikerir-l3-d16"))
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let text = spikerc_targets::machine::PRESETS[0]
        .1
        .replace("weight_sram_bytes = 262144", "weight_sram_bytes = 1024");
    std::fs::write(t.join("tiny.toml"), text).unwrap();
    let target = format!("lynxi:{}", s(&t.join("tiny.toml")));
    let o = spikerc(&[
        "compile",
        s(&fx.join("model.safetensors")),
        "--config",
        s(&fx.join("meta.json")),
        "--target",
        &target,
        "--input-size",
        "48x64",
        "-o",
        s(&t.join("dep")),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: encoder_level3.0.residual.1: smallest slice (1 output channel) needs 1.1 KiB of weights, core weight SRAM is 1 KiB"), "{err}");
    assert!(!t.join("dep").exists());
    let o = spikerc(&[
        "compile",
        s(&fx.join("model.safetensors")),
        "--target",
        "lynxi:ka999",
        "-o",
        s(&t.join("dep")),
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("error: unknown preset `ka999`"));
    let o = spikerc(&[
        "compile",
        s(&fx.join("model.safetensors")),
        "--target",
        "lynxi",
        "--schedule",
        "fastest",
        "-o",
        s(&t.join("dep")),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unknown schedule `fastest`"), "{err}");
    assert!(!t.join("dep").exists());
    // A deployment for 48x64 refuses a 64x64 input.
    ok(&[
        "compile",
        s(&fx.join("model.safetensors")),
        "--config",
        s(&fx.join("meta.json")),
        "--target",
        "lynxi",
        "--input-size",
        "50x60",
        "-o",
        s(&t.join("dep")),
    ]);
    let o = spikerc(&[
        "simulate",
        s(&t.join("dep")),
        "--input",
        s(&fx.join("golden.safetensors")),
        "--report",
        s(&t.join("r.json")),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "the deployment runs images of 49-52 x 57-60 (reflect-padded to 52x60; compiled with --input-size); the input is 48x64: recompile with --input-size 48x64"
        ),
        "{err}"
    );
    assert!(!t.join("r.json").exists());
}
