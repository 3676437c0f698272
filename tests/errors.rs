//! Every bad input named in the compiler-spine issue yields a non-zero exit, exactly one clear
//! error line (snapshotted), and no output file.

mod common;

use common::*;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        Case { dir: tempfile::tempdir().unwrap() }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs `spikerc args...`, expects failure, checks that `output` was not created, and
    /// returns stderr with temporary and shared paths normalised.
    fn fail(&self, args: &[&str], output: &Path) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_spikerc")).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "expected failure for {args:?}, stderr: {stderr}");
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(!output.exists(), "{} was written despite the error", output.display());
        let leftovers: Vec<_> = std::fs::read_dir(self.dir.path()).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n.to_string_lossy().contains(".tmp")).collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line expected: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let shared = std::fs::canonicalize(shared_dir()).unwrap();
        stderr
            .trim_end()
            .replace(&self.dir.path().display().to_string(), "[TMP]")
            .replace(&shared_dir().display().to_string(), "[SHARED]")
            .replace(&shared.display().to_string(), "[SHARED]")
    }
}

fn l3() -> PathBuf {
    shared_dir().join("fixtures/spikerir-l3-d16")
}

/// Rewrites the l3 checkpoint through `edit(name, dtype, shape, bytes)`, returning `None` to drop
/// a tensor; `extra` tensors are appended.
fn edited_checkpoint(out: &Path, edit: impl Fn(&str, Dtype, Vec<usize>, Vec<u8>) -> Option<(Dtype, Vec<usize>, Vec<u8>)>, extra: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>) {
    let bytes = std::fs::read(l3().join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, v) in st.tensors() {
        if let Some((d, s, b)) = edit(&name, v.dtype(), v.shape().to_vec(), v.data().to_vec()) {
            owned.push((name, d, s, b));
        }
    }
    owned.extend(extra);
    let views: Vec<(String, TensorView)> = owned.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    std::fs::write(out, safetensors::serialize(views, &None).unwrap()).unwrap();
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn compile_err(edit: impl Fn(&str, Dtype, Vec<usize>, Vec<u8>) -> Option<(Dtype, Vec<usize>, Vec<u8>)>, extra: Vec<(String, Dtype, Vec<usize>, Vec<u8>)>, flags: &[&str]) -> String {
    let c = Case::new();
    let ck = c.path("model.safetensors");
    edited_checkpoint(&ck, edit, extra);
    let out = c.path("out.spk");
    let mut args = vec!["compile", ck.to_str().unwrap(), "-o", out.to_str().unwrap()];
    args.extend_from_slice(flags);
    c.fail(&args, &out)
}

fn keep(_: &str, d: Dtype, s: Vec<usize>, b: Vec<u8>) -> Option<(Dtype, Vec<usize>, Vec<u8>)> {
    Some((d, s, b))
}

#[test]
fn missing_key() {
    let e = compile_err(|n, d, s, b| (n != "encoder_level1.0.residual.4.weight").then_some((d, s, b)), vec![], &[]);
    insta::assert_snapshot!(e, @"error: [TMP]/model.safetensors: missing key `encoder_level1.0.residual.4.weight` (expected shape [16, 16, 3, 3])");
}

#[test]
fn unexpected_key() {
    let extra = vec![("encoder_level1.0.residual.6.weight".to_string(), Dtype::F32, vec![16], f32_bytes(&[0.0; 16]))];
    let e = compile_err(keep, extra, &[]);
    insta::assert_snapshot!(e, @"error: [TMP]/model.safetensors: unexpected key `encoder_level1.0.residual.6.weight` with shape [16] (not part of a SpikerIR with spikerir L=3 dim=16 en=[2, 1, 1] de=[1, 1, 2] in=3 out=3)");
}

#[test]
fn wrong_shape() {
    let e = compile_err(
        |n, d, s, b| if n == "down2_3.maxpool_conv.1.weight" { Some((d, vec![64, 32, 1, 1], b[..64 * 32 * 4].to_vec())) } else { Some((d, s, b)) },
        vec![],
        &[],
    );
    insta::assert_snapshot!(e, @"error: [TMP]/model.safetensors: key `down2_3.maxpool_conv.1.weight`: expected shape [64, 32, 3, 3], found [64, 32, 1, 1]");
}

#[test]
fn wrong_dtype() {
    let e = compile_err(|n, d, s, b| if n == "output.0.bias" { Some((Dtype::I32, s, b)) } else { Some((d, s, b)) }, vec![], &[]);
    insta::assert_snapshot!(e, @"error: [TMP]/model.safetensors: key `output.0.bias`: expected a floating-point tensor (f32, f16, bf16 or f64), found i32");
}

#[test]
fn non_finite_weight() {
    let e = compile_err(
        |n, d, s, mut b| {
            if n == "refinement.sa.0.weight" {
                b[28..32].copy_from_slice(&f32::NAN.to_le_bytes());
            }
            Some((d, s, b))
        },
        vec![],
        &[],
    );
    insta::assert_snapshot!(e, @"error: [TMP]/model.safetensors: key `refinement.sa.0.weight`: element 7 is NaN, weights must be finite");
}

#[test]
fn truncated_checkpoint() {
    let c = Case::new();
    let ck = c.path("model.safetensors");
    std::fs::write(&ck, &std::fs::read(l3().join("model.safetensors")).unwrap()[..100_000]).unwrap();
    let out = c.path("out.spk");
    let e = c.fail(&["compile", ck.to_str().unwrap(), "-o", out.to_str().unwrap()], &out);
    insta::assert_snapshot!(e, @"error: [TMP]/model.safetensors: not a readable checkpoint (safetensors): truncated: the header describes more tensor data than the 100000 bytes the file holds");
}

#[test]
fn not_a_checkpoint() {
    let c = Case::new();
    let ck = c.path("notes.txt");
    std::fs::write(&ck, "these are my notes, not a checkpoint\n").unwrap();
    let out = c.path("out.spk");
    let e = c.fail(&["compile", ck.to_str().unwrap(), "-o", out.to_str().unwrap()], &out);
    insta::assert_snapshot!(e, @"error: [TMP]/notes.txt: unrecognised file format (expected .safetensors or a PyTorch torch.save .pt zip)");
}

#[test]
fn missing_checkpoint_file() {
    let c = Case::new();
    let out = c.path("out.spk");
    let e = c.fail(&["compile", c.path("nope.safetensors").to_str().unwrap(), "-o", out.to_str().unwrap()], &out);
    insta::assert_snapshot!(e, @"error: [TMP]/nope.safetensors: cannot read: No such file or directory (os error 2)");
}

#[test]
fn time_steps_below_the_attention_reduction() {
    let e = compile_err(keep, vec![], &["--time-steps", "2"]);
    insta::assert_snapshot!(e, @"error: hyperparameter `time_steps` = 2: smaller than the time-attention reduction_t 4 (the attention MLP would have 0 hidden units)");
}

#[test]
fn time_steps_that_disagree_with_the_weights() {
    let e = compile_err(keep, vec![], &["--time-steps", "8"]);
    insta::assert_snapshot!(e, @"error: [TMP]/model.safetensors: key `encoder_level1.0.attn.ta.sharedMLP.0.weight`: expected shape [2, 8, 1, 1, 1], found [1, 4, 1, 1, 1] (time steps T = 8)");
}

#[test]
fn non_positive_tau() {
    let e = compile_err(keep, vec![], &["--tau", "0"]);
    insta::assert_snapshot!(e, @"error: hyperparameter `tau` = 0: the LIF time constant must be finite and >= 1");
}

#[test]
fn config_that_disagrees_with_the_checkpoint() {
    let c = Case::new();
    let cfg = c.path("meta.json");
    std::fs::write(&cfg, r#"{"levels": 4, "time_steps": 4, "comment": "unknown fields are ignored"}"#).unwrap();
    let out = c.path("out.spk");
    let ck = l3().join("model.safetensors");
    let e = c.fail(&["compile", ck.to_str().unwrap(), "--config", cfg.to_str().unwrap(), "-o", out.to_str().unwrap()], &out);
    insta::assert_snapshot!(e, @"error: [SHARED]/fixtures/spikerir-l3-d16/model.safetensors: checkpoint does not describe a SpikerIR: config says levels = 4, the checkpoint has 3");
}

/// Compiles the l3 fixture into the case directory.
fn compiled(c: &Case) -> PathBuf {
    let art = c.path("l3.spk");
    let st = Command::new(env!("CARGO_BIN_EXE_spikerc"))
        .args(["compile", l3().join("model.safetensors").to_str().unwrap(), "--config", l3().join("meta.json").to_str().unwrap(), "-o", art.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    art
}

fn run_err(c: &Case, art: &Path, input: &Path) -> String {
    let out = c.path("out.safetensors");
    c.fail(&["run", art.to_str().unwrap(), "--engine", "interp", "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()], &out)
}

#[test]
fn corrupt_artifacts() {
    let c = Case::new();
    let art = compiled(&c);
    let bytes = std::fs::read(&art).unwrap();
    let input = l3().join("golden.safetensors");
    let bad = c.path("bad.spk");
    let mut msgs = Vec::new();
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    msgs.push(run_err(&c, &bad, &input));
    let mut flipped = bytes.clone();
    flipped[5000] ^= 1;
    std::fs::write(&bad, &flipped).unwrap();
    msgs.push(run_err(&c, &bad, &input).replace(&format!("{:08x}", crc32fast::hash(&flipped[24..])), "[CRC]"));
    let mut newer = bytes.clone();
    newer[8] = 7;
    std::fs::write(&bad, &newer).unwrap();
    msgs.push(run_err(&c, &bad, &input));
    msgs.push(run_err(&c, &l3().join("model.safetensors"), &input));
    let stored = format!("{:08x}", u32::from_le_bytes(bytes[20..24].try_into().unwrap()));
    insta::assert_snapshot!(msgs.join("\n").replace(&stored, "[STORED]").replace(&format!("{}", bytes.len() / 2), "[HALF]").replace(&format!("{}", bytes.len()), "[FULL]"), @r"
    error: [TMP]/bad.spk: truncated artifact: [HALF] bytes, header says [FULL]
    error: [TMP]/bad.spk: checksum mismatch (stored [STORED], computed [CRC]): the file is corrupt
    error: [TMP]/bad.spk: artifact format version 7 is newer than this spikerc supports (3); upgrade spikerc
    error: [SHARED]/fixtures/spikerir-l3-d16/model.safetensors: not a spikerc artifact (magic bytes [98, 59, 00, 00, 00, 00, 00, 00], expected [53, 50, 49, 4b, 45, 52, 43, 00]); checkpoints must first be compiled with `spikerc compile`
    ");
}

#[test]
fn wrong_tensor_channels_and_missing_input_tensor() {
    // Grey and RGBA *images* are converted with a note (tests/runtime_cli.rs); tensors are
    // taken as they are, so a wrong channel count is an error.
    let c = Case::new();
    let art = compiled(&c);
    let data = f32_bytes(&[0.5; 4 * 64]);
    let one = c.path("one.safetensors");
    std::fs::write(&one, safetensors::serialize([("input", TensorView::new(Dtype::F32, vec![1, 1, 8, 8], &data[..256]).unwrap())], &None).unwrap()).unwrap();
    let four = c.path("four.safetensors");
    std::fs::write(&four, safetensors::serialize([("input", TensorView::new(Dtype::F32, vec![1, 4, 8, 8], &data).unwrap())], &None).unwrap()).unwrap();
    let noinput = c.path("noinput.safetensors");
    std::fs::write(&noinput, safetensors::serialize([("x", TensorView::new(Dtype::F32, vec![1, 1, 8, 8], &data[..256]).unwrap())], &None).unwrap()).unwrap();
    let msgs = [run_err(&c, &art, &one), run_err(&c, &art, &four), run_err(&c, &art, &noinput)];
    insta::assert_snapshot!(msgs.join("\n"), @r"
    error: input has shape [1, 1, 8, 8], expected [N, 3, H, W]
    error: input has shape [1, 4, 8, 8], expected [N, 3, H, W]
    error: [TMP]/noinput.safetensors: no tensor named `input` (found: x)
    ");
}

/// A refused default hyperparameter suggests `--config`; a `meta.json` beside the checkpoint
/// is used (with a note) when `--config` is absent.
#[test]
fn config_hint_and_meta_json_beside_the_checkpoint() {
    let c = Case::new();
    let ck = c.path("model.safetensors");
    std::fs::copy(l3().join("model.safetensors"), &ck).unwrap();
    let meta = l3().join("meta.json");
    let out = c.path("out.spk");
    // The fixture's own meta.json beside it: used, announced, same artifact as --config.
    let o = common::ok(&["compile", l3().join("model.safetensors").to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let note = String::from_utf8_lossy(&o.stderr).replace(&shared_dir().display().to_string(), "[SHARED]");
    assert_eq!(note, "note: using [SHARED]/fixtures/spikerir-l3-d16/meta.json for the hyperparameters (no --config given)\n");
    let with_config = c.path("cfg.spk");
    common::ok(&["compile", ck.to_str().unwrap(), "--config", meta.to_str().unwrap(), "-o", with_config.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&with_config).unwrap());
    std::fs::remove_file(&out).unwrap();
    // The shipped dim-8 model alone (no meta.json beside it): the default reduction_c 16 does
    // not fit its 8 channels, and the error says to pass --config.
    let d8 = c.path("d8.safetensors");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/models/trained/denoise-l3-d8/model.safetensors"), &d8).unwrap();
    let e = c.fail(&["compile", d8.to_str().unwrap(), "-o", out.to_str().unwrap()], &out);
    insta::assert_snapshot!(e, @"error: [TMP]/d8.safetensors: the default hyperparameters do not fit this checkpoint; pass the config it was trained with (--config meta.json): hyperparameter `mda.reduction_c` = 16: larger than the 8 channels of `encoder_level1.0.attn` (the channel MLP would have 0 hidden units)");
    std::fs::write(c.path("mda.json"), r#"{"mda": {"reduction_c": 64}}"#).unwrap();
    let e = c.fail(&["compile", ck.to_str().unwrap(), "--config", c.path("mda.json").to_str().unwrap(), "-o", out.to_str().unwrap()], &out);
    assert!(!e.contains("--config meta.json"), "a given config gets no hint: {e}");
    assert!(e.starts_with("error: hyperparameter `mda.reduction_c` = 64: larger than the"), "{e}");
}
