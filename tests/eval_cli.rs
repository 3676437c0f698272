//! `spikerc eval` end to end on the shared l3-d16 fixture and tiny synthetic test sets:
//! deterministic (a second run gives identical numbers), engines agree (runtime and interpreter
//! bit-identical, libtorch within float noise), derain/dehaze pairing, one clear error per bad
//! input with no partial JSON; `--shard K/N` + `eval merge` equal one run; `--save` writes
//! the restored images, and `run --sigma` on an image restores it to the same bytes.

mod common;

use common::{ok, s, spikerc_output};

use serde_json::Value;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    common::shared_dir().join("fixtures/spikerir-l3-d16")
}

/// Two odd-sized (not multiples of 4) textured images.
fn clean_set(dir: &Path) -> PathBuf {
    let d = dir.join("clean");
    std::fs::create_dir_all(&d).unwrap();
    for (k, (w, h)) in [(30u32, 22u32), (25, 27)].into_iter().enumerate() {
        image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                (x * 8 + k as u32 * 30) as u8,
                (y * 9) as u8,
                ((x + y) * 4) as u8,
            ])
        })
        .save(d.join(format!("img{k}.png")))
        .unwrap();
    }
    d
}

/// The scores of an `eval --json` document (task, per image, means), without what differs
/// between runs of other engines (model, engine, wall time).
fn report(p: &Path) -> Value {
    let v: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    assert_eq!(v["schema_version"], 1);
    let keys = ["task", "sigma", "seed", "images", "mean_input_psnr_db", "mean_psnr_db", "mean_ssim"];
    keys.iter().filter(|k| v.get(**k).is_some()).map(|k| (k.to_string(), v[*k].clone())).collect()
}

#[test]
fn eval_is_deterministic_and_engines_agree() {
    let d = tempfile::tempdir().unwrap();
    let data = clean_set(d.path());
    let fx = fixture();
    let art = d.path().join("m.spk");
    ok(&[
        "compile",
        s(&fx.join("model.safetensors")),
        "--config",
        s(&fx.join("meta.json")),
        "-o",
        s(&art),
    ]);
    let j = |n: &str| d.path().join(n);
    let base = [
        "eval",
        s(&art),
        "--data",
        s(&data),
        "--sigma",
        "25",
        "--quiet",
        "--threads",
        "1",
    ];
    ok(&[&base[..], &["--json", s(&j("a.json"))]].concat());
    ok(&[&base[..], &["--json", s(&j("b.json"))]].concat());
    let (a, b) = (report(&j("a.json")), report(&j("b.json")));
    assert_eq!(a, b, "a second run must give identical numbers");
    let imgs = a["images"].as_array().unwrap();
    assert_eq!(imgs.len(), 2);
    assert_eq!(
        (
            imgs[0]["name"].as_str().unwrap(),
            imgs[0]["height"].as_u64().unwrap(),
            imgs[0]["width"].as_u64().unwrap()
        ),
        ("img0.png", 22, 30)
    );
    for i in imgs {
        assert!(i["psnr_db"].as_f64().unwrap().is_finite() && i["ssim"].as_f64().unwrap() <= 1.0);
    }
    // Another noise seed gives other noise.
    ok(&[&base[..], &["--seed", "1", "--json", s(&j("c.json"))]].concat());
    assert_ne!(
        report(&j("c.json"))["mean_input_psnr_db"],
        a["mean_input_psnr_db"]
    );
    // The interpreter is bit-identical to the runtime.
    ok(&[
        &base[..],
        &["--engine", "interp", "--json", s(&j("i.json"))],
    ]
    .concat());
    assert_eq!(report(&j("i.json")), a);
    // The checkpoint through libtorch: same numbers up to float noise.
    #[cfg(feature = "torch")]
    {
        ok(&[
            "eval",
            s(&fx.join("model.safetensors")),
            "--config",
            s(&fx.join("meta.json")),
            "--data",
            s(&data),
            "--quiet",
            "--json",
            s(&j("t.json")),
        ]);
        let t = report(&j("t.json"));
        let doc: Value = serde_json::from_slice(&std::fs::read(j("t.json")).unwrap()).unwrap();
        assert_eq!(doc["engine"], "torch");
        let dp = (t["mean_psnr_db"].as_f64().unwrap() - a["mean_psnr_db"].as_f64().unwrap()).abs();
        assert!(dp < 0.01, "libtorch vs artifact PSNR differ by {dp} dB");
        assert_eq!(t["mean_input_psnr_db"], a["mean_input_psnr_db"]);
    }
}

