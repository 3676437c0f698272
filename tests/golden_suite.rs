//! Golden suites: the project's suite over the shared fixtures (every engine and precision)
//! passes `spikerc golden check` (run as `--shard K/3` shards that partition it); changing one weight of a copied fixture makes check fail
//! with a readable diff naming case and field; bad suites are one clear error.
#![cfg(feature = "torch")]

mod common;
#[path = "golden/weights.rs"]
mod weights;

use std::path::Path;
use std::process::{Command, Output};

fn golden(args: &[&str], suite: &Path) -> (Output, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_spikerc"))
        .arg("golden")
        .args(args)
        .arg(suite)
        .env("SPIKERC_SHARED", common::shared_dir())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    (o, out, err)
}

/// The project suite passes, run as the three shards of a job array would run it: each shard
/// passes on its own, and together they run every case of the suite exactly once (the split
/// `spikerc_models::shard` promises: every N-th by name, sizes within one).
#[test]
fn project_suite_passes_in_shards_that_partition_it() {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/suite.toml");
    let names: Vec<String> = std::fs::read_to_string(&suite)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("name = \"")?.strip_suffix('"').map(str::to_string))
        .collect();
    assert_eq!(names.len(), 13, "{names:?}");
    let mut seen: Vec<String> = Vec::new();
    let mut sizes = Vec::new();
    for k in 1..=3 {
        let (o, out, err) = golden(&["check", "--shard", &format!("{k}/3")], &suite);
        assert!(o.status.success(), "shard {k}/3: {out}{err}");
        let ran: Vec<String> = out
            .lines()
            .filter_map(|l| l.strip_prefix("ok   "))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .collect();
        assert!(out.contains(&format!("golden check passed: {} case(s)", ran.len())), "{out}");
        sizes.push(ran.len());
        seen.extend(ran);
    }
    assert_eq!(sizes, [5, 4, 4], "13 cases over 3 shards");
    seen.sort();
    let mut want = names.clone();
    want.sort();
    assert_eq!(seen, want, "the shards run every case exactly once");
    for engine in ["event", "interp", "torch"] {
        assert!(seen.contains(&format!("l4-{engine}-f32")), "{seen:?}");
    }
    // More shards than cases: a clear error, not a silent pass.
    let (o, _, err) = golden(&["check", "--only", "trained-torch", "--shard", "2/2"], &suite);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(err, "error: --shard 2/2: no cases in this shard (the suite selects fewer cases than shards)\n");
}

#[test]
fn one_changed_weight_fails_naming_case_and_field() {
    let fx = &common::fixtures()[0];
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::copy(fx.join("model.safetensors"), t.join("model.safetensors")).unwrap();
    let suite = t.join("suite.toml");
    std::fs::write(
        &suite,
        format!(
            "[[case]]\nname = \"copy-event\"\ncheckpoint = \"model.safetensors\"\nconfig = \"{0}/meta.json\"\ninput = \"{0}/golden.safetensors\"\n\n\
             [[case]]\nname = \"copy-torch\"\ncheckpoint = \"model.safetensors\"\nconfig = \"{0}/meta.json\"\ninput = \"{0}/golden.safetensors\"\nengine = \"torch\"\n",
            fx.display()
        ),
    )
    .unwrap();
    let (o, out, err) = golden(&["record"], &suite);
    assert!(o.status.success(), "{out}{err}");
    assert!(t.join("suite.golden.toml").is_file());
    let (o, out, err) = golden(&["check"], &suite);
    assert!(o.status.success(), "unchanged copy: {out}{err}");

    // One weight of the first spike-driven conv.
    weights::copy_with_change(
        &fx.join("model.safetensors"),
        &t.join("model.safetensors"),
        "encoder_level1.0.residual.1.weight",
        |v| v[0] += 0.5,
    );
    let (o, out, err) = golden(&["check"], &suite);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        err.starts_with("error: golden check FAILED: 2 of 2 case(s)"),
        "{err}"
    );
    for needle in [
        "FAIL copy-event:",
        "FAIL copy-torch:",
        "checkpoint_sha256",
        "output.sha256",
        "spikes.encoder_level1.0.residual.3",
    ] {
        assert!(out.contains(needle), "missing `{needle}` in:\n{out}");
    }
    // The diff of the event case, with the machine-dependent timing line removed.
    let event: String = out
        .lines()
        .skip_while(|l| !l.starts_with("FAIL copy-event"))
        .take_while(|l| !l.starts_with("FAIL copy-torch"))
        .collect::<Vec<_>>()
        .join("\n");
    insta::assert_snapshot!("changed_weight_diff", event);
    // The localisation judges the artifact of the changed checkpoint against libtorch of the
    // same checkpoint, as `verify` does: both give the same verdict (regression: a neuron's
    // steps after its own flip were judged against the reference's membrane, so golden
    // called this valid artifact a mismatch).
    let json = t.join("v.json");
    let o = Command::new(env!("CARGO_BIN_EXE_spikerc"))
        .arg("verify")
        .arg(t.join("model.safetensors"))
        .arg("--config")
        .arg(fx.join("meta.json"))
        .arg("--input")
        .arg(fx.join("golden.safetensors"))
        .arg("--layerwise")
        .arg("--json")
        .arg(&json)
        .env("SPIKERC_SHARED", common::shared_dir())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let verdict = v["verdict"].as_str().unwrap();
    assert!(
        event.contains(&format!("artifact vs libtorch of the current checkpoint: verdict {verdict} ")),
        "verify says {verdict}:\n{}\ngolden:\n{event}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(verdict, "flip", "a valid artifact of the changed checkpoint");
}

