//! `spikerc bench ARTIFACT --size 256 [--threads N] [--checkpoint C --config M]`
//!
//! Times the event-driven runtime on one `size x size` image crop (Kodak24 from
//! `$SPIKERC_SHARED` when available, else a synthetic pattern) and prints, measured in the same
//! run: time per image, time per op kind and the slowest layers, achieved AC/s and MAC/s
//! against this machine's measured peak, and the speed ratios versus the reference
//! interpreter (at a smaller size when it would be too slow, which is said) and versus
//! libtorch dense execution of the same network (feature `torch`, with `--checkpoint`).

use anyhow::bail;
#[cfg(feature = "torch")]
use anyhow::Context;
use clap::Args as ClapArgs;
use spikerc_compiler::interp::{self, Array};
use spikerc_compiler::Artifact;
use spikerc_runtime::{simd, tile, Program, RunOptions, RunResult};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::HyperOpts;

#[derive(ClapArgs)]
pub struct Args {
    /// Compiled artifact.
    pub artifact: PathBuf,
    /// Image side.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Threads for the runtime (and libtorch).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Timed repetitions (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub iters: usize,
    /// Image side for the interpreter comparison [default: min(size, 64); the interpreter is
    /// ~10-100x slower].
    #[arg(long)]
    pub interp_size: Option<usize>,
    /// Skip the interpreter comparison.
    #[arg(long)]
    pub no_interp: bool,
    /// Checkpoint of the artifact, for the libtorch dense comparison (feature `torch`).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    #[command(flatten)]
    pub hyper: HyperOpts,
    /// Slowest layers to list.
    #[arg(long, default_value_t = 12)]
    pub layers: usize,
}