#[test]
fn derain_pairs_and_bad_inputs() {
    let d = tempfile::tempdir().unwrap();
    let fx = fixture();
    let art = d.path().join("m.spk");
    ok(&[
        "compile",
        s(&fx.join("model.safetensors")),
        "--config",
        s(&fx.join("meta.json")),
        "--precision",
        "f16",
        "-o",
        s(&art),
    ]);
    let pairs = d.path().join("rain");
    for sub in ["input", "target"] {
        std::fs::create_dir_all(pairs.join(sub)).unwrap();
    }
    let img = |p: PathBuf, off: u8| {
        image::RgbImage::from_fn(20, 16, |x, y| {
            image::Rgb([x as u8 * 10 + off, y as u8 * 12, 90])
        })
        .save(p)
        .unwrap()
    };
    img(pairs.join("input/rain-001.png"), 20);
    img(pairs.join("target/norain-001.png"), 0);
    let json = d.path().join("r.json");
    let o = ok(&[
        "eval",
        s(&art),
        "--data",
        s(&pairs),
        "--task",
        "derain",
        "--quiet",
        "--json",
        s(&json),
    ]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("[runtime f16]"));
    let r = report(&json);
    assert_eq!(r["images"][0]["name"], "rain-001.png");
    assert_eq!(r["task"], "derain");

    // Bad inputs: one error line naming the thing, non-zero exit, no JSON written.
    let out = d.path().join("bad.json");
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "missing_data_dir",
            vec!["--data".into(), s(&d.path().join("nope")).into()],
        ),
        (
            "pairs_without_target_folder",
            vec![
                "--data".into(),
                s(&pairs.join("input")).into(),
                "--task".into(),
                "dehaze".into(),
            ],
        ),
        (
            "negative_sigma",
            vec![
                "--data".into(),
                s(&pairs.join("target")).into(),
                "--sigma=-3".into(),
            ],
        ),
    ];
    img(pairs.join("input/rain-002.png"), 0);
    let mut all = String::new();
    for (name, extra) in &cases {
        let mut args = vec!["eval", s(&art), "--json", s(&out)];
        args.extend(extra.iter().map(String::as_str));
        let o = spikerc_output(&args);
        assert!(!o.status.success(), "{name} should fail");
        assert!(!out.exists(), "{name} left a JSON file");
        let err = String::from_utf8_lossy(&o.stderr).replace(s(d.path()), "$TMP");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        all.push_str(&format!("{name}: {err}"));
    }
    let o = spikerc_output(&[
        "eval",
        s(&art),
        "--data",
        s(&pairs),
        "--task",
        "derain",
        "--json",
        s(&out),
    ]);
    assert!(!o.status.success() && !out.exists());
    all.push_str(&format!(
        "unpaired_input: {}",
        String::from_utf8_lossy(&o.stderr).replace(s(d.path()), "$TMP")
    ));
    insta::assert_snapshot!("eval_errors", all);
}

