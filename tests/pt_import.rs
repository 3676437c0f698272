//! PyTorch `.pt` import (pure Rust, with or without feature `torch`): every shared fixture
//! compiles from `model.pt` to the same artifact bytes as from `model.safetensors` (f32 and
//! f16); training checkpoints (`{"state_dict": ...}`, `{"model": ...}`, `{"params": ...}` with
//! optimizer state beside, `module.` prefixes, non-contiguous and f16 tensors, written by real
//! PyTorch) compile to the same artifact too; damaged `.pt` files are one clear error with
//! exit code 1, no panic or abort and no output file.

mod common;

use common::{fixtures, hyper};
use spikerc_compiler::passes::Precision;
use std::path::Path;
use std::process::Command;

#[test]
fn pt_and_safetensors_compile_to_identical_artifacts() {
    for dir in fixtures() {
        let hp = hyper(&dir);
        for precision in [Precision::F32, Precision::F16] {
            let mut a = spikerc_models::compile_checkpoint(&dir.join("model.pt"), &hp, precision)
                .unwrap();
            let b =
                spikerc_models::compile_checkpoint(&dir.join("model.safetensors"), &hp, precision)
                    .unwrap();
            assert_eq!(a.meta.source, "model.pt");
            // The source file name is recorded in the artifact; everything else is equal.
            a.meta.source = b.meta.source.clone();
            assert!(
                a.to_bytes() == b.to_bytes(),
                "{}: {precision:?} artifacts from .pt and .safetensors differ",
                dir.display()
            );
        }
    }
}

fn spikerc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_spikerc"))
}

/// Writes `bytes` as `name` in `tmp`, compiles it, and returns stderr (asserting exit 1 and
/// no artifact).
fn compile_fails(tmp: &Path, name: &str, bytes: &[u8], meta: &Path) -> String {
    let p = tmp.join(name);
    std::fs::write(&p, bytes).unwrap();
    let out_file = tmp.join(format!("{name}.spk"));
    let out = spikerc()
        .arg("compile")
        .arg(&p)
        .arg("--config")
        .arg(meta)
        .arg("-o")
        .arg(&out_file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
    assert!(!out_file.exists(), "{name}: an artifact was written");
    assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
    stderr.replace(&tmp.display().to_string(), "TMP")
}

#[test]
fn damaged_pt_files_are_one_clear_error() {
    let dir = &fixtures()[0];
    let meta = dir.join("meta.json");
    let good = std::fs::read(dir.join("model.pt")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();

    let mut flipped = good.clone();
    let mid = good.len() / 2;
    flipped[mid..mid + 64].iter_mut().for_each(|b| *b ^= 0xff);
    let mut tail = good.clone();
    let n = tail.len();
    tail[n - 100..].fill(0);
    let mut not_torch = Vec::new();
    {
        let mut z = zip::ZipWriter::new(std::io::Cursor::new(&mut not_torch));
        z.start_file("hello.txt", zip::write::FileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut z, b"hi").unwrap();
        z.finish().unwrap();
    }
    let errors = [
        compile_fails(t, "truncated.pt", &good[..good.len() / 2], &meta),
        compile_fails(t, "flipped.pt", &flipped, &meta),
        compile_fails(t, "tail.pt", &tail, &meta),
        compile_fails(t, "header_only.pt", b"PK\x03\x04garbage", &meta),
        compile_fails(t, "not_torch.pt", &not_torch, &meta),
    ];
    for e in &errors {
        assert!(
            e.starts_with("error: TMP/") && e.contains("(PyTorch zip)"),
            "{e}"
        );
    }
    // Flipped bytes inside a tensor are caught by the CRC check, naming the entry.
    assert!(errors[1].contains("Invalid checksum"), "{}", errors[1]);
    insta::assert_snapshot!(errors.join(""));
}

/// The project venv's python (torch 2.13.0, installed by scripts/setup-torch.sh, which the
/// test command runs first).
fn venv_python() -> std::path::PathBuf {
    let venv = std::env::var_os("SPIKERC_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let py = venv.join("bin/python");
    assert!(py.is_file(), "{} missing: run scripts/setup-torch.sh (the test command does)", py.display());
    py
}

#[test]
fn training_checkpoints_unwrap_to_the_plain_state_dict() {
    let dir = &fixtures()[0];
    let hp = hyper(dir);
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"
import sys, torch
from safetensors.torch import load_file, save_file
src, out = sys.argv[1], sys.argv[2]
sd = load_file(src + "/model.safetensors")
# Non-contiguous and half-precision storage, as real training code produces.
sd = {k: (v.t().contiguous().t() if v.dim() == 2 else v) for k, v in sd.items()}
first = next(k for k in sd if k.endswith("weight") and sd[k].dim() == 4)
wrapped = {
    "state_dict": {"module." + k: v for k, v in sd.items()},
    "optimizer": {"state": {0: {"exp_avg": torch.ones(3), "step": torch.tensor(5.0)}},
                  "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "params": [0]}]},
    "epoch": 7, "note": "trained",
}
torch.save(wrapped, out + "/state_dict.pt")
torch.save({"model": sd, "step": 10}, out + "/model.pt")
nc = dict(sd)
nc[first] = sd[first].permute(1, 0, 2, 3).contiguous().permute(1, 0, 2, 3)  # strided view
torch.save({"params": nc}, out + "/params.pt")
save_file({"state_dict.module." + k: v.contiguous() for k, v in sd.items()} | {"optimizer.exp_avg": torch.ones(3)}, out + "/wrapped.safetensors")
"#;
    let st = Command::new(venv_python())
        .arg("-c")
        .arg(script)
        .arg(dir)
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(st.success(), "generating the training checkpoints failed");
    let plain = spikerc_models::compile_checkpoint(&dir.join("model.safetensors"), &hp, Precision::F32).unwrap();
    for name in ["state_dict.pt", "model.pt", "params.pt", "wrapped.safetensors"] {
        let mut a = spikerc_models::compile_checkpoint(&tmp.path().join(name), &hp, Precision::F32)
            .unwrap_or_else(|e| panic!("{name}: {:#}", anyhow::Error::from(e)));
        a.meta.source = plain.meta.source.clone();
        assert!(a.to_bytes() == plain.to_bytes(), "{name}: artifact differs from the plain state_dict's");
    }
}
