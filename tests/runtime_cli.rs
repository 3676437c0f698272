//! `spikerc run` with the event engine: default engine equals the interpreter bit for bit,
//! `--stats` has `spikes` and `ops`, odd image sizes come back at their size, grey/RGBA images
//! are converted with a note, directories give directories, tiles run, bad input is one error.

mod common;

use common::*;
use std::path::{Path, PathBuf};

fn l4() -> PathBuf {
    shared_dir().join("fixtures/spikerir-l4-d16")
}

fn compile(dir: &Path, out: &Path) {
    ok(&[
        "compile",
        dir.join("model.safetensors").to_str().unwrap(),
        "--config",
        dir.join("meta.json").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn default_engine_reproduces_the_interpreter_and_writes_stats() {
    let t = tempfile::tempdir().unwrap();
    let art = t.path().join("l4.spk");
    compile(&l4(), &art);
    let gold = l4().join("golden.safetensors");
    let (ev, it, st) = (
        t.path().join("ev.safetensors"),
        t.path().join("it.safetensors"),
        t.path().join("s.json"),
    );
    ok(&[
        "run",
        s(&art),
        "--input",
        s(&gold),
        "--output",
        s(&ev),
        "--threads",
        "2",
        "--stats",
        s(&st),
    ]);
    ok(&[
        "run",
        s(&art),
        "--engine",
        "interp",
        "--input",
        s(&gold),
        "--output",
        s(&it),
    ]);
    assert_eq!(std::fs::read(&ev).unwrap(), std::fs::read(&it).unwrap());
    let stats: serde_json::Value = serde_json::from_slice(&std::fs::read(&st).unwrap()).unwrap();
    let g = golden(&l4());
    for (m, n) in &g.spikes {
        assert_eq!(stats["spikes"][m].as_u64(), Some(*n), "{m}");
    }
    let ops: serde_json::Value =
        serde_json::from_slice(&std::fs::read(l4().join("ops.json")).unwrap()).unwrap();
    assert_eq!(stats["ops"]["total"]["ac"], ops["total"]["ac"]);
    assert_eq!(
        stats["ops"]["modules"]["encoder_level1.0.residual.1"]["ac"],
        ops["modules"]["encoder_level1.0.residual.1"]["ac"]
    );
}

#[test]
fn odd_sized_grey_and_rgba_images_and_directories() {
    let t = tempfile::tempdir().unwrap();
    let art = t.path().join("l4.spk");
    compile(&l4(), &art);
    let indir = t.path().join("in");
    std::fs::create_dir(&indir).unwrap();
    let rgb = image::RgbImage::from_fn(500, 500, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x * y) % 256) as u8])
    });
    rgb.save(indir.join("big.png")).unwrap();
    image::GrayImage::from_fn(37, 21, |x, y| image::Luma([(x * 7 + y) as u8]))
        .save(indir.join("grey.png"))
        .unwrap();
    image::RgbaImage::from_fn(19, 30, |x, y| image::Rgba([x as u8, y as u8, 9, 200]))
        .save(indir.join("rgba.png"))
        .unwrap();
    let outdir = t.path().join("out");
    let o = ok(&[
        "run",
        s(&art),
        "--input",
        s(&indir),
        "--output",
        s(&outdir),
        "--threads",
        "2",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("grey.png: image has 1 channel(s)"),
        "{stderr}"
    );
    assert!(stderr.contains("alpha dropped"), "{stderr}");
    for (name, w, h) in [
        ("big.png", 500, 500),
        ("grey.png", 37, 21),
        ("rgba.png", 19, 30),
    ] {
        let img = image::open(outdir.join(name)).unwrap();
        assert_eq!((img.width(), img.height()), (w, h), "{name}");
    }
}

#[test]
fn tiled_runs_stitch_to_the_image_size_and_agree_with_the_whole_image() {
    let t = tempfile::tempdir().unwrap();
    let art = t.path().join("l4.spk");
    compile(&l4(), &art);
    let src = t.path().join("src.png");
    image::RgbImage::from_fn(150, 130, |x, y| {
        image::Rgb([
            (x * 3 % 256) as u8,
            (y * 5 % 256) as u8,
            ((x + y) % 256) as u8,
        ])
    })
    .save(&src)
    .unwrap();
    let (whole, tiled) = (t.path().join("whole.png"), t.path().join("tiled.png"));
    ok(&["run", s(&art), "--input", s(&src), "--output", s(&whole)]);
    ok(&[
        "run",
        s(&art),
        "--input",
        s(&src),
        "--output",
        s(&tiled),
        "--tile",
        "64",
        "--overlap",
        "24",
    ]);
    let a = image::open(&tiled).unwrap().to_rgb8();
    let b = image::open(&whole).unwrap().to_rgb8();
    assert_eq!(a.dimensions(), (150, 130));
    let mean_diff: f64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .sum::<f64>()
        / a.as_raw().len() as f64;
    assert!(
        mean_diff < 8.0,
        "tiled output differs on average by {mean_diff} levels"
    );
}

