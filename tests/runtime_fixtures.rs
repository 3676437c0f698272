//! The event-driven runtime against the shared fixtures and the reference interpreter:
//! golden output within 1e-4 and spike counts within 0.01 % (f32), bit-identical outputs and
//! identical spikes versus the interpreter (f32 and f16), identical bits for 1 and 2 threads
//! and for observed and unobserved runs (LIF spikes packed straight into bitmaps), and
//! per-module AC/MAC counts equal to the reference implementation's `ops.json`.

mod common;

use common::*;
use spikerc_compiler::interp::{self, Array};
use spikerc_compiler::passes::Precision;
use spikerc_compiler::Verified;
use spikerc_runtime::{Isa, Program, RunOptions, RunResult};
use std::collections::BTreeMap;
use std::path::Path;

fn compiled(dir: &Path, precision: Precision) -> Verified {
    let ckpt = spikerc_models::Checkpoint::load(&dir.join("model.safetensors")).unwrap();
    spikerc_models::compile(&ckpt, &hyper(dir), precision, "model.safetensors")
        .unwrap()
        .graph
}

fn run(p: &Program, x: &Array, threads: usize) -> RunResult {
    p.run(
        x,
        &RunOptions {
            threads,
            profile: false,
        },
    )
    .unwrap()
}

fn bits(a: &Array) -> Vec<u32> {
    a.data.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn f32_fixtures_match_golden_and_the_interpreter_bit_for_bit() {
    for dir in fixtures() {
        let label = dir.file_name().unwrap().to_string_lossy().to_string();
        let gold = golden(&dir);
        let g = compiled(&dir, Precision::F32);
        let p = Program::new(&g);
        let r1 = run(&p, &gold.input, 1);
        let d = max_abs_diff(&r1.outputs[0], &gold.output);
        assert!(d <= 1e-4, "{label}: output differs from golden by {d}");
        assert_spikes(&label, &r1.spikes, &gold.spikes);
        let ex = interp::run(&g, &gold.input).unwrap();
        assert_eq!(
            r1.spikes, ex.spikes,
            "{label}: spikes differ from the interpreter"
        );
        assert_eq!(
            bits(&r1.outputs[0]),
            bits(&ex.outputs[0]),
            "{label}: output bits differ from the interpreter"
        );
        let r2 = run(&p, &gold.input, 2);
        assert_eq!(
            bits(&r1.outputs[0]),
            bits(&r2.outputs[0]),
            "{label}: 1 vs 2 threads"
        );
        assert_eq!(r1.ops, r2.ops, "{label}: op counts depend on threads");
        // An observed run materialises every LIF's spikes; an unobserved one keeps them only
        // as the consuming convolution's bitmaps. Same bits, same counts.
        let mut seen = 0usize;
        let ro = p
            .run_observed(
                &gold.input,
                &RunOptions {
                    threads: 2,
                    profile: false,
                },
                |_, _| seen += 1,
            )
            .unwrap();
        assert_eq!(seen, g.node_count(), "{label}: every node observed");
        assert_eq!(
            bits(&r1.outputs[0]),
            bits(&ro.outputs[0]),
            "{label}: observed run"
        );
        assert_eq!(
            (&r1.spikes, &r1.ops),
            (&ro.spikes, &ro.ops),
            "{label}: observed run"
        );
    }
}

#[test]
fn f16_artifacts_agree_with_the_interpreter_exactly_for_any_thread_count() {
    for dir in fixtures() {
        let label = dir.file_name().unwrap().to_string_lossy().to_string();
        let gold = golden(&dir);
        let g = compiled(&dir, Precision::F16);
        let p = Program::new(&g);
        let r1 = run(&p, &gold.input, 1);
        let r2 = run(&p, &gold.input, 2);
        let ex = interp::run(&g, &gold.input).unwrap();
        assert_eq!(
            r1.spikes, ex.spikes,
            "{label}: f16 spikes differ from the interpreter"
        );
        let d = max_abs_diff(&r1.outputs[0], &ex.outputs[0]);
        assert!(d <= 1e-4, "{label}: f16 output differs by {d}");
        assert_eq!(
            bits(&r1.outputs[0]),
            bits(&ex.outputs[0]),
            "{label}: f16 bits differ from the interpreter"
        );
        assert_eq!(
            bits(&r1.outputs[0]),
            bits(&r2.outputs[0]),
            "{label}: f16 1 vs 2 threads"
        );
    }
}

#[test]
fn conv_op_counts_equal_the_reference_ops_json() {
    for dir in fixtures() {
        let label = dir.file_name().unwrap().to_string_lossy().to_string();
        let gold = golden(&dir);
        let p = Program::new(&compiled(&dir, Precision::F32));
        let r = run(&p, &gold.input, 0);
        let ops: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("ops.json")).unwrap()).unwrap();
        let modules = ops["modules"].as_object().unwrap();
        assert!(!modules.is_empty());
        let mut checked = BTreeMap::new();
        for (m, want) in modules {
            let got = r
                .ops
                .get(m)
                .unwrap_or_else(|| panic!("{label}: no counts for conv {m}"));
            assert_eq!(got.ac, want["ac"].as_u64().unwrap(), "{label}: {m} ac");
            assert_eq!(got.mac, want["mac"].as_u64().unwrap(), "{label}: {m} mac");
            checked.insert(m.clone(), got.ac + got.mac);
        }
        let total = &ops["total"];
        let ac: u64 = modules.keys().map(|m| r.ops[m].ac).sum();
        assert_eq!(ac, total["ac"].as_u64().unwrap(), "{label}: total ac");
        // Every LIF layer's spikes_out equals its spike count.
        for (m, s) in &r.spikes {
            assert_eq!(r.ops[m].spikes_out, *s, "{label}: {m}");
        }
    }
}

#[test]
fn every_instruction_set_level_gives_the_same_bits() {
    let dir = &fixtures()[0];
    let gold = golden(dir);
    for precision in [Precision::F32, Precision::F16] {
        let g = compiled(dir, precision);
        let best = run(&Program::new(&g), &gold.input, 2);
        for level in [Isa::Avx2, Isa::Baseline] {
            let r = run(&Program::with_level(&g, level), &gold.input, 2);
            assert_eq!(
                bits(&r.outputs[0]),
                bits(&best.outputs[0]),
                "{precision} at {level:?}"
            );
            assert_eq!(r.ops, best.ops, "{precision} at {level:?}");
        }
    }
}
