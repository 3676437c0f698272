//! spikerc-models: model families and their checkpoint front ends.
//!
//! * [`checkpoint`] reads state_dicts from `.safetensors` (pure Rust) and PyTorch `.pt`
//!   (`torch.save` zip, through `tch`, cargo feature `torch`) into one neutral form.
//! * [`config`] holds the hyperparameters a checkpoint does not carry (time steps, LIF
//!   constants), read from a `meta.json`-style file or flags.
//! * [`spikerir`] infers a SpikerIR architecture from the keys and shapes and builds the IR.
//!
//! * [`shard`] splits file lists for `--shard K/N`.
//!
//! Every user-facing failure is an [`ImportError`] naming the key, the expected and the found
//! value; nothing here panics on user input.

pub mod checkpoint;
pub mod config;
pub mod eval;
mod error;
pub mod files;
pub mod input;
pub mod ptzip;
pub mod shard;
pub mod spikerir;
pub mod train;
#[cfg(feature = "torch")]
pub mod torch;

pub use checkpoint::{Checkpoint, RawTensor};
pub use config::HyperParams;
pub use error::ImportError;

use spikerc_compiler::passes::{optimize, OptimizeOptions, PassError};
use spikerc_compiler::{Artifact, ArtifactMeta};
use std::path::Path;

/// Everything that can go wrong turning a checkpoint into an artifact.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    Pass(#[from] PassError),
    #[error("imported IR is invalid")]
    Verify(#[from] spikerc_compiler::VerifyError),
    /// An error about the contents of a checkpoint file, with the file named.
    #[error("{path}")]
    InFile {
        path: String,
        #[source]
        source: Box<CompileError>,
    },
}

impl CompileError {
    /// Names the checkpoint file in errors about its contents (errors that already name a
    /// file are left as they are).
    fn in_file(self, path: &Path) -> CompileError {
        match self {
            CompileError::Import(
                ImportError::Io { .. }
                | ImportError::Corrupt { .. }
                | ImportError::UnknownFormat { .. }
                | ImportError::Config { .. }
                | ImportError::BadHyperParam { .. },
            ) => self,
            e => CompileError::InFile {
                path: path.display().to_string(),
                source: Box::new(e),
            },
        }
    }
}

/// Loads a checkpoint, imports it as a SpikerIR, verifies, optimizes and packages it.
pub fn compile_checkpoint(
    path: &Path,
    hp: &HyperParams,
    opts: impl Into<OptimizeOptions>,
) -> Result<Artifact, CompileError> {
    let ckpt = Checkpoint::load(path)?;
    compile(
        &ckpt,
        hp,
        opts,
        &path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )
    .map_err(|e| e.in_file(path))
}

/// Imports and optimizes an in-memory checkpoint.
pub fn compile(
    ckpt: &Checkpoint,
    hp: &HyperParams,
    opts: impl Into<OptimizeOptions>,
    source: &str,
) -> Result<Artifact, CompileError> {
    let opts = opts.into();
    let precision = opts.precision;
    let imported = spikerir::import(ckpt, hp)?;
    spikerc_compiler::verify(&imported.graph)?;
    let (graph, report) = optimize(imported.graph, opts, false)?;
    let meta = ArtifactMeta {
        model: imported.arch.summary(),
        source: source.to_string(),
        precision,
        time_steps: hp.time_steps,
        producer: format!("spikerc {}", env!("CARGO_PKG_VERSION")),
    };
    Ok(Artifact::new(meta, report, graph))
}
