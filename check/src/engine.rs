//! Every engine behind one trait, and the one place that pads, tiles and crops.
//!
//! An [`Engine`] runs an input whose sides are multiples of its [`Engine::divisor`];
//! [`run`] takes any `[N, C, H, W]`, reflect-pads the bottom/right edges to that multiple,
//! optionally runs in overlapping tiles (engines that can), and crops every image-sized output
//! back. Observations (LIF input current, membrane before threshold, spikes) are of the padded
//! run. The artifact engines — [`Interp`], [`Event`], [`Simulator`] — compute the same bits
//! (the conformance suite asserts it); libtorch ([`crate::torch::Torch`]) is the external
//! reference.

use anyhow::{bail, Context};
use spikerc_compiler::interp::{self, Array};
use spikerc_compiler::ir::{Op, Reset};
use spikerc_compiler::{Artifact, NodeId, Verified};
use spikerc_runtime::{tile, OpCounts, Program, RunOptions};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One LIF module's tensors in a run, `[T, N, C, H, W]` each (of the padded input).
#[derive(Clone, Debug)]
pub struct Observation {
    /// The input current `X`.
    pub input: Array,
    /// The membrane potential before the threshold, `H`.
    pub membrane: Array,
    /// The spikes (0 or 1).
    pub spikes: Array,
}

/// What a run returns.
#[derive(Clone, Debug, Default)]
pub struct RunOutput {
    /// One array per graph output (cropped back by [`run`]).
    pub outputs: Vec<Array>,
    /// Spikes per LIF module.
    pub spikes: BTreeMap<String, u64>,
    /// Op counts per module (empty for libtorch).
    pub ops: BTreeMap<String, OpCounts>,
    /// The observed LIF modules.
    pub observed: BTreeMap<String, Observation>,
}

impl RunOutput {
    /// The first output.
    pub fn output(&self) -> anyhow::Result<&Array> {
        self.outputs.first().context("the run produced no output")
    }
    /// Adds the spike and op counts of `o` (runs over several inputs).
    pub fn merge_counts(&mut self, o: &RunOutput) {
        for (k, v) in &o.spikes {
            *self.spikes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.ops {
            self.ops.entry(k.clone()).or_default().add(v);
        }
    }
    /// Op counts summed over modules.
    pub fn total_ops(&self) -> OpCounts {
        let mut t = OpCounts::default();
        for c in self.ops.values() {
            t.add(c);
        }
        t
    }
}

/// Which LIF modules to observe.
pub type Observe<'a> = &'a dyn Fn(&str) -> bool;

/// Observe nothing.
pub fn nothing(_: &str) -> bool {
    false
}

/// An execution engine.
pub trait Engine {
    /// Short name (`interp`, `event`, `sim`, `torch`).
    fn name(&self) -> &'static str;
    /// Input sides must be multiples of this.
    fn divisor(&self) -> usize;
    /// Runs an input whose sides are multiples of [`Engine::divisor`].
    fn run_padded(&self, input: &Array, observe: Observe) -> anyhow::Result<RunOutput>;
    /// Runs in overlapping tiles, if the engine can (`input` of any size; outputs cropped).
    fn run_tiled(&self, _input: &Array, _t: Tiling) -> Option<anyhow::Result<RunOutput>> {
        None
    }
}

/// Tiles of `tile x tile` pixels with `overlap` pixels of context around each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiling {
    pub tile: usize,
    pub overlap: usize,
}

/// Runs `input` (`[N, C, H, W]`, any H x W) on `engine`: reflect padding to the divisor,
/// tiles when asked, outputs cropped back to H x W.
pub fn run(
    engine: &dyn Engine,
    input: &Array,
    tiling: Option<Tiling>,
    observe: Observe,
) -> anyhow::Result<RunOutput> {
    if input.shape.len() != 4 || input.shape.iter().any(|&d| d == 0) {
        bail!("input has shape {:?}, expected a non-empty [N, C, H, W]", input.shape);
    }
    if let Some(t) = tiling {
        return match engine.run_tiled(input, t) {
            Some(r) => r,
            None => bail!("--tile needs the event engine (the {} engine runs whole images)", engine.name()),
        };
    }
    let (h, w) = (input.shape[2], input.shape[3]);
    let padded = input.pad_reflect_to_multiple(engine.divisor());
    let (ph, pw) = (padded.shape[2], padded.shape[3]);
    let mut r = engine.run_padded(&padded, observe)?;
    for o in &mut r.outputs {
        let k = o.shape.len();
        if k >= 2 && o.shape[k - 2] == ph && o.shape[k - 1] == pw {
            *o = o.crop(h, w);
        }
    }
    Ok(r)
}

