//! `spikerc demo`: the README's main command runs end to end on the shipped model and image,
//! writes its files, and restores (a trained denoiser beats the noisy input); a bad model
//! directory is one clear error.

mod common;

use std::process::Command;

fn demo(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_spikerc"))
        .arg("demo")
        .args(args)
        .env("SPIKERC_SHARED", common::shared_dir())
        .output()
        .unwrap()
}

#[test]
fn demo_writes_restored_image_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let o = demo(&["--out".as_ref(), out.as_os_str()]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for f in [
        "clean.png",
        "noisy.png",
        "restored.png",
        "model-f16.spk",
        "report.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["size"], serde_json::json!([96, 128]));
    let p = &r["psnr_db"];
    let restored = p["restored_f16"].as_f64().unwrap();
    // f16 deployment costs little against f32 on the same model.
    assert!(p["f16_vs_f32"].as_f64().unwrap() > 30.0, "{r}");
    if r["trained_denoiser"] == true {
        let noisy = p["noisy"].as_f64().unwrap();
        assert!(
            restored > noisy + 3.0,
            "restored {restored} dB vs noisy {noisy} dB"
        );
    } else {
        assert!(stdout.contains("not a trained denoiser"), "{stdout}");
    }
    assert!(r["spikes"].as_u64().unwrap() > 0);
    // The simulator ran the deployed f16 artifact and computed the runtime's output.
    let sim = &r["simulator"];
    assert_eq!(sim["output_matches_runtime"], true, "{r}");
    assert!(
        sim["energy_pj"].as_f64().unwrap() > 0.0 && sim["latency_cycles"].as_u64().unwrap() > 0
    );
    // The artifact it wrote loads and is f16.
    let art = spikerc_compiler::Artifact::load(&out.join("model-f16.spk")).unwrap();
    assert_eq!(art.meta.precision.to_string(), "f16");
    #[cfg(feature = "torch")]
    assert!(
        r["libtorch_check"]["summary"]
            .as_str()
            .unwrap()
            .ends_with("(PASS)"),
        "{r}"
    );
}

#[test]
fn demo_with_a_bad_model_dir_is_one_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let o = demo(&[
        "--model".as_ref(),
        tmp.path().as_os_str(),
        "--out".as_ref(),
        tmp.path().join("o").as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no model.safetensors (or model.pt) with a meta.json there"),
        "{err}"
    );
    assert!(!tmp.path().join("o").exists());
}
