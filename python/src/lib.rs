//! `spikerc._spikerc`: the native half of the Python package `spikerc`.
//!
//! Thin bindings over the library crates — nothing here computes anything the CLI does not:
//!
//! * [`compile`] — a checkpoint file (`.safetensors`) or a state_dict of numpy arrays, plus
//!   hyperparameters (a `meta.json` and/or keyword overrides), through
//!   `spikerc_models::compile` into an [`artifact::Artifact`];
//! * [`artifact`] — `Artifact.run` (event-driven runtime or reference interpreter), `save`,
//!   `deploy`, pickling;
//! * [`deploy`] — `Deployment.simulate` (cycle/energy simulator), `save`, the manifest;
//! * [`eval`] — PSNR/SSIM over a test folder (`spikerc_models::eval`);
//! * [`convert`] — numpy arrays in and out, dicts of arrays as checkpoints, JSON documents as
//!   Python objects.
//!
//! Every engine call releases the GIL. Every failure raises `spikerc.SpikercError` (a
//! `ValueError`) whose message is the CLI's `error:` line without the prefix.

mod artifact;
mod convert;
mod deploy;
mod eval;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use spikerc_compiler::passes::{OptimizeOptions, Precision};
use spikerc_compiler::Artifact as CoreArtifact;
use spikerc_models::HyperParams;
use std::path::PathBuf;

pyo3::create_exception!(
    spikerc,
    SpikercError,
    pyo3::exceptions::PyValueError,
    "Bad input or a failed engine run; the message names the file, key or number (as the CLI's `error:` line)."
);

/// Converts any library error into `SpikercError` with the full cause chain, as the CLI prints it.
pub(crate) fn err(e: impl Into<anyhow::Error>) -> PyErr {
    SpikercError::new_err(format!("{:#}", e.into()))
}

/// A `SpikercError` with a message.
pub(crate) fn fail(msg: impl Into<String>) -> PyErr {
    SpikercError::new_err(msg.into())
}

/// Hyperparameters: the defaults, then the config file, then the keyword overrides (the CLI's
/// `--config` and flags, in the same order).
struct Hyper {
    config: Option<PathBuf>,
    time_steps: Option<usize>,
    v_threshold: Option<f32>,
    tau: Option<f32>,
    v_reset: Option<f32>,
    soft_reset: bool,
    decay_input: Option<bool>,
}

impl Hyper {
    fn resolve(&self) -> PyResult<HyperParams> {
        if self.soft_reset && self.v_reset.is_some() {
            return Err(fail(
                "v_reset and soft_reset=True contradict each other (soft reset has no reset potential)",
            ));
        }
        spikerc_models::config::Overrides {
            time_steps: self.time_steps,
            v_threshold: self.v_threshold,
            tau: self.tau,
            v_reset: self.v_reset,
            soft_reset: self.soft_reset,
            decay_input: self.decay_input,
        }
        .resolve(self.config.as_deref())
        .map_err(err)
    }
}

/// Parses `"f32"` / `"f16"`.
pub(crate) fn parse_precision(s: &str) -> PyResult<Precision> {
    match s.to_ascii_lowercase().as_str() {
        "f32" | "float32" => Ok(Precision::F32),
        "f16" | "float16" => Ok(Precision::F16),
        _ => Err(fail(format!(
            "precision `{s}`: expected \"f32\" or \"f16\""
        ))),
    }
}

/// Compiles a checkpoint into an artifact.
///
/// `weights` is a `.safetensors` path or a dict `{key: numpy array}` (a state_dict). `source`
/// is recorded in the artifact (default: the file name, or `"state_dict"`); two compiles of
/// the same weights with the same `source` give byte-identical artifacts.
#[pyfunction]
#[pyo3(signature = (weights, config=None, precision="f32", winograd=true, source=None,
                    time_steps=None, v_threshold=None, tau=None, v_reset=None,
                    soft_reset=false, decay_input=None))]
