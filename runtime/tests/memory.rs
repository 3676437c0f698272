//! The peak-memory estimate against the heap a run really uses (a counting global
//! allocator), on the shared fixtures at several sizes, f32 and f16: the estimate is an upper
//! bound and not wildly loose; and the planner tiles or refuses within a budget.

use spikerc_compiler::interp::Array;
use spikerc_compiler::passes::Precision;
use spikerc_compiler::Verified;
use spikerc_runtime::{tile, Program, RunOptions, RuntimeError};
use std::alloc::{GlobalAlloc, Layout, System};

mod common;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Counts live heap bytes and their high-water mark.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: forwards to the system allocator unchanged, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(l);
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        LIVE.fetch_sub(l.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = System.realloc(p, l, new);
        if !q.is_null() {
            if new >= l.size() {
                grew(new - l.size());
            } else {
                LIVE.fetch_sub(l.size() - new, Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn fixture(name: &str) -> PathBuf {
    std::env::var_os("SPIKERC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
        .join("fixtures")
        .join(name)
}

fn compiled(name: &str, precision: Precision) -> Verified {
    let dir = fixture(name);
    let hp = spikerc_models::HyperParams::from_file(&dir.join("meta.json")).unwrap();
    spikerc_models::compile_checkpoint(&dir.join("model.safetensors"), &hp, precision)
        .unwrap()
        .graph
}

/// A deterministic `[n, 3, h, w]` image in [0, 1).
fn image(n: usize, h: usize, w: usize) -> Array {
    let data = common::values(n * 3 * h * w, 5).iter().map(|v| 0.5 + 0.5 * v).collect();
    Array::new(vec![n, 3, h, w], data)
}

const THREADS: usize = 2;

/// The allocator counts every thread: the tests of this binary run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Heap bytes two runs of a fresh program on `x` add at their peak (the program's pool
/// persists between them, as in tiling).
fn measured(g: &Verified, x: &Array) -> u64 {
    let p = Program::new(g);
    let opts = RunOptions {
        threads: THREADS,
        profile: false,
    };
    // Warm the thread pool machinery outside the measurement.
    drop(p.run(&image(1, 8, 8).clone(), &opts));
    p.release_buffers();
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    for _ in 0..2 {
        let r = p.run(x, &opts).unwrap();
        drop(r);
    }
    (PEAK.load(Relaxed) - base) as u64
}

#[test]
fn the_estimate_bounds_the_measured_peak_and_is_not_loose() {
    let _serial = serial();
    let mut rows = vec![];
    for (name, precision, n, h, w) in [
        ("spikerir-l3-d16", Precision::F32, 1, 32, 32),
        ("spikerir-l3-d16", Precision::F32, 1, 96, 64),
        ("spikerir-l3-d16", Precision::F16, 2, 64, 64),
        ("spikerir-l4-d16", Precision::F32, 1, 128, 128),
        ("spikerir-l4-d16", Precision::F16, 1, 64, 96),
    ] {
        let g = compiled(name, precision);
        let x = image(n, h, w);
        let got = measured(&g, &x);
        let est = Program::new(&g).peak_bytes((n, h, w), THREADS);
        rows.push(format!(
            "{name} {precision:?} {n}x{h}x{w}: estimate {est} measured {got} ratio {:.3}",
            est as f64 / got as f64
        ));
        if got > est || est as f64 > 1.5 * got as f64 + (1 << 20) as f64 {
            panic!("estimate not a tight upper bound:\n{}", rows.join("\n"));
        }
    }
    eprintln!("{}", rows.join("\n"));
}

#[test]
fn the_planner_runs_whole_tiles_within_the_budget_or_refuses() {
    let _serial = serial();
    let g = compiled("spikerir-l3-d16", Precision::F32);
    let p = Program::new(&g);
    let (n, h, w) = (1, 96, 80);
    let whole = tile::plan(&p, (n, h, w), None, 8, u64::MAX, THREADS).unwrap();
    assert_eq!(whole.tile, None);
    // Half of what the whole image needs: tiles, the largest that fit.
    let budget = whole.bytes / 2;
    let tiled = tile::plan(&p, (n, h, w), None, 8, budget, THREADS).unwrap();
    let (t, o) = tiled.tile.expect("tiled");
    assert!(tiled.bytes <= budget && o == 8 && t % g.spatial_divisor() == 0, "{tiled:?}");
    let bigger = t + g.spatial_divisor();
    let over = tile::plan(&p, (n, h, w), Some(bigger), 8, budget, THREADS);
    assert!(matches!(over, Err(RuntimeError::OverBudget { .. })), "{over:?}");
    // The tiled run is what run_tiled gives with those parameters, and it stays in budget.
    let x = image(n, h, w);
    let opts = RunOptions {
        threads: THREADS,
        profile: false,
    };
    let a = tile::run_planned(&p, &x, &tiled, &opts).unwrap();
    let b = tile::run_tiled(&p, &x, t, o, &opts).unwrap();
    assert_eq!(a.outputs, b.outputs);
    // A budget below the smallest tile: a refusal naming the numbers.
    let err = tile::plan(&p, (n, h, w), None, 8, 1 << 20, THREADS).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("needs {} for a 96x80 input, budget 1.0 MiB: even", fmt(whole.bytes))),
        "{msg}"
    );
}

/// The runtime's byte formatting (GiB with two decimals, MiB below).
fn fmt(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

#[test]
fn bad_tiles_and_thread_counts_are_errors() {
    let _serial = serial();
    let g = compiled("spikerir-l3-d16", Precision::F32);
    let p = Program::new(&g);
    let x = image(1, 16, 16);
    let opts = RunOptions::default();
    let e = tile::run_tiled(&p, &x, 8, 16, &opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        "tile 8 with overlap 16 is invalid: the overlap must not exceed the tile (each window would be mostly context)"
    );
    assert!(tile::run_tiled(&p, &x, 8, usize::MAX, &opts).is_err());
    assert!(tile::run_tiled(&p, &x, usize::MAX, 3, &opts).is_ok());
    let many = RunOptions {
        threads: spikerc_runtime::max_threads() + 1,
        profile: false,
    };
    assert!(matches!(p.run(&x, &many), Err(RuntimeError::Threads { .. })));
}