/// A `size x size` input: the centre crop of the first Kodak24 image, else a smooth pattern.
fn bench_input(size: usize) -> Array {
    let dir = std::env::var_os("SPIKERC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
        .join("data/test/Kodak24");
    if let Ok(a) = super::gen_model::calibration_batch(&dir, 1, size) {
        return a;
    }
    let data = (0..3 * size * size)
        .map(|i| {
            let (c, y, x) = (i / (size * size), (i / size) % size, i % size);
            0.5 + 0.4 * ((x as f32 * 0.05 + c as f32).sin() * (y as f32 * 0.037).cos())
        })
        .collect();
    Array::new(vec![1, 3, size, size], data)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median wall time of `iters` runs of `f` after one warm-up run.
fn time<T>(
    iters: usize,
    mut f: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<(Duration, T, f64)> {
    let mut last = f()?;
    let mut times = vec![];
    let c0 = cpu_seconds();
    for _ in 0..iters.max(1) {
        let t = Instant::now();
        last = f()?;
        times.push(t.elapsed());
    }
    let cpu = match (c0, cpu_seconds()) {
        (Some(a), Some(b)) => (b - a) / iters.max(1) as f64,
        _ => 0.0,
    };
    Ok((median(times), last, cpu))
}

/// CPU seconds (user + system, all threads) this process has used, from `/proc/self/stat`
/// (Linux; `None` elsewhere). On a shared machine, CPU time per image is the fairer measure.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn run_rt(p: &Program, x: &Array, threads: usize, profile: bool) -> anyhow::Result<RunResult> {
    Ok(tile::run_image(p, x, &RunOptions { threads, profile })?)
}

pub fn main(a: Args) -> anyhow::Result<()> {
    if a.size == 0 || a.threads == 0 {
        bail!("--size and --threads must be positive");
    }
    let art = Artifact::load(&a.artifact)?;
    let p = Program::new(&art.graph);
    let x = bench_input(a.size);
    println!(
        "bench {} ({}, {}, T={}) at {}x{}, {} thread(s), kernels {}",
        a.artifact.display(),
        art.meta.model,
        format!("{:?}", art.meta.precision).to_lowercase(),
        art.meta.time_steps,
        a.size,
        a.size,
        a.threads,
        p.level().name()
    );
    println!("host         {}", spikerc_runtime::host::Host::detect());
    let (t_rt, res, cpu_rt) = time(a.iters, || run_rt(&p, &x, a.threads, false))?;
    let ops = res.total_ops();
    let conv_mac: u64 = art
        .graph
        .ids()
        .filter_map(|i| match &art.graph.node(i).op {
            spikerc_compiler::Op::Conv2d(c) if !c.event_driven => {
                res.ops.get(&art.graph.node(i).name).map(|o| o.mac)
            }
            _ => None,
        })
        .sum::<u64>();
    let secs = t_rt.as_secs_f64();
    let spikes: u64 = res.spikes.values().sum();
    println!(
        "runtime      {:>9.3} s/image (median of {}), {:.3} CPU s/image, firing rate {:.3}",
        secs,
        a.iters,
        cpu_rt,
        spikes as f64 / ops.neuron_updates.max(1) as f64
    );
    let peak = simd::peak_mac_per_s(p.level(), a.threads, 0.3);
    println!(
        "work         {:.2} G AC (spike convs), {:.2} G MAC (real convs), {:.2} G MAC other",
        ops.ac as f64 / 1e9,
        conv_mac as f64 / 1e9,
        (ops.mac - conv_mac) as f64 / 1e9
    );
    println!(
        "throughput   {:.1} G AC/s and {:.1} G MAC/s over the whole run; machine peak {:.1} G mul+add/s ({} threads, measured)",
        ops.ac as f64 / secs / 1e9,
        conv_mac as f64 / secs / 1e9,
        peak / 1e9,
        a.threads
    );
    // Per-layer profile (one extra run).
    let prof = run_rt(&p, &x, a.threads, true)?;
    let total: Duration = prof.timeline.iter().map(|n| n.time).sum();
    let mut by_op: BTreeMap<&str, (Duration, u64, u64)> = BTreeMap::new();
    for n in &prof.timeline {
        let e = by_op.entry(n.op).or_default();
        e.0 += n.time;
    }
    for (m, c) in &prof.ops {
        if let Some(n) = prof
            .timeline
            .iter()
            .find(|n| &n.module == m && n.op.starts_with("conv2d"))
        {
            let e = by_op.entry(n.op).or_default();
            e.1 += c.ac;
            e.2 += c.mac;
        }
    }
    let mut kinds: Vec<_> = by_op.into_iter().collect();
    kinds.sort_by_key(|k| std::cmp::Reverse(k.1 .0));
    println!(
        "time per op kind (profiled run, {:.3} s):",
        total.as_secs_f64()
    );
    for (op, (t, ac, mac)) in &kinds {
        let s = t.as_secs_f64();
        let rate = match (ac, mac) {
            (0, 0) => String::new(),
            (ac, 0) => format!("  {:.1} G AC/s", *ac as f64 / s / 1e9),
            (_, mac) => format!("  {:.1} G MAC/s", *mac as f64 / s / 1e9),
        };
        println!(
            "  {op:<12} {:>8.3} s {:>5.1} %{rate}",
            s,
            100.0 * s / total.as_secs_f64()
        );
    }
    let mut slow: Vec<_> = prof.timeline.iter().collect();
    slow.sort_by_key(|n| std::cmp::Reverse(n.time));
    println!("slowest layers:");
    for n in slow.iter().take(a.layers) {
        let c = prof.ops.get(&n.module).copied().unwrap_or_default();
        println!(
            "  {:<40} {:<11} {:>8.2} ms  {:>7.3} G AC {:>7.3} G MAC",
            n.module,
            n.op,
            n.time.as_secs_f64() * 1e3,
            c.ac as f64 / 1e9,
            c.mac as f64 / 1e9
        );
    }
    if !a.no_interp {
        let s = a.interp_size.unwrap_or(a.size.min(64));
        let xs = bench_input(s);
        let padded = xs.pad_reflect_to_multiple(art.graph.spatial_divisor());
        let t0 = Instant::now();
        interp::run(&art.graph, &padded)?;
        let t_in = t0.elapsed().as_secs_f64();
        let (t_small, _, _) = time(a.iters, || run_rt(&p, &xs, a.threads, false))?;
        println!(
            "vs interp    {:.1}x faster at {s}x{s} (interpreter {:.3} s single-threaded, runtime {:.3} s){}",
            t_in / t_small.as_secs_f64(),
            t_in,
            t_small.as_secs_f64(),
            if s != a.size { " — measured at the smaller size, the interpreter is too slow at full size" } else { "" }
        );
    }
    // The runtime's buffers (a program keeps a run's working set) are released first, so the
    // libtorch measurement runs in the same memory conditions the runtime had.
    p.release_buffers();
    drop(res);
    torch_compare(&a, &x, secs, cpu_rt)?;
    Ok(())
}

#[cfg(feature = "torch")]
fn torch_compare(a: &Args, x: &Array, secs: f64, cpu_rt: f64) -> anyhow::Result<()> {
    use spikerc_models::torch::{tch, SpikerIr};
    let Some(ck) = &a.checkpoint else {
        println!("vs libtorch  skipped (pass --checkpoint and --config of the artifact's model)");
        return Ok(());
    };
    let hp = a.hyper.resolve(Some(ck))?;
    let ckpt = spikerc_models::Checkpoint::load(ck)?;
    let (_vs, net) = SpikerIr::from_checkpoint(&ckpt, &hp, tch::Device::Cpu)
        .with_context(|| format!("{}: building the libtorch model", ck.display()))?;
    tch::set_num_threads(a.threads as i32);
    let xt = tch::Tensor::from_slice(&x.data)
        .reshape(x.shape.iter().map(|&d| d as i64).collect::<Vec<_>>());
    let (t, _, cpu) = time(a.iters, || Ok(tch::no_grad(|| net.forward_t(&xt, false))))?;
    println!(
        "vs libtorch  {:.2}x faster by wall time, {:.2}x by CPU time (libtorch dense {:.3} s/image, {:.3} CPU s/image, {} threads, same input)",
        t.as_secs_f64() / secs,
        if cpu_rt > 0.0 { cpu / cpu_rt } else { f64::NAN },
        t.as_secs_f64(),
        cpu,
        a.threads
    );
    Ok(())
}

#[cfg(not(feature = "torch"))]
fn torch_compare(a: &Args, _x: &Array, _secs: f64, _cpu: f64) -> anyhow::Result<()> {
    if a.checkpoint.is_some() {
        bail!("the libtorch comparison needs a build with `--features torch`");
    }
    println!("vs libtorch  skipped (build with --features torch)");
    Ok(())
}
