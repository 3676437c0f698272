//! The `lynxi` back end: maps a verified (f16-quantized) graph onto a many-core machine (or
//! a card of several chips), as a typed pipeline over layer, stage, slice and core ids:
//!
//! 1. **assign** (`map.rs`) — group nodes into layers ([`crate::layers`]), resolve shapes at
//!    the fixed deployment size, mark the layers that need all T of their input;
//! 2. **schedule** ([`crate::schedule`]) — cut the layers into stages and decide per stage how
//!    it runs (`layer-serial`, `pipelined`, `fused`; `auto` chooses and says why);
//! 3. **partition** ([`place::partition`]) — on a card, one contiguous range of stages per
//!    chip, every chip's weights fitting its weight SRAM;
//! 4. **slice / place** — layer-serial: by output channel along a serpentine walk (today's
//!    mapping); streaming schedules: [`place::balanced`] (channels x row bands, balanced per
//!    stage) and [`place::improve`] (hop-weighted local search);
//! 5. **memory** — per slice a working tile that fits state SRAM; every inter-layer tensor
//!    buffers what its schedule needs (all T, one step, or a line buffer) in its producer
//!    slices' state SRAM while live, the rest staged in DRAM;
//! 6. **route** — producer slices multicast to the consumer slices that read their rows (XY
//!    trees; other chips over the card's links); per conv a [`crate::dataflow`] nest;
//! 7. **emit** (`emit.rs`) — the deterministic deployment directory; [`validate`] checks
//!    every index and capacity of a manifest (also when a directory is loaded).
//!
//! Mapping errors name the module, the limit and the shortfall, and for a model that does
//! not fit one chip the smallest chip count that does.

mod emit;
mod map;
pub mod passes;
pub mod place;
pub mod validate;

pub use emit::{load_dir, LoadError, Loaded};
pub use map::{compile, compile_with};
pub use validate::validate;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use spikerc_compiler::{NodeId, ValueKind};

use crate::layers::{channels_of, layer_key, node_infos, value_bytes, NodeInfo};
use crate::machine::Machine;

/// Manifest format name and version.
pub const FORMAT: &str = "spikerc-lynxi";
pub const FORMAT_VERSION: u32 = 2;
/// Alignment of every SRAM region, bytes.
pub const ALIGN: u64 = 64;
/// Input firing rate assumed for spike-driven layers when balancing work at compile time
/// (the simulator uses the measured rates).
pub const PLACEMENT_FIRING_RATE: f64 = 0.25;
/// A layer is split only into slices carrying at least this many barriers' worth of cycles per
/// time step (finer slices would wait more than they compute).
pub const MIN_SLICE_STEP_FACTOR: f64 = 4.0;
/// Tiles are sized to `1 / TILE_SRAM_DIVISOR` of state SRAM when possible.
pub const TILE_SRAM_DIVISOR: u64 = 4;

/// Why a model cannot be mapped.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MapError {
    #[error("{layer}: smallest slice (1 output channel) needs {need} of weights, core weight SRAM is {have}: short by {short} (machine {machine})")]
    SliceTooBig {
        layer: String,
        need: String,
        have: String,
        short: String,
        machine: String,
    },
    #[error("{layer}: smallest tile (1x1 output, 1 channel) needs {need} of state SRAM (input band, output, membrane), core state SRAM is {have}: short by {short} (machine {machine})")]
    TileTooBig {
        layer: String,
        need: String,
        have: String,
        short: String,
        machine: String,
    },
    #[error("model needs {need} of weights, {cores} cores x {per_core} = {have}: {short} of weights did not fit, from {layer} on (machine {machine}){advice}")]
    OutOfCores {
        need: String,
        cores: usize,
        per_core: String,
        have: String,
        short: String,
        layer: String,
        machine: String,
        /// `; the smallest card that fits has N chips: --chips N`, or empty.
        advice: String,
    },
    #[error("staging buffers need {need} of DRAM, machine {machine} has {have}: short by {short}")]
    OutOfDram {
        need: String,
        have: String,
        short: String,
        machine: String,
    },
    #[error("{0}")]
    Machine(String),
    #[error("internal mapping check failed: {0}")]
    Invalid(String),
    #[error("--chips {chips}: must be between 1 and {max}")]
    Chips { chips: usize, max: usize },
    #[error("input size {h}x{w} is not valid: sides must be between 1 and 65536 (the model pads them to multiples of {divisor})")]
    InputSize { h: usize, w: usize, divisor: usize },
}

