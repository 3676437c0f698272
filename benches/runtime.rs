//! Runtime benchmark: the SpikerIR paper configuration (4 levels, dim 48, 2 blocks per level,
//! T = 4, 23.6 M parameters) at 256x256 on 2 threads, f32 (Winograd and direct) and f16
//! artifacts, plus libtorch dense execution of the same checkpoint (feature `torch`).
//!
//! The model is generated in memory as `spikerc gen-model` does: PyTorch-default random
//! weights, then BatchNorm statistics calibrated on one forward pass over image crops so every
//! LIF layer fires at ~20-30 % (Kodak24 crops from `$SPIKERC_SHARED` when present, else a
//! synthetic pattern). `SPIKERC_BENCH_SIZE` overrides the image side (default 256).
//! Run: `cargo bench --features torch --bench runtime`.

use criterion::{criterion_group, criterion_main, Criterion};
use spikerc_compiler::interp::Array;
use spikerc_compiler::passes::{OptimizeOptions, Precision};
use spikerc_compiler::Verified;
use spikerc_models::spikerir::{import, random_checkpoint, Architecture};
use spikerc_models::{Checkpoint, HyperParams};
use spikerc_runtime::{Program, RunOptions};
use std::path::PathBuf;
use std::time::Duration;

fn paper() -> Architecture {
    Architecture {
        dim: 48,
        levels: 4,
        en_blocks: vec![2; 4],
        de_blocks: vec![2; 4],
        in_channels: 3,
        out_channels: 3,
    }
}

/// `n` centre crops `size x size` of Kodak24 images, else a smooth synthetic batch.
fn images(n: usize, size: usize) -> Array {
    let dir = std::env::var_os("SPIKERC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
        .join("data/test/Kodak24");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    let mut data = Vec::with_capacity(n * 3 * size * size);
    for i in 0..n {
        match files
            .get(i)
            .and_then(|f| image::open(f).ok())
            .map(|im| im.to_rgb32f())
        {
            Some(im) if im.width() as usize >= size && im.height() as usize >= size => {
                let (x0, y0) = (
                    (im.width() as usize - size) / 2,
                    (im.height() as usize - size) / 2,
                );
                for c in 0..3 {
                    for y in 0..size {
                        for x in 0..size {
                            data.push(im.get_pixel((x0 + x) as u32, (y0 + y) as u32)[c]);
                        }
                    }
                }
            }
            _ => data.extend(
                (0..3 * size * size)
                    .map(|j| 0.5 + 0.4 * ((j % size) as f32 * 0.05 + i as f32).sin()),
            ),
        }
    }
    Array::new(vec![n, 3, size, size], data)
}

/// The calibrated paper checkpoint (as `spikerc gen-model --seed 1`).
fn calibrated(hp: &HyperParams) -> Checkpoint {
    let mut ckpt = random_checkpoint(&paper(), hp, 1).unwrap();
    let g = Verified::new(import(&ckpt, hp).unwrap().graph).unwrap();
    let (_, stats) = Program::new(&g)
        .calibrate_batch_norms(&images(4, 128), &RunOptions::default())
        .unwrap();
    for (m, s) in stats {
        ckpt.tensors
            .get_mut(&format!("{m}.running_mean"))
            .unwrap()
            .data = Some(s.mean);
        ckpt.tensors
            .get_mut(&format!("{m}.running_var"))
            .unwrap()
            .data = Some(s.var);
    }
    ckpt
}

fn bench_runtime(c: &mut Criterion) {
    let size: usize = std::env::var("SPIKERC_BENCH_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(256);
    let hp = HyperParams::default();
    let ckpt = calibrated(&hp);
    let x = images(1, size);
    let opts = RunOptions {
        threads: 2,
        profile: false,
    };
    let mut group = c.benchmark_group(format!("paper_{size}x{size}_t4_2threads"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    for (precision, winograd, name) in [
        (Precision::F32, true, "runtime_f32"),
        (Precision::F32, false, "runtime_f32_direct"),
        (Precision::F16, true, "runtime_f16"),
    ] {
        let opts_c = OptimizeOptions { precision, winograd };
        let art = spikerc_models::compile(&ckpt, &hp, opts_c, "paper").unwrap();
        let p = Program::new(&art.graph);
        group.bench_function(name, |b| b.iter(|| p.run(&x, &opts).unwrap()));
    }
    #[cfg(feature = "torch")]
    {
        use spikerc_models::torch::{tch, SpikerIr};
        let (_vs, net) = SpikerIr::from_checkpoint(&ckpt, &hp, tch::Device::Cpu).unwrap();
        tch::set_num_threads(2);
        let xt = tch::Tensor::from_slice(&x.data).reshape([1, 3, size as i64, size as i64]);
        group.bench_function("libtorch_dense_f32", |b| {
            b.iter(|| tch::no_grad(|| net.forward_t(&xt, false)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_runtime);
criterion_main!(benches);
