//! `spikerc-check`: the engine library.
//!
//! * [`engine`]: every way of executing a SpikerIR artifact or checkpoint behind one
//!   [`Engine`] trait — the reference interpreter ([`Interp`], the definition of the IR's
//!   meaning), the event-driven runtime ([`Event`]), the accelerator simulator running a
//!   deployment ([`Simulator`]) and, with feature `torch`, libtorch ([`torch::Torch`]). One
//!   [`run`] takes an input of any size (reflect padding, optional tiling, cropping — written
//!   once here), returns outputs, spike counts and op counts, and can observe chosen LIF
//!   modules (input current, membrane before threshold, spikes).
//! * [`compare`]: output and spike-count comparison against tolerances.
//! * [`bound`]: the flip bound — how far from threshold a neuron may sit and still flip only
//!   because two valid evaluations round differently.
//! * [`localize`]: the first diverging LIF module and neurons of a run, and the teacher-forced
//!   layer-wise check.
//! * [`verify`] (feature `torch`): an artifact against the libtorch reference of its
//!   checkpoint, with the verdict `pass` / `flip` / `mismatch`.
//! * [`golden`] (feature `torch`): golden-output regression suites.
//! * [`stats`]: the run statistics document (`spikerc run --stats`, Python `Artifact.run`).
//!
//! The CLI (`spikerc`) only parses arguments and prints what these return.

pub mod assets;
pub mod bound;
pub mod compare;
pub mod engine;
pub mod localize;
pub mod stats;
#[cfg(feature = "torch")]
pub mod golden;
#[cfg(feature = "torch")]
pub mod torch;
#[cfg(feature = "torch")]
pub mod verify;

pub use engine::{run, Engine, EngineKind, Event, Interp, Observation, RunOutput, Simulator, Tiling};