/// Human-readable byte size (KiB / MiB with one decimal where needed).
pub fn kib(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    } else if b.is_multiple_of(1024) {
        format!("{} KiB", b / 1024)
    } else if b >= 1024 {
        format!("{:.1} KiB", b as f64 / 1024.0)
    } else {
        format!("{b} B")
    }
}

/// What the model is and how it is deployed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub model: String,
    pub source: String,
    pub precision: String,
    pub time_steps: usize,
    /// `[H, W]` the deployment is compiled for (batch 1 per run; batches run image by image).
    pub input_size: [usize; 2],
    pub input: TensorInfo,
    pub outputs: Vec<TensorInfo>,
    /// Preset name or machine file name.
    pub preset: String,
    /// The schedule asked for (`auto` chooses per stage, see [`Stage`]).
    pub schedule: crate::schedule::Schedule,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<usize>,
}

/// One mapping layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub id: usize,
    pub name: String,
    /// Mnemonics of its nodes, e.g. `conv2d.ac` or `reduce_mean+axis_linear+...`.
    pub ops: String,
    /// Node indices in the artifact's graph.
    pub nodes: Vec<usize>,
    /// Channels split across slices.
    pub channels: usize,
    pub out_shape: Vec<usize>,
    pub weight_bytes: u64,
    pub slices: Vec<usize>,
    pub stage: usize,
    pub chip: usize,
    /// Extra kernel rows (receptive field - 1) of its convolutions.
    pub halo: usize,
    /// Reads a full-T layer makes of its buffered input ([`passes`]: statistics passes +
    /// the apply pass; layer-serial: every distinct reduction + the apply pass); 1 for
    /// every other layer.
    pub passes: usize,
    /// Dataflow of its convolution (none for other layers).
    pub dataflow: Option<crate::dataflow::Dataflow>,
    /// Needs all T (or the whole image) of its input at once (a stage of its own).
    pub full_t: bool,
}

/// A group of layers that runs together (see [`crate::schedule`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    pub id: usize,
    pub layers: Vec<usize>,
    pub mode: crate::schedule::StageMode,
    pub chip: usize,
    /// Why this mode (what `auto` weighed, or what was asked).
    pub reason: String,
}

/// A channel range of one layer on one core, processed in spatial tiles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Slice {
    pub id: usize,
    pub layer: usize,
    pub core: usize,
    /// Output channels `[start, end)`.
    pub channels: [usize; 2],
    /// Output rows `[start, end)` (row bands repeat the layer's weights).
    pub rows: [usize; 2],
    pub weight_bytes: u64,
    /// Tile `[rows, cols]` of output pixels.
    pub tile: [usize; 2],
    pub tiles: usize,
    /// State SRAM this slice needs while it runs (input band, output tile, membrane).
    pub working_bytes: u64,
}

/// A tensor crossing layers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    pub id: usize,
    /// Producing node index; `from_layer` is `None` for the host image input.
    pub node: usize,
    pub from_layer: Option<usize>,
    /// Consuming layer; `None` for a graph output written back to the host.
    pub to_layer: Option<usize>,
    pub kind: String,
    pub shape: Vec<usize>,
    /// Bytes of the whole tensor (all time steps; spikes as bits, real values as f32).
    pub bytes: u64,
    /// `sram` (buffered in the producer cores' state SRAM), `dram` (staged off chip),
    /// `split` (partly each) or `host`.
    pub staging: String,
    /// What the producer's buffer holds (the strongest need of its consumers).
    pub buffer: crate::schedule::BufferKind,
    /// Bytes of that buffer, and how many of them live in SRAM / DRAM.
    pub buffer_bytes: u64,
    pub sram_bytes: u64,
    pub dram_bytes: u64,
    /// True when producer and consumer sit on different chips.
    pub crosses_chips: bool,
    /// The consumer reads the producer's stream (a line / one-step copy in the producer's
    /// SRAM, over the routes) although the tensor is buffered whole for a later consumer.
    #[serde(default)]
    pub streamed: bool,
}

