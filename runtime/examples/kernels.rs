//! Micro-benchmark of the convolution kernels on one thread (development aid):
//! `cargo run --release -p spikerc-runtime --example kernels [C] [SIDE] [RATE]`.

use spikerc_compiler::ir::Conv2d;
use spikerc_compiler::Tensor;
use spikerc_runtime::conv::{DenseConv, SpikeConv};
use spikerc_runtime::winograd::WinogradConv;
use spikerc_runtime::Level;
use std::time::Instant;

/// Nanoseconds this thread has spent on a CPU (Linux), so timings survive a busy machine.
fn cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Seconds of CPU time (falling back to wall time) per call of `f`, repeating it until at
/// least 0.3 s have been measured (the CPU clock ticks in milliseconds).
fn timed<T>(mut f: impl FnMut() -> T) -> (f64, T) {
    let (c0, t) = (cpu_ns(), Instant::now());
    let mut n = 1;
    let mut r = f();
    let spent = |c0: Option<u64>| match (c0, cpu_ns()) {
        (Some(a), Some(b)) => (b - a) as f64 * 1e-9,
        _ => t.elapsed().as_secs_f64(),
    };
    while spent(c0) < 0.3 {
        r = f();
        n += 1;
    }
    (spent(c0) / n as f64, r)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let c: usize = args.get(1).map_or(48, |s| s.parse().unwrap());
    let side: usize = args.get(2).map_or(128, |s| s.parse().unwrap());
    let rate: f32 = args.get(3).map_or(0.25, |s| s.parse().unwrap());
    let n = c * c * 9;
    let w: Vec<f32> = (0..n)
        .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 5000.0)
        .collect();
    let conv = Conv2d {
        weight: Tensor::from_f32(vec![c, c, 3, 3], w),
        bias: Some(Tensor::from_f32(vec![c], vec![0.1; c])),
        stride: [1, 1],
        padding: [1, 1],
        event_driven: true,
        algorithm: Default::default(),
    };
    let mut seed = 12345u64;
    let x: Vec<f32> = (0..c * side * side)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            ((seed % 10000) as f32 / 10000.0 < rate) as u8 as f32
        })
        .collect();
    let level = Level::detect();
    let only = args.get(4).cloned().unwrap_or_default();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        let d = DenseConv::new(&conv);
        let wino = WinogradConv::new(&Conv2d {
            event_driven: false,
            algorithm: spikerc_compiler::ir::ConvAlgorithm::Winograd2x2,
            ..conv.clone()
        });
        let s = SpikeConv::new(&conv);
        let s16 = SpikeConv::new(&Conv2d {
            weight: conv.weight.to_f16(),
            ..conv.clone()
        });
        if only == "winograd" {
            let (e, _) = timed(|| {
                for _ in 0..20 {
                    std::hint::black_box(wino.run(&x, 1, (side, side), level));
                }
            });
            println!("winograd x20: {:.1} ms", e * 1e3);
            return;
        }
        for _ in 0..2 {
            let (e, (_, cc)) = timed(|| d.run(&x, 1, (side, side), (side, side), level));
            println!(
                "dense  {c}ch {side}^2: {:.1} ms, {:.1} G MAC/s",
                e * 1e3,
                cc.mac as f64 / e / 1e9
            );
            let (e, (_, cc)) = timed(|| wino.run(&x, 1, (side, side), level));
            println!(
                "winograd {c}ch {side}^2: {:.1} ms, {:.1} G MAC/s (effective)",
                e * 1e3,
                cc.mac as f64 / e / 1e9
            );
            let (e, (_, cc)) = timed(|| s.run(&x, 1, (side, side), (side, side), level));
            println!(
                "spike  {c}ch {side}^2 rate {rate}: {:.1} ms, {:.1} G AC/s",
                e * 1e3,
                cc.ac as f64 / e / 1e9
            );
            let (e, (_, cc)) = timed(|| s16.run(&x, 1, (side, side), (side, side), level));
            println!(
                "spike16 {c}ch {side}^2 rate {rate}: {:.1} ms, {:.1} G AC/s",
                e * 1e3,
                cc.ac as f64 / e / 1e9
            );
        }
        let peak = spikerc_runtime::simd::peak_mac_per_s(level, 1, 0.2);
        println!("peak {:.1} G mul+add/s", peak / 1e9);
    });
}