/// Three shards merged give the document of one run (same numbers, bit for bit); the merge
/// refuses incomplete or mixed sets; `--save` writes what `run --sigma` writes.
#[test]
fn shards_merge_to_one_run_and_save_matches_run_sigma() {
    let d = tempfile::tempdir().unwrap();
    let data = d.path().join("set");
    std::fs::create_dir_all(&data).unwrap();
    for k in 0..5u32 {
        image::RgbImage::from_fn(20 + k, 17, |x, y| image::Rgb([(x * 9 + k * 40) as u8, (y * 11) as u8, ((x * y) % 200) as u8]))
            .save(data.join(format!("p{k}.png")))
            .unwrap();
    }
    let fx = fixture();
    let art = d.path().join("m.spk");
    ok(&["compile", s(&fx.join("model.safetensors")), "--config", s(&fx.join("meta.json")), "-o", s(&art)]);
    let j = |n: &str| d.path().join(n);
    let base = ["eval", s(&art), "--data", s(&data), "--sigma", "25", "--seed", "3", "--quiet", "--threads", "1"];
    let saved = d.path().join("saved");
    ok(&[&base[..], &["--json", s(&j("all.json")), "--save", s(&saved)]].concat());
    let mut parts = vec![];
    for k in 1..=3 {
        let p = j(&format!("part{k}.json"));
        ok(&[&base[..], &["--shard", &format!("{k}/3"), "--json", s(&p)]].concat());
        let doc: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(doc["shard"], serde_json::json!({"index": k, "count": 3}));
        parts.push(p);
    }
    let one = report(&j("part1.json"));
    let names: Vec<&str> = one["images"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["p0.png", "p3.png"], "every 3rd image by name");
    let merged_path = j("merged.json");
    let mut args = vec!["eval", "merge"];
    args.extend(parts.iter().rev().map(|p| s(p)));
    args.extend(["--json", s(&merged_path)]);
    let o = ok(&args);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("merged 3 shards of "));
    assert_eq!(report(&j("merged.json")), report(&j("all.json")), "shard + merge = one run");
    let merged: Value = serde_json::from_slice(&std::fs::read(j("merged.json")).unwrap()).unwrap();
    assert_eq!(merged["shard"], Value::Null);

    // An incomplete set, or a shard given twice: one error line, nothing written.
    let bad = j("bad.json");
    for (extra, want) in [
        (vec![s(&parts[0]), s(&parts[1])], "error: shard 3/3 is missing (merge needs all 3)\n".to_string()),
        (vec![s(&parts[0]), s(&parts[0])], format!("error: {}: shard 1/3 is given twice\n", parts[0].display())),
        (vec![s(&j("all.json"))], format!("error: {}: holds every image (no shard): nothing to merge it with\n", j("all.json").display())),
    ] {
        let mut args = vec!["eval", "merge"];
        args.extend(extra);
        args.extend(["--json", s(&bad)]);
        let o = spikerc_output(&args);
        assert!(!o.status.success());
        assert_eq!(String::from_utf8_lossy(&o.stderr), want);
        assert!(!bad.exists());
    }
    let o = spikerc_output(&[&base[..], &["--shard", "4/3"]].concat());
    assert_eq!(String::from_utf8_lossy(&o.stderr), "error: invalid value '4/3' for '--shard <SHARD>': --shard 4/3: expected K/N with 1 <= K <= N (e.g. 2/8)\n\nFor more information, try '--help'.\n");

    // --save holds one restored PNG per image; `run --sigma 25 --seed 3` on the clean image
    // adds the same noise and restores it to the same bytes.
    let mut files: Vec<String> = std::fs::read_dir(&saved).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    assert_eq!(files, ["p0.png", "p1.png", "p2.png", "p3.png", "p4.png"]);
    let out = j("run-p2.png");
    ok(&["run", s(&art), "--input", s(&data.join("p2.png")), "--sigma", "25", "--seed", "3", "--threads", "1", "--output", s(&out)]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(saved.join("p2.png")).unwrap());
    let clean = j("run-clean.png");
    ok(&["run", s(&art), "--input", s(&data.join("p2.png")), "--threads", "1", "--output", s(&clean)]);
    assert_ne!(std::fs::read(&clean).unwrap(), std::fs::read(&out).unwrap(), "--sigma adds noise");
}