/// One SRAM region of a core.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Region {
    /// `weight` or `state`.
    pub sram: String,
    pub offset: u64,
    pub bytes: u64,
    pub what: String,
}

/// A multicast route from a producer slice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub edge: usize,
    pub slice: usize,
    pub dests: Vec<usize>,
    /// Mesh links of the XY multicast tree.
    pub links: usize,
    /// Longest source-to-destination distance, hops.
    pub depth: usize,
    /// Share of the producer slice's output these destinations need (their rows).
    pub fraction: f64,
    /// Other chips reached over the card's links.
    pub chip_links: usize,
}

/// Everything placed on one core.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoreMap {
    pub id: usize,
    pub chip: usize,
    pub x: usize,
    pub y: usize,
    pub slices: Vec<usize>,
    pub weight_used: u64,
    pub state_used: u64,
    pub memory: Vec<Region>,
    pub routes: Vec<Route>,
    /// Byte ranges of this core's data in the blobs.
    pub weights_blob: [u64; 2],
    pub routes_blob: [u64; 2],
}

/// Totals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub cores_total: usize,
    pub cores_used: usize,
    pub layers: usize,
    pub slices: usize,
    pub weight_bytes: u64,
    pub weight_sram_fill: f64,
    pub edges_sram: usize,
    pub edges_dram: usize,
    pub dram_staging_bytes: u64,
    /// Least estimated work (cycles over all steps) that justifies one more slice.
    pub min_slice_work_cycles: f64,
    pub chips: usize,
    pub stages: usize,
    /// Estimated mesh hops per spike (placement firing rate) of the placement, and of the
    /// same slices laid along the serpentine walk.
    pub hops_per_spike: f64,
    pub hops_per_spike_serpentine: f64,
    /// The same over all on-chip traffic (spikes and real values, by wire bytes): what the
    /// placement minimises, so never above the serpentine figure.
    #[serde(default)]
    pub hops_per_byte: f64,
    #[serde(default)]
    pub hops_per_byte_serpentine: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    pub crc32: String,
}

/// The deployment manifest (`manifest.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub model: ModelInfo,
    pub machine: Machine,
    pub summary: Summary,
    pub layers: Vec<Layer>,
    pub stages: Vec<Stage>,
    pub slices: Vec<Slice>,
    pub edges: Vec<Edge>,
    pub cores: Vec<CoreMap>,
    pub files: Vec<FileEntry>,
}

/// A compiled deployment in memory.
#[derive(Clone, Debug)]
pub struct Deployment {
    pub manifest: Manifest,
    /// f16 (or f32) weights of every core, concatenated (`CoreMap::weights_blob`).
    pub weights: Vec<u8>,
    /// Routing tables of every core, concatenated (`CoreMap::routes_blob`).
    pub routes: Vec<u8>,
    /// The artifact the simulator executes.
    pub artifact: Vec<u8>,
}

/// Deployment options.
#[derive(Clone, Debug)]
pub struct Options {
    /// Input image `[H, W]`.
    pub input_size: [usize; 2],
    /// Label of the machine in the manifest (preset name or file name).
    pub preset: String,
}

pub struct LayerDraft {
    pub(crate) name: String,
    pub(crate) nodes: Vec<NodeId>,
    pub(crate) channels: usize,
    pub(crate) out_shape: Vec<usize>,
    /// Weight bytes that split with the channels, and those every slice needs whole.
    pub(crate) split_bytes: u64,
    pub(crate) fixed_bytes: u64,
    /// Estimated cycles for the whole layer (placement only).
    pub(crate) work: f64,
    /// True when every slice needs all input channels (convs, channel mixing).
    pub(crate) mixes_channels: bool,
    pub(crate) halo: usize,
    /// Needs all T (or the whole image) of its input at once.
    pub(crate) needs_all_t: bool,
    pub(crate) passes: usize,
    /// Where its reductions run ([`passes`]).
    pub(crate) pass_plan: passes::Passes,
}

