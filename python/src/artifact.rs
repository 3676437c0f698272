//! `spikerc.Artifact`: a compiled model. `run` executes it on the event-driven runtime (the
//! program is lowered once, on first use, and reused) or on the reference interpreter; `save`
//! writes the `.spk` file; `deploy` maps it onto an accelerator; artifacts pickle as their bytes.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use spikerc_check::stats::{self, InputStats, RunInfo};
use spikerc_compiler::interp::{self, Array};
use spikerc_compiler::Artifact as CoreArtifact;
use spikerc_runtime::{tile, OpCounts, Program, RunOptions, RunResult};
use spikerc_targets::{lynxi, TargetSpec};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use crate::convert::{array_to_numpy, numpy_to_input, to_python};
use crate::deploy::Deployment;
use crate::{err, fail};

/// A compiled spikerc model (the contents of a `.spk` file).
#[pyclass(frozen, module = "spikerc")]
pub struct Artifact {
    pub(crate) art: CoreArtifact,
    program: OnceLock<Program>,
}

impl Artifact {
    pub fn new(art: CoreArtifact) -> Artifact {
        Artifact {
            art,
            program: OnceLock::new(),
        }
    }

    /// The runtime program, lowered on first use.
    pub(crate) fn program(&self) -> &Program {
        self.program.get_or_init(|| Program::new(&self.art.graph))
    }

    /// Runs one batch on the event-driven runtime or the interpreter (any H x W: reflect-padded
    /// to the model's divisor and cropped back).
    fn execute(
        &self,
        input: &Array,
        engine: &str,
        opts: &RunOptions,
        tile_size: Option<usize>,
        overlap: usize,
    ) -> anyhow::Result<RunResult> {
        if engine == "event" {
            let p = self.program();
            return Ok(match tile_size {
                Some(t) => tile::run_tiled(p, input, t, overlap, opts)?,
                None => tile::run_image(p, input, opts)?,
            });
        }
        let (h, w) = (input.shape[2], input.shape[3]);
        let padded = input.pad_reflect_to_multiple(self.art.graph.spatial_divisor());
        let exec = interp::run(&self.art.graph, &padded)?;
        let mut ops: BTreeMap<String, OpCounts> = BTreeMap::new();
        for (m, s) in &exec.spikes {
            let c = ops.entry(m.clone()).or_default();
            c.spikes_out = *s;
            c.neuron_updates = exec.neurons[m];
        }
        Ok(RunResult {
            outputs: exec.outputs.iter().map(|o| o.crop(h, w)).collect(),
            spikes: exec.spikes,
            ops,
            timeline: vec![],
        })
    }
}

/// Parses an `(H, W)` pair.
fn size_pair(s: (usize, usize)) -> PyResult<[usize; 2]> {
    if s.0 == 0 || s.1 == 0 {
        return Err(fail(format!(
            "input_size ({}, {}): sides must be positive",
            s.0, s.1
        )));
    }
    Ok([s.0, s.1])
}