#[allow(clippy::too_many_arguments)]
fn compile(
    py: Python<'_>,
    weights: &Bound<'_, PyAny>,
    config: Option<PathBuf>,
    precision: &str,
    winograd: bool,
    source: Option<String>,
    time_steps: Option<usize>,
    v_threshold: Option<f32>,
    tau: Option<f32>,
    v_reset: Option<f32>,
    soft_reset: bool,
    decay_input: Option<bool>,
) -> PyResult<artifact::Artifact> {
    let hp = Hyper {
        config,
        time_steps,
        v_threshold,
        tau,
        v_reset,
        soft_reset,
        decay_input,
    }
    .resolve()?;
    let opts = OptimizeOptions {
        precision: parse_precision(precision)?,
        winograd,
    };
    let art = if let Ok(dict) = weights.cast::<PyDict>() {
        let ckpt = convert::checkpoint_from_dict(dict)?;
        let source = source.unwrap_or_else(|| "state_dict".into());
        py.detach(|| spikerc_models::compile(&ckpt, &hp, opts, &source))
            .map_err(err)?
    } else {
        let path: PathBuf = weights.extract().map_err(|_| {
            fail(format!(
                "weights: expected a checkpoint path or a dict of arrays, found {}",
                convert::type_name(weights)
            ))
        })?;
        let mut art = py
            .detach(|| spikerc_models::compile_checkpoint(&path, &hp, opts))
            .map_err(err)?;
        if let Some(s) = source {
            art.meta.source = s;
        }
        art
    };
    Ok(artifact::Artifact::new(art))
}

/// Loads a compiled artifact (`.spk`) or, for a directory, an accelerator deployment.
#[pyfunction]
fn load(py: Python<'_>, path: PathBuf) -> PyResult<Py<PyAny>> {
    if path.is_dir() {
        let dep = py
            .detach(|| spikerc_targets::load_dir(&path))
            .map_err(err)?;
        return Ok(Py::new(py, deploy::Deployment::from_loaded(dep))?.into_any());
    }
    let art = py.detach(|| CoreArtifact::load(&path)).map_err(err)?;
    Ok(Py::new(py, artifact::Artifact::new(art))?.into_any())
}

/// An artifact from the bytes of a `.spk` file (`Artifact.to_bytes()`; used by pickle).
#[pyfunction]
fn loads(py: Python<'_>, data: &[u8]) -> PyResult<artifact::Artifact> {
    let art = py
        .detach(|| CoreArtifact::from_bytes(data, "<bytes>"))
        .map_err(err)?;
    Ok(artifact::Artifact::new(art))
}

/// Whether `path` holds a compiled artifact (by its first bytes), as `spikerc eval` decides.
#[pyfunction]
#[pyo3(name = "_is_artifact")]
fn is_artifact(path: PathBuf) -> PyResult<bool> {
    use std::io::Read;
    let mut head = [0u8; 8];
    let mut f = std::fs::File::open(&path)
        .map_err(|e| fail(format!("{}: cannot open: {e}", path.display())))?;
    let n = f
        .read(&mut head)
        .map_err(|e| fail(format!("{}: cannot read: {e}", path.display())))?;
    Ok(CoreArtifact::sniff(&head[..n]))
}

/// Reads an image file as a float32 array `[1, 3, H, W]` in `[0, 1]` (8-bit RGB / 255).
#[pyfunction]
fn read_image<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
    let img = py
        .detach(|| spikerc_models::eval::load_rgb8(&path))
        .map_err(err)?;
    let arr = spikerc_compiler::interp::Array::new(vec![1, 3, img.h, img.w], img.to_unit());
    convert::array_to_numpy(py, arr)
}

#[pymodule]
fn _spikerc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("SpikercError", m.py().get_type::<SpikercError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<artifact::Artifact>()?;
    m.add_class::<deploy::Deployment>()?;
    m.add_function(wrap_pyfunction!(compile, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add_function(wrap_pyfunction!(loads, m)?)?;
    m.add_function(wrap_pyfunction!(read_image, m)?)?;
    m.add_function(wrap_pyfunction!(is_artifact, m)?)?;
    m.add_function(wrap_pyfunction!(eval::evaluate, m)?)?;
    Ok(())
}