#[test]
fn bad_run_inputs_are_one_clear_error_and_leave_no_output() {
    let t = tempfile::tempdir().unwrap();
    let art = t.path().join("l4.spk");
    compile(&l4(), &art);
    let out = t.path().join("o.safetensors");
    let empty = t.path().join("empty.spk");
    std::fs::write(&empty, b"").unwrap();
    let gold = l4().join("golden.safetensors");
    let cases: Vec<Vec<&str>> = vec![
        vec!["run", s(&empty), "--input", s(&gold), "--output", s(&out)],
        vec![
            "run",
            s(&art),
            "--input",
            "/nonexistent/x.png",
            "--output",
            s(&out),
        ],
        vec![
            "run",
            s(&art),
            "--input",
            s(&gold),
            "--output",
            s(&out),
            "--tile",
            "4",
        ],
        vec![
            "run",
            s(&art),
            "--input",
            s(&gold),
            "--output",
            s(&out),
            "--tile",
            "64",
            "--engine",
            "interp",
        ],
        vec!["run", s(&art), "--input", s(&gold), "--output", s(&out), "--tile", "8", "--overlap", "16"],
        vec!["run", s(&art), "--input", s(&gold), "--output", s(&out), "--max-memory", "1M", "--threads", "1"],
        vec!["run", s(&art), "--input", s(&gold), "--output", s(&out), "--max-memory", "lots"],
    ];
    let mut msgs = vec![];
    for c in &cases {
        let o = spikerc_output(c);
        let stderr = String::from_utf8_lossy(&o.stderr).to_string();
        assert_eq!(o.status.code(), Some(1), "{c:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(!out.exists());
        msgs.push(
            stderr
                .trim_end()
                .replace(&t.path().display().to_string(), "[TMP]")
                .replace(&shared_dir().display().to_string(), "[SHARED]"),
        );
    }
    insta::assert_snapshot!(msgs.join("\n"));
}

/// `run DIR --shard K/N`: each shard runs every N-th file by name into the same output folder,
/// its `--stats` has one entry per file; `run merge` gives the counts of one whole run.
#[test]
fn directory_shards_merge_to_the_whole_run() {
    let t = tempfile::tempdir().unwrap();
    let art = t.path().join("l4.spk");
    compile(&l4(), &art);
    let dir = t.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    for k in 0..3u32 {
        image::RgbImage::from_fn(18 + k, 16, |x, y| image::Rgb([(x * 13) as u8, (y * 7 + k * 60) as u8, 40]))
            .save(dir.join(format!("f{k}.png")))
            .unwrap();
    }
    let j = |n: &str| t.path().join(n);
    ok(&["run", s(&art), "--input", s(&dir), "--output", s(&j("whole")), "--stats", s(&j("whole.json"))]);
    for k in 1..=2 {
        let o = ok(&["run", s(&art), "--input", s(&dir), "--output", s(&j("parts")), "--shard", &format!("{k}/2"), "--stats", s(&j(&format!("s{k}.json")))]);
        let want = if k == 1 { 2 } else { 1 };
        assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("on {want} input(s)")));
    }
    for k in 0..3 {
        let f = format!("f{k}.png");
        assert_eq!(std::fs::read(j("whole").join(&f)).unwrap(), std::fs::read(j("parts").join(&f)).unwrap(), "{f}");
    }
    ok(&["run", "merge", s(&j("s2.json")), s(&j("s1.json")), "--stats", s(&j("merged.json"))]);
    let read = |n: &str| -> serde_json::Value { serde_json::from_slice(&std::fs::read(j(n)).unwrap()).unwrap() };
    let (whole, merged) = (read("whole.json"), read("merged.json"));
    assert!(whole["threads"].as_u64().unwrap() >= 1, "threads used, not the flag's 0");
    let names: Vec<_> = whole["images"].as_array().unwrap().iter().map(|i| i["name"].clone()).collect();
    assert_eq!(names, ["f0.png", "f1.png", "f2.png"]);
    for key in ["spikes", "ops", "input_shapes", "firing_rate", "engine", "simd", "shard"] {
        assert_eq!(merged[key], whole[key], "{key}");
    }
    let strip = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        v["images"].as_array().unwrap().iter().map(|i| { let mut i = i.clone(); i.as_object_mut().unwrap().remove("wall_ms"); i }).collect()
    };
    assert_eq!(strip(&merged), strip(&whole));
    let o = spikerc_output(&["run", "merge", s(&j("s1.json")), "--stats", s(&j("bad.json"))]);
    assert!(!o.status.success() && !j("bad.json").exists());
    assert_eq!(String::from_utf8_lossy(&o.stderr), "error: shard 2/2 is missing (merge needs all 2)\n");
    let o = spikerc_output(&["run", s(&art), "--input", s(&dir.join("f0.png")), "--output", s(&j("x.png")), "--shard", "1/2"]);
    assert_eq!(String::from_utf8_lossy(&o.stderr), format!("error: --shard needs a directory --input ({} is a file)\n", dir.join("f0.png").display()));
}
