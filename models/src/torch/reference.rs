//! The libtorch reference in plain Rust types: run a [`SpikerIr`] in eval mode on an
//! [`Array`] batch and get the output, decoder features and spike statistics back as
//! [`Array`]s and maps — what `spikerc verify`, golden suites and evaluation compare against
//! the compiled artifacts.

use std::collections::BTreeMap;

use spikerc_compiler::interp::Array;
use tch::{Kind, Tensor};

use super::SpikerIr;

/// One eval-mode reference execution.
#[derive(Clone, Debug)]
pub struct ReferenceRun {
    /// `[N, C, H, W]`.
    pub output: Array,
    /// `decoder_level{l}` -> decoder output averaged over T.
    pub features: BTreeMap<String, Array>,
    /// Spikes per LIF module (same keys as the interpreter's `Execution::spikes`).
    pub spikes: BTreeMap<String, u64>,
    /// Neuron updates per LIF module.
    pub neurons: BTreeMap<String, u64>,
}

fn to_array(t: &Tensor) -> Result<Array, String> {
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let flat = t
        .to_device(tch::Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous()
        .view([-1]);
    let data = Vec::<f32>::try_from(&flat).map_err(|e| e.to_string())?;
    Ok(Array::new(shape, data))
}

/// One LIF module's tensors in a reference run, `[T, N, C, H, W]` each.
#[derive(Clone, Debug)]
pub struct LifObservation {
    /// The input current `X`.
    pub input: Array,
    /// The membrane potential before the threshold, `H`.
    pub membrane: Array,
    /// The spikes (0 or 1).
    pub spikes: Array,
}

impl SpikerIr {
    /// Runs the network in eval mode without autograd on `input` (`[N, C, H, W]`, sides
    /// divisible by [`SpikerIr::spatial_divisor`]) on the device of its parameters.
    pub fn run_reference(&self, input: &Array) -> Result<ReferenceRun, String> {
        Ok(self.run_reference_observed(input, &|_| false)?.0)
    }

    /// [`SpikerIr::run_reference`], also returning input, membrane and spikes of every LIF
    /// module `observe` accepts.
    pub fn run_reference_observed(
        &self,
        input: &Array,
        observe: &dyn Fn(&str) -> bool,
    ) -> Result<(ReferenceRun, BTreeMap<String, LifObservation>), String> {
        let shape: Vec<i64> = input.shape.iter().map(|&d| d as i64).collect();
        let device = self.patch_embed.weight.device();
        let x = Tensor::from_slice(&input.data)
            .reshape(shape.as_slice())
            .to_device(device);
        self.check_input(&x)?;
        let (f, lifs) = tch::no_grad(|| self.forward_observed(&x, false, observe));
        let mut observed = BTreeMap::new();
        for l in &lifs {
            observed.insert(
                l.name.clone(),
                LifObservation {
                    input: to_array(&l.input)?,
                    membrane: to_array(&l.membrane)?,
                    spikes: to_array(&l.spikes)?,
                },
            );
        }
        let mut features = BTreeMap::new();
        for (k, t) in &f.features {
            features.insert(k.clone(), to_array(t)?);
        }
        let run = ReferenceRun {
            output: to_array(&f.output)?,
            features,
            spikes: f.spike_counts(),
            neurons: f.neuron_counts(),
        };
        Ok((run, observed))
    }
}
