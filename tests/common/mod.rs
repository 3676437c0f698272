//! Helpers shared by the top-level integration tests: locating `../shared`, reading fixtures
//! and comparing executions with their golden outputs.

#![allow(dead_code)]

use spikerc_compiler::interp::Array;
use spikerc_models::HyperParams;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `$SPIKERC_SHARED`, or `../shared` next to the repository.
pub fn shared_dir() -> PathBuf {
    std::env::var_os("SPIKERC_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

/// Every fixture directory (one with `meta.json` and `golden.safetensors`), sorted.
pub fn fixtures() -> Vec<PathBuf> {
    let dir = shared_dir().join("fixtures");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (set SPIKERC_SHARED)", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("meta.json").is_file() && p.join("golden.safetensors").is_file())
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no fixtures in {}", dir.display());
    v
}

pub fn hyper(dir: &Path) -> HyperParams {
    HyperParams::from_file(&dir.join("meta.json")).unwrap()
}

/// The golden file of a fixture.
pub struct Golden {
    pub input: Array,
    pub output: Array,
    pub features: BTreeMap<String, Array>,
    pub spikes: BTreeMap<String, u64>,
}

pub fn golden(dir: &Path) -> Golden {
    let bytes = std::fs::read(dir.join("golden.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let arr = |name: &str| {
        let t = st.tensor(name).unwrap();
        let data = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        Array::new(t.shape().to_vec(), data)
    };
    let mut g = Golden {
        input: arr("input"),
        output: arr("output"),
        features: BTreeMap::new(),
        spikes: BTreeMap::new(),
    };
    for name in st.names() {
        if let Some(m) = name.strip_prefix("spikes/") {
            let t = st.tensor(name).unwrap();
            g.spikes.insert(
                m.to_string(),
                f64::from_le_bytes(t.data()[..8].try_into().unwrap()) as u64,
            );
        } else if let Some(f) = name.strip_prefix("features/") {
            g.features.insert(f.to_string(), arr(name));
        }
    }
    g
}

pub fn max_abs_diff(a: &Array, b: &Array) -> f32 {
    assert_eq!(a.shape, b.shape, "shapes differ");
    a.data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Asserts spike counts equal the golden ones within 0.01 % per layer, same layer set.
pub fn assert_spikes(label: &str, got: &BTreeMap<String, u64>, want: &BTreeMap<String, u64>) {
    let gk: Vec<_> = got.keys().collect();
    let wk: Vec<_> = want.keys().collect();
    assert_eq!(gk, wk, "{label}: LIF layer sets differ");
    for (k, &w) in want {
        let g = got[k];
        let tol = (w as f64 * 1e-4).max(0.0);
        assert!(
            (g as f64 - w as f64).abs() <= tol,
            "{label}: {k}: {g} spikes, golden {w}"
        );
    }
}

/// Runs the `spikerc` binary under test.
pub fn spikerc_output(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spikerc"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `spikerc` and asserts success, showing its stderr otherwise.
pub fn ok(args: &[&str]) -> Output {
    let o = spikerc_output(args);
    assert!(
        o.status.success(),
        "spikerc {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A path as `&str` for argument lists.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