/// The membrane potential before the threshold, `H`, of a LIF with input `x` (the
/// interpreter's `lif_forward`, step for step, keeping `H`).
pub fn membrane(x: &Array, l: &spikerc_compiler::ir::Lif) -> Array {
    let t = x.shape[0];
    let per_t = x.len() / t;
    let vr = l.v_rest();
    let mut v = vec![vr; per_t];
    let mut out = vec![0f32; x.len()];
    for step in 0..t {
        for i in 0..per_t {
            let xi = x.data[step * per_t + i];
            let h = if l.decay_input {
                v[i] + (xi - (v[i] - vr)) / l.tau
            } else {
                v[i] - (v[i] - vr) / l.tau + xi
            };
            out[step * per_t + i] = h;
            let fire = h >= l.v_threshold;
            v[i] = match (l.reset, fire) {
                (Reset::Hard { v_reset }, true) => v_reset,
                (Reset::Soft, true) => h - l.v_threshold,
                (_, false) => h,
            };
        }
    }
    Array::new(x.shape.clone(), out)
}

/// Collects observations of the LIF modules `observe` accepts from a stream of
/// `(node, value)` of a graph run.
pub(crate) struct Observer<'a> {
    g: &'a Verified,
    observe: Observe<'a>,
    /// LIF input node -> the LIF nodes it feeds.
    feeds: BTreeMap<NodeId, Vec<NodeId>>,
    inputs: BTreeMap<NodeId, Array>,
    pub observed: BTreeMap<String, Observation>,
}

impl<'a> Observer<'a> {
    pub(crate) fn new(g: &'a Verified, observe: Observe<'a>) -> Observer<'a> {
        let mut feeds: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
        for id in g.topo_order().expect("verified graphs are acyclic") {
            let n = g.node(id);
            if matches!(n.op, Op::Lif(_)) && observe(&n.name) {
                feeds.entry(g.inputs(id)[0]).or_default().push(id);
            }
        }
        Observer { g, observe, feeds, inputs: BTreeMap::new(), observed: BTreeMap::new() }
    }

    pub(crate) fn see(&mut self, id: NodeId, a: &Array) {
        if let Some(lifs) = self.feeds.get(&id) {
            for &l in lifs {
                self.inputs.insert(l, a.clone());
            }
        }
        let n = self.g.node(id);
        if let Op::Lif(l) = &n.op {
            if (self.observe)(&n.name) {
                let x = self.inputs.remove(&id).expect("a LIF's input is computed before it");
                let membrane = membrane(&x, l);
                self.observed.insert(n.name.clone(), Observation { input: x, membrane, spikes: a.clone() });
            }
        }
    }
}

/// The reference interpreter, optionally with f64 (`wide`) convolution accumulation.
pub struct Interp<'a> {
    pub graph: &'a Verified,
    pub wide: bool,
}

impl Engine for Interp<'_> {
    fn name(&self) -> &'static str {
        "interp"
    }
    fn divisor(&self) -> usize {
        self.graph.spatial_divisor()
    }
    fn run_padded(&self, input: &Array, observe: Observe) -> anyhow::Result<RunOutput> {
        let g = self.graph;
        let mut obs = Observer::new(g, observe);
        let mut counter = counts::Counter::new(g);
        let opts = interp::Options { wide_accumulation: self.wide };
        let e = interp::run_intercepted(g, input, opts, |id, a| {
            counter.see(id, a);
            obs.see(id, a);
        })?;
        Ok(RunOutput { outputs: e.outputs, spikes: e.spikes, ops: counter.ops, observed: obs.observed })
    }
}

/// The event-driven runtime.
pub struct Event {
    pub program: Program,
    pub threads: usize,
}

impl Event {
    pub fn new(g: &Verified, threads: usize) -> Event {
        Event { program: Program::new(g), threads }
    }
    fn opts(&self) -> RunOptions {
        RunOptions { threads: self.threads, profile: false }
    }
}