impl LayerDraft {
    /// Weights of `k` channels including the layer's unsplit tensors.
    pub(crate) fn weight_for(&self, k: usize) -> u64 {
        self.weight_for_slice(k, true)
    }
    /// Weights of a slice of `k` channels: unsplit tensors (attention MLPs, 1-channel convs)
    /// live on the layer's first channel slice only, which broadcasts their small results.
    pub(crate) fn weight_for_slice(&self, k: usize, first: bool) -> u64 {
        (if first { self.fixed_bytes } else { 0 })
            + (self.split_bytes * k as u64).div_ceil(self.channels as u64)
    }
    /// Output rows.
    pub(crate) fn rows(&self) -> usize {
        spatial(&self.out_shape).0
    }
}

/// Whether a parameter tensor is split by output channel with its layer.
pub(crate) fn splits_with(
    node_channels: usize,
    layer_channels: usize,
    rank: usize,
    t: &spikerc_compiler::Tensor,
) -> bool {
    node_channels == layer_channels
        && rank >= 4
        && !t.shape.is_empty()
        && t.shape[0] == layer_channels
}

/// Estimated cycles of a node (for balancing only).
pub(crate) fn node_work(m: &Machine, i: &NodeInfo) -> f64 {
    let c = &m.core;
    let ac = if i.mnemonic == "conv2d.ac" {
        i.dense as f64 * PLACEMENT_FIRING_RATE
    } else {
        0.0
    };
    ac / c.ac_lanes as f64
        + i.mac as f64 / c.mac_lanes as f64
        + i.neuron_updates as f64 / c.neuron_lanes as f64
        + i.vector_ops as f64 / c.vector_lanes as f64
}

pub(crate) fn file_entry(name: &str, bytes: &[u8]) -> FileEntry {
    FileEntry {
        name: name.into(),
        bytes: bytes.len() as u64,
        crc32: format!("{:08x}", crc32fast::hash(bytes)),
    }
}

/// Little-endian bytes of a parameter tensor, optionally only rows `[c0, c1)` of axis 0.
pub(crate) fn param_bytes(t: &spikerc_compiler::Tensor, rows: Option<[usize; 2]>) -> Vec<u8> {
    use spikerc_compiler::tensor::TensorData;
    let per_row = if t.shape.is_empty() {
        1
    } else {
        t.len() / t.shape[0].max(1)
    };
    let (a, b) = match rows {
        Some([c0, c1]) => (c0 * per_row, c1 * per_row),
        None => (0, t.len()),
    };
    match &t.data {
        TensorData::F16(v) => v[a..b]
            .iter()
            .flat_map(|x| x.to_bits().to_le_bytes())
            .collect(),
        TensorData::F32(v) => v[a..b].iter().flat_map(|x| x.to_le_bytes()).collect(),
    }
}

/// Rows (axis -2) of a shape, 1 without spatial axes.
pub fn spatial_rows(shape: &[usize]) -> usize {
    spatial(shape).0
}

/// `(rows, cols)` of the last two axes.
pub(crate) fn spatial(shape: &[usize]) -> (usize, usize) {
    let r = shape.len();
    if r >= 2 {
        (shape[r - 2], shape[r - 1])
    } else {
        (1, 1)
    }
}

/// Links and depth of the XY (x first, then y) multicast tree from `src` to `dests`.
pub fn multicast_tree(m: &Machine, src: usize, dests: &[usize]) -> (usize, usize) {
    let mut links: BTreeSet<(usize, usize)> = BTreeSet::new();
    let mut depth = 0;
    let (sx, sy) = m.position(src);
    for &d in dests {
        let (dx, dy) = m.position(d);
        depth = depth.max(sx.abs_diff(dx) + sy.abs_diff(dy));
        let (mut x, mut y) = (sx, sy);
        while x != dx {
            let nx = if dx > x { x + 1 } else { x - 1 };
            links.insert((y * m.mesh.cols + x, y * m.mesh.cols + nx));
            x = nx;
        }
        while y != dy {
            let ny = if dy > y { y + 1 } else { y - 1 };
            links.insert((y * m.mesh.cols + x, ny * m.mesh.cols + x));
            y = ny;
        }
    }
    (links.len(), depth)
}

/// True when a value kind travels as spikes.
pub fn is_spikes(kind: &str) -> bool {
    kind == ValueKind::Spikes.to_string()
}
