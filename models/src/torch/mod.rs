//! The SpikerIR family as a libtorch (`tch`) module: the dense reference executor of
//! `shared/docs/spikerir-model.md`, and the network the trainer optimises (cargo feature
//! `torch`).
//!
//! Parameters live in a [`tch::nn::VarStore`] under exactly the PyTorch state_dict names
//! (`patch_embed.proj.weight`, `encoder_level1.0.residual.2.running_mean`, ...,
//! `num_batches_tracked` included), so `vs.variables()` is the state_dict, [`load_checkpoint`]
//! fills it from a [`Checkpoint`] (`.pt` or `.safetensors`) and [`export_safetensors`] writes a
//! checkpoint the compiler imports.
//!
//! [`SpikerIr::forward_t`] runs multi-step over T: eval mode (`train = false`) uses BN running
//! statistics and is the reference the compiled artifacts are verified against; train mode
//! uses batch statistics (updating the running ones) and, wherever the input requires a
//! gradient, the sigmoid surrogate gradient (alpha = 4) through every Heaviside.
//! [`Forward`] also carries the decoder features per level (for H-KD) and the spike count of
//! every LIF module.

mod layers;
mod ptzip;
mod reference;
mod state;

pub use layers::{
    Attention, Block, Bn, Conv, Lif, LifConvBn, LifStat, Neuron, Refinement, SURROGATE_ALPHA,
};
pub use ptzip::check_zip_integrity;
pub use reference::{LifObservation, ReferenceRun};
pub use state::{export_safetensors, load_checkpoint, state_dict, to_checkpoint};
/// The `tch` this module is built on, for callers that need its types without depending on it.
pub use tch;

use std::collections::BTreeMap;
use std::path::Path;

use tch::{nn, Device, Kind, Tensor};

use crate::spikerir::Architecture;
use crate::{Checkpoint, HyperParams, ImportError};
use layers::Trace;

/// A SpikerIR network whose parameters live in a `VarStore`.
#[derive(Debug)]
pub struct SpikerIr {
    pub arch: Architecture,
    pub hp: HyperParams,
    pub neuron: Neuron,
    pub patch_embed: Conv,
    /// `encoder_level{l}` blocks, index `l - 1`.
    pub encoders: Vec<Vec<Block>>,
    /// `down{l}_{l+1}.maxpool_conv`, index `l - 1` (L - 1 entries).
    pub downs: Vec<LifConvBn>,
    /// `up{l+1}_{l}.up`, index `l - 1` (L - 1 entries).
    pub ups: Vec<LifConvBn>,
    /// `reduce_chan_level{l}`, index `l - 1` (`None` for level 1 and L).
    pub reduces: Vec<Option<LifConvBn>>,
    /// `decoder_level{l}` blocks, index `l - 1`.
    pub decoders: Vec<Vec<Block>>,
    pub refinement: Refinement,
    pub output: Conv,
}

/// Everything one forward pass produces.
#[derive(Debug)]
pub struct Forward {
    /// The restored image `[N, C, H, W]`.
    pub output: Tensor,
    /// `("decoder_level{l}", decoder output averaged over T, [N, C_l, H_l, W_l])` for
    /// l = L, ..., 1 (the H-KD hint points; the fixtures' `features/decoder_level{l}`).
    pub features: Vec<(String, Tensor)>,
    /// Every LIF module's activity, in execution order (empty with [`Neuron::Relu`]).
    pub lif: Vec<LifStat>,
}

impl Forward {
    /// Spike counts by module path (the same keys as the interpreter's `Execution::spikes`).
    pub fn spike_counts(&self) -> BTreeMap<String, u64> {
        self.lif
            .iter()
            .map(|s| {
                let v = f64::try_from(&s.spikes).unwrap_or(f64::NAN);
                (s.name.clone(), v.round() as u64)
            })
            .collect()
    }

    /// Neuron updates by module path.
    pub fn neuron_counts(&self) -> BTreeMap<String, u64> {
        self.lif
            .iter()
            .map(|s| (s.name.clone(), s.neurons))
            .collect()
    }

    /// The decoder feature of `decoder_level{l}`.
    pub fn feature(&self, level: usize) -> Option<&Tensor> {
        let key = format!("decoder_level{level}");
        self.features
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, t)| t)
    }
}