#[test]
fn bad_suites_are_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let cases = [
        ("empty.toml", "", "the suite has no [[case]]"),
        (
            "typo.toml",
            "[[case]]\nname = \"a\"\ncheckpoint = \"x\"\nengin = \"event\"\n",
            "unknown field `engin`",
        ),
        (
            "twice.toml",
            "[[case]]\nname = \"a\"\ncheckpoint = \"x\"\n[[case]]\nname = \"a\"\ncheckpoint = \"y\"\n",
            "case name `a` appears twice",
        ),
    ];
    for (name, text, want) in cases {
        let p = t.join(name);
        std::fs::write(&p, text).unwrap();
        let (o, out, err) = golden(&["record"], &p);
        assert_eq!(o.status.code(), Some(1), "{name}: {out}{err}");
        assert!(err.contains(want), "{name}: {err}");
        assert!(!t.join(name.replace(".toml", ".golden.toml")).exists());
    }
    // Checking before recording names the missing golden file and the fix.
    let p = t.join("norecord.toml");
    std::fs::write(&p, "[[case]]\nname = \"a\"\ncheckpoint = \"x\"\n").unwrap();
    let (o, _, err) = golden(&["check"], &p);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains(
            "norecord.golden.toml: cannot read the golden file (run `spikerc golden record"
        ),
        "{err}"
    );
    // An unknown engine names the case.
    let p = t.join("engine.toml");
    std::fs::write(
        &p,
        "[[case]]\nname = \"a\"\ncheckpoint = \"${SPIKERC_SHARED}/fixtures/spikerir-l3-d16/model.safetensors\"\nengine = \"gpu\"\n",
    )
    .unwrap();
    let (o, _, err) = golden(&["record"], &p);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("case `a`: unknown engine `gpu`"), "{err}");
}

/// `check` takes the tolerances from the suite, not from the recorded file: loosening them
/// in the suite takes effect without re-recording.
#[test]
fn check_uses_the_suites_tolerances() {
    let fx = &common::fixtures()[0];
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let input = t.join("input.safetensors");
    std::fs::copy(fx.join("golden.safetensors"), &input).unwrap();
    let case = format!(
        "[[case]]\nname = \"interp\"\nengine = \"interp\"\ncheckpoint = \"{0}/model.safetensors\"\nconfig = \"{0}/meta.json\"\ninput = \"input.safetensors\"\n",
        fx.display()
    );
    let suite = t.join("suite.toml");
    std::fs::write(&suite, &case).unwrap();
    let (o, out, err) = golden(&["record"], &suite);
    assert!(o.status.success(), "{out}{err}");
    // The same input, brightened by 1e-3: the output moves.
    weights::copy_with_change(&fx.join("golden.safetensors"), &input, "input", |v| {
        v.iter_mut().for_each(|x| *x = (*x + 1e-3).min(1.0))
    });
    let (o, out, err) = golden(&["check"], &suite);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(out.contains("output.sha256"), "{out}");
    std::fs::write(
        &suite,
        format!("{case}[case.tolerance]\noutput_hash = false\noutput_abs = 1.0\nspikes_rel = 1.0\nops_rel = 1.0\n"),
    )
    .unwrap();
    let (o, out, err) = golden(&["check"], &suite);
    assert!(o.status.success(), "loosened in the suite, not re-recorded: {out}{err}");
}
