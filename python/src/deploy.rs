//! `spikerc.Deployment`: a model mapped onto a many-core accelerator (`Artifact.deploy` or
//! `spikerc.load(DIR)`). `simulate` runs it on the cycle/energy simulator (the runtime's
//! kernels: output bits equal `Artifact.run` of the same artifact) and returns the
//! `REPORT.json` document; `save` writes the deployment directory.

use pyo3::prelude::*;
use spikerc_compiler::Artifact as CoreArtifact;
use spikerc_targets::{Deployment as CoreDeployment, Loaded, SimOptions};
use std::path::{Path, PathBuf};

use crate::artifact::Artifact;
use crate::convert::{array_to_numpy, numpy_to_input, to_python};
use crate::{err, fail};

/// Writes a result file atomically (the library's temporary-sibling-and-rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    Ok(spikerc_models::files::write_atomic(path, bytes)?)
}

/// A deployment: what `spikerc compile --target ...` writes as a directory.
#[pyclass(frozen, module = "spikerc")]
pub struct Deployment {
    /// The writable form (manifest + blobs + artifact bytes).
    dep: CoreDeployment,
    /// The form the simulator runs (artifact parsed).
    loaded: Loaded,
}

impl Deployment {
    /// From a freshly mapped deployment.
    pub fn from_compiled(dep: CoreDeployment) -> PyResult<Deployment> {
        let artifact = CoreArtifact::from_bytes(&dep.artifact, "model.spk").map_err(err)?;
        // The manifest as it reads back from its JSON (the form a saved deployment has), so an
        // in-memory deployment simulates exactly like the same deployment loaded from disk.
        let manifest = serde_json::from_str(&dep.manifest_json())
            .map_err(err)?;
        let loaded = Loaded {
            manifest,
            artifact,
            weights: dep.weights.clone(),
            routes: dep.routes.clone(),
        };
        Ok(Deployment { dep, loaded })
    }

    /// From a directory read by `spikerc_targets::load_dir` (already checked).
    pub fn from_loaded(loaded: Loaded) -> Deployment {
        let dep = CoreDeployment {
            manifest: loaded.manifest.clone(),
            weights: loaded.weights.clone(),
            routes: loaded.routes.clone(),
            artifact: loaded.artifact.to_bytes(),
        };
        Deployment { dep, loaded }
    }
}

#[pymethods]
impl Deployment {
    /// Simulates the deployment on `x` (float32 `[N, 3, H, W]` at the deployed size).
    ///
    /// Returns `(y, report)`: `y` bit-identical to `Artifact.run` of the deployed artifact,
    /// `report` the `spikerc simulate --report` document (latency, energy per action, module
    /// and core, the paper's Eq. 1 figure, the ANN equivalent). `report_html`: also write the
    /// HTML report there.
    #[pyo3(signature = (x, threads=0, report_html=None))]
    fn simulate<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        threads: usize,
        report_html: Option<PathBuf>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        if threads > 1024 {
            return Err(fail(format!(
                "threads={threads} is not a sensible thread count"
            )));
        }
        let input = numpy_to_input(x)?;
        let mut sim = py
            .detach(|| spikerc_targets::simulate(&self.loaded, &input, &SimOptions { threads }))
            .map_err(err)?;
        if let Some(p) = &report_html {
            let html = sim.report.html();
            py.detach(|| write_atomic(p, html.as_bytes()))
                .map_err(|e| fail(format!("writing {}: {e:#}", p.display())))?;
        }
        let report = to_python(py, &sim.report.document())?;
        let y = array_to_numpy(py, sim.outputs.swap_remove(0))?;
        Ok((y, report))
    }

    /// Writes the deployment directory (`manifest.json`, `weights.bin`, `routes.bin`,
    /// `model.spk`); all or nothing.
    fn save(&self, py: Python<'_>, dir: PathBuf) -> PyResult<()> {
        py.detach(|| self.dep.write_dir(&dir)).map_err(err)
    }

    /// The manifest (`manifest.json`) as a dict.
    #[getter]
    fn manifest<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.dep.manifest)
    }

    /// The mapping totals (cores, layers, slices, weight bytes, SRAM/DRAM edges).
    #[getter]
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.dep.manifest.summary)
    }

    /// The deployed `(H, W)`.
    #[getter]
    fn input_size(&self) -> (usize, usize) {
        let [h, w] = self.dep.manifest.model.input_size;
        (h, w)
    }

    /// The artifact the simulator executes.
    #[getter]
    fn artifact(&self) -> PyResult<Artifact> {
        let art = CoreArtifact::from_bytes(&self.dep.artifact, "model.spk").map_err(err)?;
        Ok(Artifact::new(art))
    }

    fn __repr__(&self) -> String {
        let m = &self.dep.manifest;
        let [h, w] = m.model.input_size;
        format!(
            "<spikerc.Deployment {} on {} {}x{}: {} layers, {} slices on {}/{} cores>",
            m.model.model,
            m.model.preset,
            h,
            w,
            m.summary.layers,
            m.summary.slices,
            m.summary.cores_used,
            m.summary.cores_total
        )
    }
}