impl SpikerIr {
    /// Creates the parameters of a SpikerIR of `arch` under `p` (use `vs.root()` so names are
    /// the state_dict keys), initialised like PyTorch does (conv: U(+-1/sqrt(fan_in)); BN:
    /// weight 1, bias 0, running mean 0, var 1). Rejects hyperparameters and architectures
    /// the compiler would reject.
    pub fn new(
        p: &nn::Path,
        arch: &Architecture,
        hp: &HyperParams,
        neuron: Neuron,
    ) -> Result<SpikerIr, ImportError> {
        hp.validate()?;
        if arch.levels == 0
            || arch.dim == 0
            || arch.en_blocks.len() != arch.levels
            || arch.de_blocks.len() != arch.levels
        {
            return Err(ImportError::Architecture(format!(
                "inconsistent architecture {}",
                arch.summary()
            )));
        }
        if arch.out_channels != arch.in_channels {
            return Err(ImportError::Architecture(format!(
                "output.0 produces {} channels but the image has {} (the global residual adds them)",
                arch.out_channels, arch.in_channels
            )));
        }
        let min_c = arch.dim;
        if min_c / hp.reduction_c == 0 {
            return Err(ImportError::BadHyperParam {
                name: "mda.reduction_c",
                value: hp.reduction_c.to_string(),
                reason: format!("larger than the {min_c} channels of level 1"),
            });
        }
        if (2 * arch.dim) / hp.frb_reduction == 0 {
            return Err(ImportError::BadHyperParam {
                name: "frb_reduction",
                value: hp.frb_reduction.to_string(),
                reason: format!("larger than the {} channels of `refinement`", 2 * arch.dim),
            });
        }
        let blocks = |prefix: &str, l: usize, n: usize, d: usize| -> Vec<Block> {
            (0..n)
                .map(|i| {
                    let name = format!("{prefix}{l}.{i}");
                    Block::new(&(p / format!("{prefix}{l}") / i), &name, d, hp, neuron)
                })
                .collect()
        };
        let w = |l: usize| arch.width(l);
        let patch_embed = Conv::new(
            &(p / "patch_embed" / "proj"),
            arch.dim,
            arch.in_channels,
            3,
            1,
            false,
        );
        let mut encoders = Vec::new();
        let mut downs = Vec::new();
        for l in 1..=arch.levels {
            encoders.push(blocks("encoder_level", l, arch.en_blocks[l - 1], w(l)));
            if l < arch.levels {
                let name = format!("down{l}_{}", l + 1);
                let q = p / name.as_str() / "maxpool_conv";
                downs.push(LifConvBn::new(
                    &q,
                    &format!("{name}.maxpool_conv"),
                    hp,
                    neuron,
                    (w(l + 1), w(l), 3, 2),
                ));
            }
        }
        let mut ups = Vec::new();
        let mut reduces = Vec::new();
        let mut decoders = Vec::new();
        for l in 1..=arch.levels {
            if l < arch.levels {
                let name = format!("up{}_{l}", l + 1);
                let q = p / name.as_str() / "up";
                ups.push(LifConvBn::new(
                    &q,
                    &format!("{name}.up"),
                    hp,
                    neuron,
                    (w(l), w(l + 1), 3, 1),
                ));
            }
            reduces.push((l > 1 && l < arch.levels).then(|| {
                let name = format!("reduce_chan_level{l}");
                LifConvBn::new(
                    &(p / name.as_str()),
                    &name,
                    hp,
                    neuron,
                    (w(l), 2 * w(l), 1, 1),
                )
            }));
            // Level 1 decodes at 2*dim (the concatenation is not reduced there).
            let d = if l == 1 && arch.levels > 1 {
                2 * w(1)
            } else {
                w(l)
            };
            decoders.push(blocks("decoder_level", l, arch.de_blocks[l - 1], d));
        }
        let top = if arch.levels > 1 {
            2 * arch.dim
        } else {
            arch.dim
        };
        Ok(SpikerIr {
            arch: arch.clone(),
            hp: hp.clone(),
            neuron,
            patch_embed,
            encoders,
            downs,
            ups,
            reduces,
            decoders,
            refinement: Refinement::new(&(p / "refinement"), top, hp.frb_reduction),
            output: Conv::new(&(p / "output" / "0"), arch.out_channels, top, 3, 1, true),
        })
    }

    /// Builds the network for a checkpoint on `device` and loads its weights: architecture
    /// inferred from the keys, every key, shape and value checked exactly as the compiler's
    /// importer checks them.
    pub fn from_checkpoint(
        ckpt: &Checkpoint,
        hp: &HyperParams,
        device: Device,
    ) -> Result<(nn::VarStore, SpikerIr), ImportError> {
        // The importer is the one place that validates a checkpoint; reuse it.
        let imported = crate::spikerir::import(ckpt, hp)?;
        let vs = nn::VarStore::new(device);
        let net = SpikerIr::new(&vs.root(), &imported.arch, hp, Neuron::Lif)?;
        load_checkpoint(&vs, ckpt)?;
        Ok((vs, net))
    }

