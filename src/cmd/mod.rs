//! One module per subcommand.

pub mod bench;
pub mod compile;
pub mod eval;
pub mod gen_model;
pub mod inspect;
pub mod run;
pub mod demo;
pub mod simulate;
#[cfg(feature = "torch")]
pub mod verify;
#[cfg(feature = "torch")]
pub mod golden;
#[cfg(feature = "torch")]
pub mod train;

use clap::Args as ClapArgs;
use spikerc_models::HyperParams;
use std::path::PathBuf;

/// Hyperparameter options shared by commands that import checkpoints.
#[derive(ClapArgs, Clone, Debug, Default)]
pub struct HyperOpts {
    /// Hyperparameters in the meta.json schema (unknown fields ignored).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Time steps T (overrides the config).
    #[arg(long)]
    pub time_steps: Option<usize>,
    /// LIF firing threshold (overrides the config).
    #[arg(long)]
    pub v_threshold: Option<f32>,
    /// LIF time constant tau (overrides the config).
    #[arg(long)]
    pub tau: Option<f32>,
    /// Hard-reset potential (overrides the config).
    #[arg(long, conflicts_with = "soft_reset")]
    pub v_reset: Option<f32>,
    /// Soft reset (subtract the threshold) instead of hard reset.
    #[arg(long)]
    pub soft_reset: bool,
    /// LIF `decay_input=True`.
    #[arg(long)]
    pub decay_input: bool,
}

impl HyperOpts {
    pub fn resolve(&self) -> anyhow::Result<HyperParams> {
        let overrides = spikerc_models::config::Overrides {
            time_steps: self.time_steps,
            v_threshold: self.v_threshold,
            tau: self.tau,
            v_reset: self.v_reset,
            soft_reset: self.soft_reset,
            decay_input: self.decay_input.then_some(true),
        };
        Ok(overrides.resolve(self.config.as_deref())?)
    }
}
