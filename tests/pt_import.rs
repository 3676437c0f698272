//! PyTorch `.pt` import: every shared fixture compiles from `model.pt` to the same artifact
//! bytes as from `model.safetensors` (f32 and f16), and damaged `.pt` files are one clear error
//! with exit code 1, no panic or abort and no output file.
#![cfg(feature = "torch")]

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
