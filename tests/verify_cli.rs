//! `spikerc verify`: passes on every shared fixture from `.pt` and `.safetensors` (f32 and
//! f16), and fails with a readable diff when the artifact was compiled from a copy of the
//! checkpoint with one weight changed.
#![cfg(feature = "torch")]

mod common;
#[path = "golden/weights.rs"]
mod weights;

use common::fixtures;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use weights::copy_with_change;

fn spikerc(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spikerc"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn verify(weights: &Path, dir: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<std::ffi::OsString> = vec!["verify".into(), weights.into()];
    args.push("--config".into());
    args.push(dir.join("meta.json").into());
    args.extend(extra.iter().map(Into::into));
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    spikerc(&refs)
}

#[test]
fn every_fixture_verifies_from_pt_and_safetensors() {
    for dir in fixtures() {
        let golden = dir.join("golden.safetensors");
        for w in ["model.pt", "model.safetensors"] {
            let o = verify(&dir.join(w), &dir, &["--input", golden.to_str().unwrap()]);
            let (out, err) = text(&o);
            assert!(o.status.success(), "{}/{w}: {out}{err}", dir.display());
            // On the fixture inputs the artifact is spike-exact and within 1e-4.
            assert!(out.contains("every module equal"), "{out}");
            assert!(out.contains("tolerance 1e-4, spike-exact"), "{out}");
            assert!(out.contains("spikes: every LIF module's spike tensor equals the reference's"), "{out}");
            assert!(out.trim_end().ends_with("verdict: pass"), "{out}");
        }
    }
}

#[test]
fn builtin_image_and_f16_verify_with_a_json_report() {
    let dir = &fixtures()[0];
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("r.json");
    for precision in ["f32", "f16"] {
        let o = verify(
            &dir.join("model.pt"),
            dir,
            &[
                "--precision",
                precision,
                "--report",
                report.to_str().unwrap(),
            ],
        );
        let (out, err) = text(&o);
        assert!(o.status.success(), "{precision}: {out}{err}");
        assert!(
            out.contains("built-in kodim23 crop 128x96 [1, 3, 96, 128]"),
            "{out}"
        );
        let j: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        assert_eq!(j["pass"], true);
        assert_ne!(j["verdict"], "mismatch", "{out}");
        assert_eq!(j["precision"], precision);
        assert!(j["comparison"]["spikes"].as_array().unwrap().len() > 10);
    }
}

fn compile(weights: &Path, dir: &Path, out: &Path) {
    let o = spikerc(&[
        "compile".as_ref(),
        weights.as_os_str(),
        "--config".as_ref(),
        dir.join("meta.json").as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(o.status.success(), "{:?}", text(&o));
}

fn changed_artifact(dir: &Path, tmp: &Path, key: &str, f: impl Fn(&mut [f32])) -> PathBuf {
    let copy = tmp.join(format!("{key}.safetensors"));
    copy_with_change(&dir.join("model.safetensors"), &copy, key, f);
    let art = tmp.join(format!("{key}.spk"));
    compile(&copy, dir, &art);
    art
}

#[test]
fn one_changed_weight_fails_with_a_readable_diff() {
    let dir = &fixtures()[0];
    let tmp = tempfile::tempdir().unwrap();
    let golden = dir.join("golden.safetensors");
    let input = golden.to_str().unwrap();

    // The output bias: no spike moves, the output does.
    let art = changed_artifact(dir, tmp.path(), "output.0.bias", |v| v[1] += 0.01);
    let o = verify(
        &dir.join("model.pt"),
        dir,
        &["--artifact", art.to_str().unwrap(), "--input", input],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        err.starts_with("error: verification FAILED (mismatch): output max abs diff 1.000e-2 > 1e-4 although every spike count is equal"),
        "{err}"
    );
    assert!(out.contains("verdict: mismatch"), "{out}");
    assert!(out.contains("every module equal"), "{out}");
    let tail: String = out
        .lines()
        .skip_while(|l| !l.starts_with("output:"))
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!("changed_output_bias", tail);

    // One weight of the first spike-driven conv: spikes move downstream.
    let art = changed_artifact(dir, tmp.path(), "encoder_level1.0.residual.1.weight", |v| {
        v[0] += 0.5
    });
    let o = verify(
        &dir.join("model.safetensors"),
        dir,
        &["--artifact", art.to_str().unwrap(), "--input", input],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(err.contains("verification FAILED (mismatch)"), "{err}");
    assert!(out.contains("<-- FAIL"), "{out}");
    assert!(
        out.contains("first divergence:") && out.contains("of encoder_level1.0.residual.3"),
        "the first LIF after the changed conv is named: {out}"
    );
    assert!(out.contains("beyond the flip bound: not an accumulation-order flip"), "{out}");
}

#[test]
fn an_artifact_of_another_model_is_refused() {
    let all = fixtures();
    let (a, b) = (&all[0], &all[1]);
    let tmp = tempfile::tempdir().unwrap();
    let art = tmp.path().join("other.spk");
    compile(&b.join("model.safetensors"), b, &art);
    let o = verify(
        &a.join("model.safetensors"),
        a,
        &["--artifact", art.to_str().unwrap()],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("compiled from another model"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}