    /// Reads a `.pt` or `.safetensors` checkpoint and builds the network (see
    /// [`SpikerIr::from_checkpoint`]).
    pub fn load(
        path: &Path,
        hp: &HyperParams,
        device: Device,
    ) -> Result<(nn::VarStore, SpikerIr), ImportError> {
        SpikerIr::from_checkpoint(&Checkpoint::load(path)?, hp, device)
    }

    /// Height and width must be divisible by this (2^(L-1)).
    pub fn spatial_divisor(&self) -> i64 {
        1 << (self.arch.levels - 1)
    }

    /// Checks an input batch's shape; the forward functions assume it holds.
    pub fn check_input(&self, x: &Tensor) -> Result<(), String> {
        let s = x.size();
        let d = self.spatial_divisor();
        if s.len() != 4 || s[1] != self.arch.in_channels as i64 {
            return Err(format!(
                "input has shape {s:?}, expected [N, {}, H, W]",
                self.arch.in_channels
            ));
        }
        if s[0] == 0 || s[2] == 0 || s[3] == 0 {
            return Err(format!("input is empty: shape {s:?}"));
        }
        if s[2] % d != 0 || s[3] % d != 0 {
            return Err(format!(
                "input image is {}x{}; this model needs sides divisible by {d}",
                s[2], s[3]
            ));
        }
        Ok(())
    }

    /// The restored image for `x` (`[N, C, H, W]`, f32). `train` selects BN batch statistics
    /// (updating the running ones) — the surrogate gradient flows whenever autograd is on.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.forward_full(x, train).output
    }

    /// The restored image and the decoder features (l = L, ..., 1), for H-KD.
    pub fn forward_features(&self, x: &Tensor, train: bool) -> (Tensor, Vec<Tensor>) {
        let f = self.forward_full(x, train);
        (f.output, f.features.into_iter().map(|(_, t)| t).collect())
    }

    /// One forward pass with everything it can report.
    pub fn forward_full(&self, x: &Tensor, train: bool) -> Forward {
        self.forward_traced(x, train, Trace::default()).0
    }

    /// A forward pass that also records input, membrane and spikes of every LIF module
    /// `observe` accepts.
    pub fn forward_observed(
        &self,
        x: &Tensor,
        train: bool,
        observe: &dyn Fn(&str) -> bool,
    ) -> (Forward, Vec<layers::LifTensors>) {
        self.forward_traced(
            x,
            train,
            Trace {
                observe: Some(observe),
                ..Trace::default()
            },
        )
    }

    fn forward_traced(
        &self,
        x: &Tensor,
        train: bool,
        mut trace: Trace<'_>,
    ) -> (Forward, Vec<layers::LifTensors>) {
        let steps = self.hp.time_steps as i64;
        let img = x.to_kind(Kind::Float);
        let rep = img.unsqueeze(0).expand([steps, -1, -1, -1, -1], false);
        let mut h = self.patch_embed.forward_seq(&rep);
        let mut skips = Vec::with_capacity(self.arch.levels);
        for l in 1..=self.arch.levels {
            for b in &self.encoders[l - 1] {
                h = b.forward_t(&h, train, &mut trace);
            }
            skips.push(h.shallow_clone());
            if l < self.arch.levels {
                h = self.downs[l - 1].forward_t(&h, train, &mut trace);
            }
        }
        let mut features = Vec::with_capacity(self.arch.levels);
        for l in (1..=self.arch.levels).rev() {
            if l < self.arch.levels {
                let s = h.size();
                let up = h
                    .flatten(0, 1)
                    .upsample_bilinear2d([2 * s[3], 2 * s[4]], false, 2.0, 2.0)
                    .reshape([s[0], s[1], s[2], 2 * s[3], 2 * s[4]]);
                let u = self.ups[l - 1].forward_t(&up, train, &mut trace);
                h = Tensor::cat(&[u, skips[l - 1].shallow_clone()], 2);
                if let Some(r) = &self.reduces[l - 1] {
                    h = r.forward_t(&h, train, &mut trace);
                }
            }
            for b in &self.decoders[l - 1] {
                h = b.forward_t(&h, train, &mut trace);
            }
            features.push((
                format!("decoder_level{l}"),
                h.mean_dim(0, false, Kind::Float),
            ));
        }
        let m = h.mean_dim(0, false, Kind::Float);
        let r = self.refinement.forward(&m);
        let output = self.output.forward(&r) + &img;
        (
            Forward {
                output,
                features,
                lif: trace.stats,
            },
            trace.observed,
        )
    }
}

#[cfg(test)]
mod tests;
