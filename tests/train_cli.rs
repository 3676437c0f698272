//! `spikerc train` end to end on a tiny model and a tiny synthetic image folder (feature
//! `torch`): the run finishes with finite losses, writes an importable checkpoint that
//! compiles and evaluates, is deterministic under a seed, and a stopped-and-resumed run ends
//! bit-identical to an uninterrupted one.

#![cfg(feature = "torch")]

mod common;

use common::{ok, s, spikerc_output};

use std::path::{Path, PathBuf};
use std::process::Output;

/// Three 40x36 textured RGB images and a config for a dim-4 model.
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let imgs = dir.join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    for k in 0..3u32 {
        image::RgbImage::from_fn(40, 36, |x, y| {
            image::Rgb([
                ((x * 6 + k * 40) % 256) as u8,
                ((y * 7 + x * k) % 256) as u8,
                (((x ^ y) * 9) % 256) as u8,
            ])
        })
        .save(imgs.join(format!("im{k}.png")))
        .unwrap();
    }
    let cfg = dir.join("cfg.json");
    std::fs::write(&cfg, r#"{"mda": {"reduction_c": 4}}"#).unwrap();
    (imgs, cfg)
}

fn same_file(a: &Path, b: &Path) {
    let (x, y) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    let first = x.iter().zip(&y).position(|(p, q)| p != q);
    assert!(
        x.len() == y.len() && first.is_none(),
        "{} and {} differ (sizes {} / {}, first differing byte {first:?})",
        a.display(),
        b.display(),
        x.len(),
        y.len()
    );
}

fn train(out: &Path, imgs: &Path, cfg: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "train",
        "--out",
        s(out),
        "--data",
        s(imgs),
        "--val-data",
        s(imgs),
        "--val-images",
        "2",
        "--val-crop",
        "32",
        "--config",
        s(cfg),
        "--dim",
        "4",
        "--levels",
        "2",
        "--steps",
        "3",
        "--teacher-steps",
        "2",
        "--batch",
        "2",
        "--patch",
        "16",
        "--val-every",
        "1",
        "--ckpt-every",
        "1",
        "--threads",
        "1",
        "--seed",
        "7",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    ok(&args)
}

#[test]
fn tiny_kd_run_compiles_evaluates_and_resumes_bit_identically() {
    let d = tempfile::tempdir().unwrap();
    let (imgs, cfg) = setup(d.path());
    let a = d.path().join("a");
    train(&a, &imgs, &cfg, &[]);
    for f in [
        "student.safetensors",
        "teacher.safetensors",
        "meta.json",
        "curve.csv",
    ] {
        assert!(a.join(f).is_file(), "{f} missing");
    }
    let csv = std::fs::read_to_string(a.join("curve.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    // teacher 0,1,2 and student 0,1,2,3.
    assert_eq!(
        rows.iter().map(|r| (r[0], r[1])).collect::<Vec<_>>(),
        vec![
            ("teacher", "0"),
            ("teacher", "1"),
            ("teacher", "2"),
            ("student", "0"),
            ("student", "1"),
            ("student", "2"),
            ("student", "3")
        ]
    );
    for r in rows.iter().filter(|r| r[1] != "0") {
        let (loss, psnr): (f64, f64) = (r[3].parse().unwrap(), r[4].parse().unwrap());
        assert!(loss.is_finite() && loss > 0.0 && psnr.is_finite(), "{r:?}");
    }

    // Same seed, same bytes.
    let b = d.path().join("b");
    train(&b, &imgs, &cfg, &[]);
    same_file(
        &a.join("student.safetensors"),
        &b.join("student.safetensors"),
    );

    // Stop after 3 steps (2 teacher + 1 student), resume: same final student.
    let c = d.path().join("c");
    let o = train(&c, &imgs, &cfg, &["--stop-after", "3"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("--resume"));
    assert!(!c.join("student.safetensors").exists());
    train(&c, &imgs, &cfg, &["--resume"]);
    same_file(
        &a.join("student.safetensors"),
        &c.join("student.safetensors"),
    );
    // Same curve but for the wall-clock column.
    let strip = |t: &str| {
        t.lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(&csv),
        strip(&std::fs::read_to_string(c.join("curve.csv")).unwrap()),
        "resumed curve differs"
    );

    // The checkpoint is importable: compile to f16 and evaluate through the runtime.
    let art = d.path().join("m.spk");
    ok(&[
        "compile",
        s(&a.join("student.safetensors")),
        "--config",
        s(&a.join("meta.json")),
        "--precision",
        "f16",
        "-o",
        s(&art),
    ]);
    let o = ok(&[
        "eval",
        s(&art),
        "--data",
        s(&imgs),
        "--sigma",
        "25",
        "--quiet",
        "--threads",
        "1",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("3 images"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn no_kd_run_writes_no_teacher_and_bad_options_leave_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (imgs, cfg) = setup(d.path());
    let a = d.path().join("a");
    train(&a, &imgs, &cfg, &["--no-kd"]);
    assert!(a.join("student.safetensors").is_file() && !a.join("teacher.safetensors").exists());
    let csv = std::fs::read_to_string(a.join("curve.csv")).unwrap();
    assert!(!csv.contains("teacher"));

    // Impossible architecture (channel-attention reduction larger than dim): one error, no output dir.
    let bad = d.path().join("bad");
    let o = spikerc_output(&[
        "train",
        "--out",
        s(&bad),
        "--data",
        s(&imgs),
        "--val-data",
        s(&imgs),
        "--dim",
        "4",
        "--levels",
        "2",
        "--quiet",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("reduction_c") && err.contains("16"), "{err}");
    assert!(!bad.exists(), "no output on error");
    // Patch larger than the images.
    let o = spikerc_output(&[
        "train",
        "--out",
        s(&bad),
        "--data",
        s(&imgs),
        "--val-data",
        s(&imgs),
        "--config",
        s(&cfg),
        "--dim",
        "4",
        "--levels",
        "2",
        "--patch",
        "64",
        "--quiet",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("patch 64") && err.contains("36"),
        "{err}"
    );
    assert!(!bad.exists());
}
