//! Conformance of the compiler and the reference interpreter with the shared fixtures: every
//! fixture, from `.safetensors` (and `.pt` with feature `torch`), before and after every pass,
//! reproduces the golden output within 1e-4, every LIF layer's spike count within 0.01 %, and
//! the decoder features within 1e-4. Also: architectures not among the fixtures import and run.
//!
//! Stages are judged with the interpreter's wide (f64) accumulation so that accumulation-order
//! noise (~1e-6) cannot decide a borderline neuron: with plain f32 accumulation, the unfolded l4
//! graph flips one neuron of `up4_3.up.0` that sits within 1e-6 of threshold, and the flip
//! cascades (0.047 at the output). The optimized graph is also checked in the default f32 mode,
//! the contract engines reproduce.

mod common;

use common::*;
use spikerc_compiler::interp::{run_with, Array, Options};
use spikerc_compiler::passes::{Dce, FoldBatchNorm, InferFacts, Pass, PassManager, Precision};
use spikerc_compiler::{Graph, NodeId, Verified};
use spikerc_models::spikerir::{import, random_checkpoint, Architecture};
use spikerc_models::{Checkpoint, HyperParams};
use std::collections::BTreeMap;

/// Runs `g` on the golden input and checks output, spikes and the decoder features.
fn check_stage(label: &str, g: &Graph, taps: &BTreeMap<String, NodeId>, gold: &Golden, opts: Options) {
    let v = Verified::new(g.clone()).unwrap_or_else(|e| panic!("{label}: {e}"));
    let mut feats: BTreeMap<String, Array> = BTreeMap::new();
    let tap_ids: BTreeMap<NodeId, &String> = taps.iter().filter(|(_, id)| g.contains(**id)).map(|(k, id)| (*id, k)).collect();
    let exec = run_with(&v, &gold.input, opts, |id, a| {
        if let Some(name) = tap_ids.get(&id) {
            // Decoder features in the golden file are averaged over T.
            let t = a.shape[0];
            let per = a.len() / t;
            let mean = (0..per).map(|i| (0..t).map(|s| a.data[s * per + i] as f64).sum::<f64>() / t as f64).map(|x| x as f32).collect();
            feats.insert((*name).clone(), Array::new(a.shape[1..].to_vec(), mean));
        }
    })
    .unwrap();
    assert_spikes(label, &exec.spikes, &gold.spikes);
    let d = max_abs_diff(&exec.outputs[0], &gold.output);
    assert!(d <= 1e-4, "{label}: output differs by {d}");
    assert!(!feats.is_empty(), "{label}: no decoder features observed");
    for (name, f) in &feats {
        let d = max_abs_diff(f, &gold.features[name]);
        assert!(d <= 1e-4, "{label}: feature {name} differs by {d}");
    }
}

fn check_fixture_all_stages(ckpt: &Checkpoint, dir: &std::path::Path, label: &str) {
    let gold = golden(dir);
    let imported = import(ckpt, &hyper(dir)).unwrap();
    let mut g = imported.graph;
    let wide = Options { wide_accumulation: true };
    check_stage(&format!("{label} imported"), &g, &imported.taps, &gold, wide);
    let mut pm = PassManager { verify_each: true, log: vec![] };
    let passes: Vec<Box<dyn Pass>> = vec![Box::new(InferFacts), Box::new(FoldBatchNorm), Box::new(Dce), Box::new(InferFacts)];
    for mut p in passes {
        pm.run(&mut g, p.as_mut()).unwrap();
        check_stage(&format!("{label} after {}", p.name()), &g, &imported.taps, &gold, wide);
    }
    check_stage(&format!("{label} optimized, f32 accumulation"), &g, &imported.taps, &gold, Options::default());
    let folded = &pm.log[1];
    assert!(folded.changed > 0, "{label}: no BatchNorm folded");
}

#[test]
fn fixtures_from_safetensors_match_golden_before_and_after_every_pass() {
    for dir in fixtures() {
        let ckpt = Checkpoint::load(&dir.join("model.safetensors")).unwrap();
        check_fixture_all_stages(&ckpt, &dir, &dir.file_name().unwrap().to_string_lossy());
    }
}

