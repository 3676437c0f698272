//! Random (uncalibrated) SpikerIR checkpoints of any architecture, initialised as PyTorch
//! does by default: conv weights ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming-uniform with
//! a = sqrt(5)), conv biases likewise, BatchNorm weight ~ U(0.1, 0.4) and bias ~ U(-0.05, 0.05)
//! (the fixtures' recipe), running mean 0 and variance 1.
//!
//! Uncalibrated: deeper layers may fall silent. For a model whose every layer fires, calibrate
//! the BatchNorm statistics on images (`spikerc gen-model`). Used by tests and benchmarks that
//! need shapes and realistic sizes, not quality.

use std::collections::{BTreeMap, BTreeSet};

use super::{expected_tensors, Architecture};
use crate::{Checkpoint, HyperParams, ImportError, RawTensor};

/// Deterministic xorshift64* stream of uniforms in [0, 1).
struct Uniform(u64);

impl Uniform {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A random checkpoint of `arch` (keys and shapes from [`expected_tensors`]), reproducible from
/// `seed`.
pub fn random_checkpoint(arch: &Architecture, hp: &HyperParams, seed: u64) -> Result<Checkpoint, ImportError> {
    let tensors = expected_tensors(arch, hp)?;
    let bn_prefixes: BTreeSet<&str> = tensors.iter().filter_map(|(k, _)| k.strip_suffix(".running_mean")).collect();
    let fan_in: BTreeMap<&str, usize> = tensors
        .iter()
        .filter_map(|(k, s)| Some((k.strip_suffix(".weight")?, s[1..].iter().product::<usize>().max(1))))
        .collect();
    let mut u = Uniform(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut ckpt = Checkpoint::default();
    for (key, shape) in &tensors {
        let n: usize = shape.iter().product();
        let (prefix, role) = key.rsplit_once('.').expect("state_dict keys are dotted");
        let mut uniform = |lo: f32, hi: f32| (0..n).map(|_| lo + (hi - lo) * u.next()).collect::<Vec<f32>>();
        let data = match (bn_prefixes.contains(prefix), role) {
            (true, "running_mean") => vec![0.0; n],
            (true, "running_var") => vec![1.0; n],
            (true, "weight") => uniform(0.1, 0.4),
            (true, _) => uniform(-0.05, 0.05),
            (false, _) => {
                let bound = 1.0 / (fan_in[prefix] as f32).sqrt();
                uniform(-bound, bound)
            }
        };
        ckpt.tensors.insert(key.clone(), RawTensor { dtype: "f32".into(), shape: shape.clone(), data: Some(data) });
    }
    Ok(ckpt)
}
