//! Mapping-time benchmark: the lynxi back end (`compile_with`, every schedule) on the SpikerIR
//! paper configuration (4 levels, dim 48, 2 blocks per level, T = 4, ~23.6 M parameters, f16)
//! at 256x256 on `ka200-like`. The checkpoint is generated in memory (random, uncalibrated
//! weights: mapping does not depend on their values). Goal: under 5 s per mapping.

use criterion::{criterion_group, criterion_main, Criterion};
use spikerc_compiler::passes::Precision;
use spikerc_models::spikerir::{random_checkpoint, Architecture};
use spikerc_models::HyperParams;
use spikerc_targets::lynxi::{compile_with, Options};
use spikerc_targets::machine::Machine;
use spikerc_targets::Schedule;

fn bench_mapping(c: &mut Criterion) {
    let arch = Architecture {
        dim: 48,
        levels: 4,
        en_blocks: vec![2; 4],
        de_blocks: vec![2; 4],
        in_channels: 3,
        out_channels: 3,
    };
    let hp = HyperParams::default();
    let ckpt = random_checkpoint(&arch, &hp, 1).unwrap();
    let art = spikerc_models::compile(&ckpt, &hp, Precision::F16, "paper.safetensors").unwrap();
    let m = Machine::preset("ka200-like").unwrap();
    let opts = Options {
        input_size: [256, 256],
        preset: "ka200-like".into(),
    };
    let mut group = c.benchmark_group("map_paper_config_ka200");
    group.sample_size(10);
    for s in Schedule::ALL {
        group.bench_function(s.name(), |b| b.iter(|| compile_with(&art, &m, &opts, s).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench_mapping);
criterion_main!(benches);