#[cfg(feature = "torch")]
#[test]
fn fixtures_from_pytorch_pt_read_identically_and_match_golden() {
    for dir in fixtures() {
        let pt = Checkpoint::load(&dir.join("model.pt")).unwrap();
        let st = Checkpoint::load(&dir.join("model.safetensors")).unwrap();
        assert_eq!(pt, st, "{}: .pt and .safetensors state_dicts differ", dir.display());
        let art = spikerc_models::compile(&pt, &hyper(&dir), Precision::F32, "model.pt").unwrap();
        let gold = golden(&dir);
        let exec = spikerc_compiler::interp::run(&art.graph, &gold.input).unwrap();
        assert!(max_abs_diff(&exec.outputs[0], &gold.output) <= 1e-4);
        assert_spikes("pt", &exec.spikes, &gold.spikes);
    }
}

#[test]
fn compiled_artifacts_are_byte_identical_across_compiles_and_reproduce_golden() {
    for dir in fixtures() {
        let hp = hyper(&dir);
        let path = dir.join("model.safetensors");
        let a = spikerc_models::compile_checkpoint(&path, &hp, Precision::F32).unwrap().to_bytes();
        let b = spikerc_models::compile_checkpoint(&path, &hp, Precision::F32).unwrap().to_bytes();
        assert_eq!(a, b, "{}: compiles differ", dir.display());
        let f16a = spikerc_models::compile_checkpoint(&path, &hp, Precision::F16).unwrap();
        assert_eq!(f16a.to_bytes(), spikerc_models::compile_checkpoint(&path, &hp, Precision::F16).unwrap().to_bytes());
        let q = f16a.report.quantization.as_ref().unwrap();
        assert!(q.rel_error > 0.0 && q.rel_error < 1e-3, "f16 relative weight error {}", q.rel_error);
        let loaded = spikerc_compiler::Artifact::from_bytes(&a, "a").unwrap();
        let gold = golden(&dir);
        let exec = spikerc_compiler::interp::run(&loaded.graph, &gold.input).unwrap();
        assert!(max_abs_diff(&exec.outputs[0], &gold.output) <= 1e-4);
    }
}

#[test]
fn unseen_widths_depths_and_time_steps_import_and_run() {
    let cases = [
        (Architecture { dim: 24, levels: 4, en_blocks: vec![1, 1, 1, 1], de_blocks: vec![1, 1, 1, 1], in_channels: 3, out_channels: 3 }, 8, (2, 16, 24)),
        (Architecture { dim: 32, levels: 3, en_blocks: vec![1, 0, 2], de_blocks: vec![0, 1, 1], in_channels: 3, out_channels: 3 }, 4, (1, 12, 20)),
        (Architecture { dim: 16, levels: 2, en_blocks: vec![1, 1], de_blocks: vec![1, 1], in_channels: 3, out_channels: 3 }, 6, (2, 6, 10)),
    ];
    for (arch, t, (n, h, w)) in cases {
        let hp = HyperParams { time_steps: t, ..HyperParams::default() };
        let ckpt = random_checkpoint(&arch, &hp, 7).unwrap();
        let imported = import(&ckpt, &hp).unwrap();
        assert_eq!(imported.arch, arch);
        let art = spikerc_models::compile(&ckpt, &hp, Precision::F32, "synthetic").unwrap();
        assert_eq!(art.graph.time_steps(), t);
        assert_eq!(art.graph.spatial_divisor(), 1 << (arch.levels - 1));
        let x = Array::new(vec![n, 3, h, w], (0..n * 3 * h * w).map(|i| (i % 17) as f32 / 17.0).collect());
        let exec = spikerc_compiler::interp::run(&art.graph, &x).unwrap();
        assert_eq!(exec.outputs[0].shape, [n, 3, h, w]);
        assert!(exec.outputs[0].data.iter().all(|v| v.is_finite()));
        let lifs = 2 * (arch.en_blocks.iter().sum::<usize>() + arch.de_blocks.iter().sum::<usize>()) + 2 * (arch.levels - 1) + (arch.levels - 2);
        assert_eq!(exec.spikes.len(), lifs, "{}", arch.summary());
        for (name, &neurons) in &exec.neurons {
            assert_eq!(neurons % (t * n) as u64, 0, "{name}: neuron updates are per step and image");
        }
    }
}
