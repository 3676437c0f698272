//! H-KD training of SpikerIR students (cargo feature `torch` for the optimisation itself).
//!
//! * [`data`] — in-memory training set, random patch batches with flips, noise synthesis, a
//!   fixed validation set (no libtorch needed).
//! * [`trainer`] (feature `torch`) — losses (L1 + 0.1 x FFT-L1 + gamma x decoder-feature MSE),
//!   AdamW with a cosine schedule, the ANN teacher, validation, resumable state.
//!
//! The network is the one SpikerIR implementation of [`crate::torch`]: the student is
//! `SpikerIr` with LIF neurons (surrogate gradient sigmoid, alpha = 4, in train mode), the
//! teacher is the same U-Net with `Neuron::Relu` and one time step — an ANN twin whose decoder
//! levels have the same widths and resolutions as the student's, so hints align one to one
//! (a 1x1 projection and average pooling are added only when a wider teacher is asked for).

pub mod data;
#[cfg(feature = "torch")]
pub mod trainer;

pub use data::{Batch, Degradation, TrainSet, ValSet};

/// Cosine learning-rate schedule from `max` at step 0 to `min` at step `total`.
pub fn cosine_lr(step: usize, total: usize, max: f64, min: f64) -> f64 {
    if total == 0 {
        return max;
    }
    let p = (step.min(total) as f64) / total as f64;
    min + 0.5 * (max - min) * (1.0 + (std::f64::consts::PI * p).cos())
}

/// The seed of the random generator of step `step` of phase `phase` (0 teacher, 1 student):
/// batches depend only on `(seed, phase, step)`, so resumed runs draw the same batches.
pub fn step_seed(seed: u64, phase: u64, step: usize) -> u64 {
    crate::eval::noise::fnv1a(
        &[
            seed.to_le_bytes(),
            phase.to_le_bytes(),
            (step as u64).to_le_bytes(),
        ]
        .concat(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_schedule_endpoints_and_midpoint() {
        assert_eq!(cosine_lr(0, 100, 5e-4, 1e-5), 5e-4);
        assert!((cosine_lr(100, 100, 5e-4, 1e-5) - 1e-5).abs() < 1e-18);
        assert!((cosine_lr(50, 100, 5e-4, 1e-5) - (5e-4 + 1e-5) / 2.0).abs() < 1e-15);
        assert!(cosine_lr(30, 100, 5e-4, 1e-5) > cosine_lr(31, 100, 5e-4, 1e-5));
    }

    #[test]
    fn step_seeds_differ_by_step_and_phase() {
        assert_ne!(step_seed(0, 0, 1), step_seed(0, 0, 2));
        assert_ne!(step_seed(0, 0, 1), step_seed(0, 1, 1));
        assert_eq!(step_seed(5, 1, 9), step_seed(5, 1, 9));
    }
}
