//! spikerc-targets: deploying compiled spikerc artifacts to many-core neuromorphic hardware.
//!
//! * [`machine`] — machine descriptions (TOML; presets `ka200-like`, `tianjic-like`,
//!   `loihi-like` embedded from `targets/presets/`), with every unpublished figure named as
//!   assumed.
//! * [`layers`] — how graph nodes group into the layers the back end places, and their static
//!   facts (shapes at the deployed size, weights, dense work).
//! * [`schedule`] — layer-serial / pipelined / fused / auto schedules, stages, buffer needs.
//! * [`dataflow`] — loop nests of a convolution slice and the accesses they imply.
//! * [`lynxi`] — the Lynxi-style back end: chip partition, core slicing, placement on the
//!   mesh, memory arrangement, multicast routing, and the deployment directory (JSON
//!   manifest + blobs).
//! * [`sim`] — the simulator: runs the deployment with the runtime's kernels (same output
//!   bits as `spikerc run`) and accounts cycles and energy per core, time step and module.

pub mod dataflow;
pub mod layers;
pub mod lynxi;
pub mod machine;
pub mod schedule;
pub mod sim;

pub use lynxi::{compile, compile_with, load_dir, Deployment, Loaded, Manifest, MapError};
pub use schedule::Schedule;
pub use machine::{Machine, MachineError};
pub use sim::{simulate, Report, SimError, SimOptions, Simulation};

/// A `--target` value: `lynxi`, `lynxi:PRESET` or `lynxi:FILE.toml`.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetSpec {
    pub backend: String,
    /// Preset name or machine file path.
    pub machine: String,
}

impl TargetSpec {
    /// Parses a target string.
    pub fn parse(s: &str) -> Result<TargetSpec, String> {
        let (backend, machine) = match s.split_once(':') {
            Some((b, m)) => (b, m),
            None => (s, machine::DEFAULT_PRESET),
        };
        if backend != "lynxi" {
            return Err(format!(
                "unknown target `{backend}` (targets: lynxi, lynxi:PRESET, lynxi:FILE.toml)"
            ));
        }
        if machine.is_empty() {
            return Err(format!("target `{s}` names no machine after `:`"));
        }
        Ok(TargetSpec {
            backend: backend.into(),
            machine: machine.into(),
        })
    }

    /// The machine and the label recorded in the manifest (preset name or file name).
    pub fn load(&self) -> Result<(Machine, String), MachineError> {
        let m = Machine::resolve(&self.machine)?;
        let label = std::path::Path::new(&self.machine)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.machine.clone());
        Ok((m, label))
    }
}