#[pymethods]
impl Artifact {
    /// Runs the model on `x` (float32 `[N, 3, H, W]` in `[0, 1]`, any H x W).
    ///
    /// Returns `(y, stats)`: `y` float32 `[N, 3, H, W]`, `stats` the `spikerc run --stats`
    /// document (`schema_version`, `spikes` per LIF module, `ops` per module, `engine`,
    /// `threads` used, `simd`, `input_shapes`, `images`, `wall_ms`; see `docs/json.md`). `engine` is `"event"` (the runtime; `threads` workers,
    /// 0 = all cores; optional `tile`/`overlap` bound memory) or `"interp"` (the reference
    /// interpreter). The output bits do not depend on `threads` or `tile`.
    #[pyo3(signature = (x, threads=0, engine="event", tile=None, overlap=16))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        threads: usize,
        engine: &str,
        tile: Option<usize>,
        overlap: usize,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        if engine != "event" && engine != "interp" {
            return Err(fail(format!(
                "engine `{engine}`: expected \"event\" or \"interp\""
            )));
        }
        if engine == "interp" && tile.is_some() {
            return Err(fail("tile needs the event engine (engine=\"event\")"));
        }
        if threads > 1024 {
            return Err(fail(format!(
                "threads={threads} is not a sensible thread count"
            )));
        }
        let input = numpy_to_input(x)?;
        let shape = input.shape.clone();
        let opts = RunOptions {
            threads,
            profile: false,
        };
        let start = Instant::now();
        let mut res = py
            .detach(|| self.execute(&input, engine, &opts, tile, overlap))
            .map_err(err)?;
        let seconds = start.elapsed().as_secs_f64();
        let info = RunInfo {
            engine: if engine == "event" { "event" } else { "interp" },
            wide: false,
            threads: if engine == "event" { spikerc_runtime::threads_used(threads) } else { 1 },
            simd: (engine == "event").then(|| self.program().level().name()),
            shard: None,
        };
        let one = InputStats {
            name: None,
            shape,
            spikes: std::mem::take(&mut res.spikes),
            ops: std::mem::take(&mut res.ops),
            wall_ms: seconds * 1e3,
        };
        let stats = stats::document(&info, &[one], seconds * 1e3);
        let y = array_to_numpy(py, res.outputs.swap_remove(0))?;
        Ok((y, to_python(py, &stats)?))
    }

    /// Writes the artifact to `path` (`.spk`), atomically.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let bytes = self.art.to_bytes();
        py.detach(|| crate::deploy::write_atomic(&path, &bytes))
            .map_err(|e| fail(format!("writing {}: {e:#}", path.display())))
    }

    /// The bytes of the `.spk` file.
    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.art.to_bytes())
    }

    /// Maps the model onto an accelerator: `target` is `lynxi`, `lynxi:PRESET` (ka200-like,
    /// tianjic-like, loihi-like) or `lynxi:FILE.toml`; `input_size` the fixed `(H, W)`.
    #[pyo3(signature = (target="lynxi:ka200-like", input_size=(256, 256)))]
    fn deploy(
        &self,
        py: Python<'_>,
        target: &str,
        input_size: (usize, usize),
    ) -> PyResult<Deployment> {
        let size = size_pair(input_size)?;
        let spec = TargetSpec::parse(target).map_err(fail)?;
        let dep = py
            .detach(|| -> anyhow::Result<_> {
                let (machine, label) = spec.load()?;
                let opts = lynxi::Options {
                    input_size: size,
                    preset: label,
                };
                Ok(lynxi::compile(&self.art, &machine, &opts)?)
            })
            .map_err(err)?;
        Deployment::from_compiled(dep)
    }

    /// Parameter precision: `"f32"` or `"f16"`.
    #[getter]
    fn precision(&self) -> String {
        self.art.meta.precision.to_string()
    }

    /// Time steps T.
    #[getter]
    fn time_steps(&self) -> usize {
        self.art.meta.time_steps
    }

    /// The architecture summary (levels, dim, blocks).
    #[getter]
    fn model(&self) -> String {
        self.art.meta.model.clone()
    }

    /// Where the weights came from (file name or `"state_dict"`).
    #[getter]
    fn source(&self) -> String {
        self.art.meta.source.clone()
    }

    /// Number of IR nodes.
    #[getter]
    fn nodes(&self) -> usize {
        self.art.graph.node_count()
    }

    /// Number of parameters.
    #[getter]
    fn params(&self) -> usize {
        self.art.graph.param_count()
    }

    /// Input sides are padded to a multiple of this (2^(levels-1)).
    #[getter]
    fn spatial_divisor(&self) -> usize {
        self.art.graph.spatial_divisor()
    }

    /// The compile report (passes, f16 quantization error), as `compile --report` writes it.
    #[getter]
    fn report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.art.report.document())
    }

    fn __repr__(&self) -> String {
        format!(
            "<spikerc.Artifact {} {} T={} ({} nodes, {} params) from {}>",
            self.art.meta.model,
            self.art.meta.precision,
            self.art.meta.time_steps,
            self.art.graph.node_count(),
            self.art.graph.param_count(),
            self.art.meta.source
        )
    }

    /// Pickles as `spikerc.loads(bytes)`.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let loads = py.import("spikerc")?.getattr("loads")?;
        let args = PyTuple::new(py, [self.to_bytes(py)])?;
        PyTuple::new(py, [loads, args.into_any()])
    }
}
