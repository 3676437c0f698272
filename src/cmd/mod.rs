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
        let mut hp = match &self.config {
            Some(p) => HyperParams::from_file(p)?,
            None => HyperParams::default(),
        };
        if let Some(t) = self.time_steps {
            hp.time_steps = t;
        }
        if let Some(v) = self.v_threshold {
            hp.v_threshold = v;
        }
        if let Some(v) = self.tau {
            hp.tau = v;
        }
        if let Some(v) = self.v_reset {
            hp.v_reset = Some(v);
        }
        if self.soft_reset {
            hp.v_reset = None;
        }
        if self.decay_input {
            hp.decay_input = true;
        }
        Ok(hp)
    }
}
