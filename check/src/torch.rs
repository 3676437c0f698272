//! The libtorch engine (feature `torch`): a checkpoint run by `spikerc_models::torch` in eval
//! mode — the external reference `verify` and `golden` compare artifacts against.

use crate::engine::{Engine, Observation, Observe, RunOutput};
use spikerc_compiler::interp::Array;
use spikerc_models::torch::{tch, SpikerIr};
use spikerc_models::{Checkpoint, HyperParams};
use std::collections::BTreeMap;

/// libtorch on the CPU. It reports spikes but no op counts.
pub struct Torch {
    pub net: SpikerIr,
    pub hp: HyperParams,
    _vs: tch::nn::VarStore,
}

impl Torch {
    /// The network of `ckpt` with hyperparameters `hp`.
    pub fn new(ckpt: &Checkpoint, hp: &HyperParams) -> anyhow::Result<Torch> {
        let (vs, net) = SpikerIr::from_checkpoint(ckpt, hp, tch::Device::Cpu)?;
        Ok(Torch { net, hp: hp.clone(), _vs: vs })
    }
}

impl Engine for Torch {
    fn name(&self) -> &'static str {
        "torch"
    }
    fn divisor(&self) -> usize {
        self.net.spatial_divisor() as usize
    }
    fn run_padded(&self, input: &Array, observe: Observe) -> anyhow::Result<RunOutput> {
        let (r, obs) = self
            .net
            .run_reference_observed(input, observe)
            .map_err(|e| anyhow::anyhow!("libtorch reference: {e}"))?;
        let observed = obs
            .into_iter()
            .map(|(k, o)| (k, Observation { input: o.input, membrane: o.membrane, spikes: o.spikes }))
            .collect();
        Ok(RunOutput { outputs: vec![r.output], spikes: r.spikes, ops: BTreeMap::new(), observed })
    }
}
