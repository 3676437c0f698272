//! A hostile-user campaign over every command: generated bad inputs (mutated checkpoints,
//! configs, artifacts, images, tensors and deployment manifests, out-of-range flags, outputs
//! aimed at inputs or at impossible places). For every case the CLI must either succeed (a
//! mutation can leave a file valid) or fail with exit code 1 (clap usage errors: 2) and
//! exactly one `error:` line; it must never panic or die by a signal, never leave an output
//! or a temporary file of a failed command, and never change an input. Cases that aim an
//! output at an input must fail.
//!
//! `SPIKERC_CAMPAIGN=N` sets the number of generated mutations per input slot (default 12,
//! about 300 cases, for CI; the campaign quoted in the README used 150).

mod common;
#[path = "common/mutate.rs"]
mod mutate;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Lab {
    dir: tempfile::TempDir,
}

/// What a case must do.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// Succeed or fail cleanly.
    Clean,
    /// Fail cleanly (an output aimed at an input, an impossible flag).
    Fail,
}

impl Lab {
    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Snapshot of every file under the lab (path -> bytes).
    fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = vec![];
        let mut stack = vec![self.dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push((p.clone(), std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    /// Runs one case; `outputs` are the paths the command would create.
    fn case(&self, args: &[String], outputs: &[PathBuf], expect: Expect) -> bool {
        let before = self.files();
        let out = Command::new(env!("CARGO_BIN_EXE_spikerc"))
            .args(args)
            .env("SPIKERC_SHARED", common::shared_dir())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let ctx = || format!("spikerc {}\nstderr: {stderr}", args.join(" "));
        assert!(!stderr.contains("panicked"), "panic: {}", ctx());
        let code = out.status.code().unwrap_or_else(|| panic!("killed by a signal (abort?): {}", ctx()));
        if code == 0 {
            assert!(expect == Expect::Clean, "accepted, should have been refused: {}", ctx());
            for o in outputs {
                let _ = std::fs::remove_file(o);
                let _ = std::fs::remove_dir_all(o);
            }
            return false;
        }
        assert!(code == 1 || code == 2, "exit code {code}: {}", ctx());
        let errors = stderr.lines().filter(|l| l.starts_with("error:")).count();
        assert_eq!(errors, 1, "expected one `error:` line: {}", ctx());
        if code == 1 {
            assert!(
                stderr.lines().all(|l| l.starts_with("error:") || l.starts_with("note:") || l.is_empty()),
                "only note/error lines expected: {}",
                ctx()
            );
        }
        for o in outputs {
            assert!(!o.exists() || before.iter().any(|(p, _)| p == o), "{} left behind: {}", o.display(), ctx());
        }
        let after = self.files();
        let tmp: Vec<_> = after.iter().filter(|(p, _)| p.file_name().is_some_and(|f| f.to_string_lossy().contains(".tmp"))).map(|(p, _)| p.clone()).collect();
        assert!(tmp.is_empty(), "temporary files left {tmp:?}: {}", ctx());
        assert!(before == after, "files changed by a failed command: {}", ctx());
        true
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn hostile_inputs_to_every_command_fail_cleanly() {
    let n: usize = std::env::var("SPIKERC_CAMPAIGN").ok().and_then(|v| v.parse().ok()).unwrap_or(12);
    let lab = Lab { dir: tempfile::tempdir().unwrap() };
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let ck = lab.p("model.safetensors");
    let meta = lab.p("meta.json");
    let art = lab.p("model.spk");
    let png = lab.p("in.png");
    let tensor = lab.p("in.safetensors");
    std::fs::copy(corpus.join("safetensors/tiny.safetensors"), &ck).unwrap();
    std::fs::copy(corpus.join("meta_json/tiny.json"), &meta).unwrap();
    std::fs::copy(corpus.join("artifact/tiny-f16.spk"), &art).unwrap();
    std::fs::copy(corpus.join("image_decode/small.png"), &png).unwrap();
    std::fs::copy(corpus.join("image_decode/input.safetensors"), &tensor).unwrap();
    let dep = lab.p("dep");
    let st = Command::new(env!("CARGO_BIN_EXE_spikerc"))
        .args(["compile", &s(&ck), "--config", &s(&meta), "--target", "lynxi:ka200-like", "--input-size", "16x16", "-o", &s(&dep)])
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let data = lab.p("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::copy(&png, data.join("a.png")).unwrap();

    let mut rng = ChaCha8Rng::seed_from_u64(2272);
    let mut cases = 0usize;
    let mut refused = 0usize;
    let mut run = |a: Vec<String>, outs: Vec<PathBuf>, e: Expect| {
        cases += 1;
        if lab.case(&a, &outs, e) {
            refused += 1;
        }
    };
    let out = lab.p("out/o.spk");
    let outpng = lab.p("out/o.png");
    let report = lab.p("out/r.json");

    // Mutated files in every input slot of every command.
    let manifest = dep.join("manifest.json");
    let slots: Vec<(&Path, &str)> = vec![(&ck, "ck"), (&meta, "meta"), (&art, "art"), (&png, "png"), (&tensor, "tensor"), (&manifest, "manifest")];
    for (path, slot) in slots {
        let good = std::fs::read(path).unwrap();
        let bad = lab.p(&format!("bad-{slot}{}", path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default()));
        for _ in 0..n {
            let m = mutate::mutate(&good, &mut rng);
            match slot {
                "manifest" => {
                    std::fs::write(path, &m).unwrap();
                    run(args(&["simulate", &s(&dep), "--input", &s(&tensor), "--report", &s(&report)]), vec![report.clone()], Expect::Clean);
                    std::fs::write(path, &good).unwrap();
                    continue;
                }
                _ => std::fs::write(&bad, &m).unwrap(),
            }
            let b = s(&bad);
            match slot {
                "ck" => {
                    run(args(&["compile", &b, "--config", &s(&meta), "-o", &s(&out), "--report", &s(&report)]), vec![out.clone(), report.clone()], Expect::Clean);
                    run(args(&["inspect", &b]), vec![], Expect::Clean);
                }
                "meta" => run(args(&["compile", &s(&ck), "--config", &b, "-o", &s(&out)]), vec![out.clone()], Expect::Clean),
                "art" => {
                    run(args(&["run", &b, "--input", &s(&tensor), "--output", &s(&outpng)]), vec![outpng.clone()], Expect::Clean);
                    run(args(&["inspect", &b, "--ir"]), vec![], Expect::Clean);
                    run(args(&["compile", &b, "--target", "lynxi:tianjic-like", "--input-size", "16x16", "-o", &s(&lab.p("out/dep"))]), vec![lab.p("out/dep")], Expect::Clean);
                }
                "png" | "tensor" => {
                    run(args(&["run", &s(&art), "--input", &b, "--output", &s(&outpng), "--stats", &s(&report)]), vec![outpng.clone(), report.clone()], Expect::Clean);
                    run(args(&["simulate", &s(&dep), "--input", &b, "--report", &s(&report)]), vec![report.clone()], Expect::Clean);
                }
                _ => unreachable!(),
            }
        }
        let _ = std::fs::remove_file(&bad);
    }

    // Outputs aimed at inputs: always refused, inputs untouched.
    let aimed: Vec<Vec<String>> = vec![
        args(&["compile", &s(&ck), "-o", &s(&ck)]),
        args(&["compile", &s(&ck), "--config", &s(&meta), "-o", &s(&meta)]),
        args(&["compile", &s(&ck), "--config", &s(&meta), "-o", &s(&out), "--report", &s(&ck)]),
        args(&["compile", &s(&ck), "--config", &s(&meta), "--target", "lynxi", "-o", &s(&ck)]),
        args(&["run", &s(&art), "--input", &s(&png), "--output", &s(&png)]),
        args(&["run", &s(&art), "--input", &s(&tensor), "--output", &s(&tensor)]),
        args(&["run", &s(&art), "--input", &s(&tensor), "--output", &s(&outpng), "--stats", &s(&art)]),
        args(&["run", &s(&art), "--input", &s(&data), "--output", &s(&data)]),
        args(&["simulate", &s(&dep), "--input", &s(&tensor), "--report", &s(&tensor)]),
        args(&["simulate", &s(&dep), "--input", &s(&tensor), "--report", &s(&report), "--output", &s(&dep.join("model.spk"))]),
        args(&["eval", &s(&art), "--data", &s(&data), "--json", &s(&art)]),
    ];
    for a in aimed {
        run(a, vec![], Expect::Fail);
    }
    // Flags out of range, impossible destinations.
    let blocked = lab.p("file-not-dir");
    std::fs::write(&blocked, b"x").unwrap();
    let flags: Vec<Vec<String>> = vec![
        args(&["run", &s(&art), "--input", &s(&tensor), "--output", &s(&outpng), "--tile", "8", "--overlap", "16"]),
        args(&["run", &s(&art), "--input", &s(&tensor), "--output", &s(&outpng), "--tile", "16", "--overlap", "18446744073709551615"]),
        args(&["run", &s(&art), "--input", &s(&tensor), "--output", &s(&outpng), "--threads", "100000"]),
        args(&["run", &s(&art), "--input", &s(&tensor), "--output", &s(&blocked.join("o.png"))]),
        args(&["run", &s(&art), "--input", &s(&tensor), "--output", &s(&lab.p("out/o.xyz"))]),
        args(&["compile", &s(&ck), "--config", &s(&meta), "--time-steps", "0", "-o", &s(&out)]),
        args(&["compile", &s(&ck), "--config", &s(&meta), "--time-steps", "100000", "-o", &s(&out)]),
        args(&["compile", &s(&ck), "--config", &s(&meta), "--target", "lynxi:nonexistent", "-o", &s(&lab.p("out/d"))]),
        args(&["compile", &s(&ck), "--config", &s(&meta), "--target", "lynxi", "--input-size", "0x5", "-o", &s(&lab.p("out/d"))]),
        args(&["compile", &s(&ck), "--config", &s(&meta), "-o", &s(&out), "--report", &s(&blocked.join("r.json"))]),
        args(&["gen-model", "--levels", "70", "-o", &s(&lab.p("out/g.safetensors"))]),
        args(&["gen-model", "--levels", "2", "--dim", "16", "-o", &s(&lab.p("out/g.json"))]),
        args(&["inspect", &s(&data)]),
        args(&["eval", &s(&art), "--data", &s(&lab.p("missing"))]),
    ];
    for a in flags {
        run(a, vec![lab.p("out/o.png"), lab.p("out/o.spk"), lab.p("out/d"), lab.p("out/g.safetensors")], Expect::Fail);
    }
    drop(run);
    eprintln!("campaign: {cases} cases, {refused} refused cleanly, {} accepted", cases - refused);
    assert!(refused > cases / 2, "most generated inputs should be refused ({refused} of {cases})");
}