impl Engine for Event {
    fn name(&self) -> &'static str {
        "event"
    }
    fn divisor(&self) -> usize {
        self.program.graph().spatial_divisor()
    }
    fn run_padded(&self, input: &Array, observe: Observe) -> anyhow::Result<RunOutput> {
        let g = self.program.graph();
        let mut obs = Observer::new(g, observe);
        let r = if obs.feeds.is_empty() {
            self.program.run(input, &self.opts())?
        } else {
            let mut seen: Vec<(NodeId, Array)> = Vec::new();
            let r = self.program.run_observed(input, &self.opts(), |id, a| {
                if obs.feeds.contains_key(&id) || matches!(g.node(id).op, Op::Lif(_)) {
                    seen.push((id, a.clone()));
                }
            })?;
            for (id, a) in &seen {
                obs.see(*id, a);
            }
            r
        };
        Ok(RunOutput { outputs: r.outputs, spikes: r.spikes, ops: r.ops, observed: obs.observed })
    }
    fn run_tiled(&self, input: &Array, t: Tiling) -> Option<anyhow::Result<RunOutput>> {
        Some(
            tile::run_tiled(&self.program, input, t.tile, t.overlap, &self.opts())
                .map(|r| RunOutput { outputs: r.outputs, spikes: r.spikes, ops: r.ops, observed: BTreeMap::new() })
                .map_err(Into::into),
        )
    }
}

/// The accelerator simulator: deploys the artifact on `target` (`lynxi[:PRESET|:FILE.toml]`)
/// for each input size, writes the deployment into `scratch`, reads it back and simulates it.
/// It does not observe modules.
pub struct Simulator<'a> {
    pub artifact: &'a Artifact,
    pub target: String,
    pub scratch: PathBuf,
}

impl Simulator<'_> {
    /// Deploys and simulates; the full simulation (report included).
    pub fn simulate(&self, padded: &Array) -> anyhow::Result<spikerc_targets::Simulation> {
        let spec = spikerc_targets::TargetSpec::parse(&self.target).map_err(anyhow::Error::msg)?;
        let (machine, label) = spec.load()?;
        let dep = spikerc_targets::lynxi::compile(
            self.artifact,
            &machine,
            &spikerc_targets::lynxi::Options { input_size: [padded.shape[2], padded.shape[3]], preset: label },
        )?;
        dep.write_dir(&self.scratch)?;
        let loaded = spikerc_targets::load_dir(&self.scratch)?;
        Ok(spikerc_targets::simulate(&loaded, padded, &spikerc_targets::SimOptions { threads: 0 })?)
    }
}

impl Engine for Simulator<'_> {
    fn name(&self) -> &'static str {
        "sim"
    }
    fn divisor(&self) -> usize {
        self.artifact.graph.spatial_divisor()
    }
    fn run_padded(&self, input: &Array, observe: Observe) -> anyhow::Result<RunOutput> {
        if !Observer::new(&self.artifact.graph, observe).feeds.is_empty() {
            bail!("the simulator engine does not observe modules (use interp or event)");
        }
        let s = self.simulate(input)?;
        Ok(RunOutput { outputs: s.outputs, spikes: s.runtime.spikes, ops: s.runtime.ops, observed: BTreeMap::new() })
    }
}

/// The engines a command line can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    Event,
    Interp,
    Sim,
    Torch,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Event => "event",
            EngineKind::Interp => "interp",
            EngineKind::Sim => "sim",
            EngineKind::Torch => "torch",
        }
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for EngineKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "event" => EngineKind::Event,
            "interp" => EngineKind::Interp,
            "sim" => EngineKind::Sim,
            "torch" => EngineKind::Torch,
            _ => return Err(format!("unknown engine `{s}` (expected event, interp, sim or torch)")),
        })
    }
}

/// An artifact engine of `kind` (`torch` is not one: it runs checkpoints). `wide` selects
/// the interpreter's f64 accumulation (only the interpreter has it); `target` and `scratch`
/// are for the simulator.
pub fn artifact_engine<'a>(
    kind: EngineKind,
    art: &'a Artifact,
    threads: usize,
    wide: bool,
    target: Option<&str>,
    scratch: Option<PathBuf>,
) -> anyhow::Result<Box<dyn Engine + 'a>> {
    if wide && kind != EngineKind::Interp {
        bail!("--wide (f64 accumulation) needs the interpreter (--engine interp), not {kind}");
    }
    Ok(match kind {
        EngineKind::Interp => Box::new(Interp { graph: &art.graph, wide }),
        EngineKind::Event => Box::new(Event::new(&art.graph, threads)),
        EngineKind::Sim => Box::new(Simulator {
            artifact: art,
            target: target.unwrap_or("lynxi:ka200-like").to_string(),
            scratch: scratch.unwrap_or_else(|| {
                std::env::temp_dir().join(format!("spikerc-sim-{}", std::process::id()))
            }),
        }),
        EngineKind::Torch => bail!("the torch engine runs a checkpoint, not an artifact"),
    })
}

pub mod counts;
