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
use anyhow::bail;
use spikerc_models::HyperParams;
use std::path::{Path, PathBuf};

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
    /// The config file in effect for a checkpoint at `weights`: `--config`, else a `meta.json`
    /// in the checkpoint's folder (announced with a `note:`), else none (the defaults).
    pub fn config_for(&self, weights: Option<&Path>) -> Option<PathBuf> {
        if let Some(c) = &self.config {
            return Some(c.clone());
        }
        let meta = beside(weights?)?;
        eprintln!("note: using {} for the hyperparameters (no --config given)", meta.display());
        Some(meta)
    }

    /// The hyperparameters for the checkpoint at `weights` (`None`: flags and `--config`
    /// only): the config file of [`HyperOpts::config_for`] with the flags applied.
    pub fn resolve(&self, weights: Option<&Path>) -> anyhow::Result<HyperParams> {
        let overrides = spikerc_models::config::Overrides {
            time_steps: self.time_steps,
            v_threshold: self.v_threshold,
            tau: self.tau,
            v_reset: self.v_reset,
            soft_reset: self.soft_reset,
            decay_input: self.decay_input.then_some(true),
        };
        Ok(overrides.resolve(self.config_for(weights).as_deref())?)
    }

    /// `e` with a hint to pass `--config` when it is a refused hyperparameter that came from
    /// the defaults (no `--config`, no `meta.json` beside `weights`, no flag setting it).
    pub fn hint(&self, weights: &Path, e: anyhow::Error) -> anyhow::Error {
        use spikerc_models::{CompileError, ImportError};
        let bad = e.chain().find_map(|c| match c.downcast_ref::<ImportError>() {
            Some(ImportError::BadHyperParam { name, .. }) => Some(*name),
            _ => match c.downcast_ref::<CompileError>() {
                Some(CompileError::Import(ImportError::BadHyperParam { name, .. })) => Some(*name),
                _ => None,
            },
        });
        let flagged = |name: &str| match name {
            "time_steps" => self.time_steps.is_some(),
            "v_threshold" => self.v_threshold.is_some(),
            "tau" => self.tau.is_some(),
            "v_reset" => self.v_reset.is_some() || self.soft_reset,
            _ => false,
        };
        match bad {
            Some(name) if !flagged(name) && self.config.is_none() && beside(weights).is_none() => e.context(format!(
                "{}: the default hyperparameters do not fit this checkpoint; pass the config it was trained with (--config meta.json)",
                weights.display()
            )),
            _ => e,
        }
    }
}

/// `meta.json` in the folder of `weights`, when there is one.
pub fn beside(weights: &Path) -> Option<PathBuf> {
    let dir = weights.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let meta = dir.join("meta.json");
    meta.is_file().then_some(meta)
}

#[cfg_attr(feature = "torch", allow(dead_code))]
/// The arguments of a command this build lacks (taken as they come, so the message about the
/// missing feature is what the user sees, not an argument error).
#[derive(ClapArgs, Clone, Debug, Default)]
pub struct Missing {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub args: Vec<String>,
}

/// The error of a command that needs feature `torch` in a build without it.
#[cfg_attr(feature = "torch", allow(dead_code))]
pub fn missing(command: &str) -> anyhow::Result<()> {
    bail!(
        "`spikerc {command}` needs libtorch: this spikerc was built without the `torch` feature (build it with `scripts/setup-torch.sh && source scripts/env.sh && cargo build --release --features torch`)"
    )
}
