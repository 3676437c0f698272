//! Compile-time benchmark: importing, verifying and optimizing the SpikerIR paper
//! configuration (4 levels, dim 48, 2 blocks per level, T = 4, ~23.6 M parameters), f32 and
//! f16, plus writing the artifact bytes. The checkpoint is generated in memory.

use criterion::{criterion_group, criterion_main, Criterion};
use spikerc_compiler::passes::Precision;
use spikerc_models::spikerir::{random_checkpoint, Architecture};
use spikerc_models::HyperParams;

fn paper() -> Architecture {
    Architecture { dim: 48, levels: 4, en_blocks: vec![2; 4], de_blocks: vec![2; 4], in_channels: 3, out_channels: 3 }
}

fn bench_compile(c: &mut Criterion) {
    let hp = HyperParams::default();
    let ckpt = random_checkpoint(&paper(), &hp, 1).unwrap();
    let mut group = c.benchmark_group("compile_paper_config");
    group.sample_size(10);
    for precision in [Precision::F32, Precision::F16] {
        group.bench_function(format!("{precision}"), |b| {
            b.iter(|| spikerc_models::compile(&ckpt, &hp, precision, "paper.safetensors").unwrap().to_bytes())
        });
    }
    group.finish();
}

criterion_group!(benches, bench_compile);
criterion_main!(benches);
