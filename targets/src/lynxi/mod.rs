//! The `lynxi` back end: maps a verified (f16-quantized) graph onto a many-core machine.
//!
//! Stages, named as Lynxi's Lyngor logs them:
//!
//! 1. **resource assign** — group nodes into layers ([`crate::layers`]) and resolve shapes at
//!    the fixed deployment size (`--input-size`, batch 1);
//! 2. **core slice / core map** — split each layer by output channels: weights are stationary,
//!    so a slice must fit one core's weight SRAM (a layer whose single output channel does not
//!    fit is a mapping error naming it). Layers run one after another over all T steps (the
//!    model's multi-step semantics), so each layer is spread over as many cores as its work
//!    justifies; slice `j` goes to the `j`-th core of a serpentine walk of the mesh from a
//!    start chosen where weight SRAM is emptiest (largest slices placed first), so
//!    channel-wise neighbouring layers share cores and their spikes stay local;
//! 3. **core memory arrange** — each slice processes its output in spatial tiles sized so that
//!    input band, output band and membrane state fit a quarter of the state SRAM (time-shared
//!    by the slices of a core, which run one after another); an inter-layer tensor (all T
//!    steps) stays in its producer slices' state SRAM, each keeping its channel share, from
//!    the producing to the last consuming layer (regions with disjoint lifetimes share
//!    addresses), otherwise it is staged in DRAM (Lyngor's load/save buffers);
//! 4. **routing config / route map** — every on-chip inter-layer tensor is multicast from each
//!    producer slice to the cores of the consumer's slices along XY (dimension-ordered) trees.
//!
//! The result is a [`Deployment`]: a JSON [`Manifest`] plus binary blobs, written as a
//! directory by [`Deployment::write_dir`]. Everything is deterministic.

mod emit;

pub use emit::{load_dir, LoadError, Loaded};

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use spikerc_compiler::{Artifact, NodeId, Op, ValueKind};

use crate::layers::{channels_of, layer_key, node_infos, value_bytes, NodeInfo};
use crate::machine::Machine;

/// Manifest format name and version.
pub const FORMAT: &str = "spikerc-lynxi";
pub const FORMAT_VERSION: u32 = 1;
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
    #[error("model needs {need} of weights, {cores} cores x {per_core} = {have}: {short} of weights did not fit, from {layer} on (machine {machine})")]
    OutOfCores {
        need: String,
        cores: usize,
        per_core: String,
        have: String,
        short: String,
        layer: String,
        machine: String,
    },
    #[error("staging buffers need {need} of DRAM, machine {machine} has {have}: short by {short}")]
    OutOfDram {
        need: String,
        have: String,
        short: String,
        machine: String,
    },
    #[error("input size {h}x{w} is not valid for this model: sides must be positive multiples of {divisor}")]
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
}

/// A channel range of one layer on one core, processed in spatial tiles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Slice {
    pub id: usize,
    pub layer: usize,
    pub core: usize,
    /// Output channels `[start, end)`.
    pub channels: [usize; 2],
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
    /// `sram` (buffered on the consumer cores), `dram` (staged off chip) or `host`.
    pub staging: String,
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
}

/// Everything placed on one core.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoreMap {
    pub id: usize,
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

struct LayerDraft {
    name: String,
    nodes: Vec<NodeId>,
    channels: usize,
    out_shape: Vec<usize>,
    /// Weight bytes that split with the channels, and those every slice needs whole.
    split_bytes: u64,
    fixed_bytes: u64,
    /// Estimated cycles for the whole layer (placement only).
    work: f64,
    /// True when every slice needs all input channels (convs, channel mixing).
    mixes_channels: bool,
    halo: usize,
}

impl LayerDraft {
    /// Weights of `k` channels including the layer's unsplit tensors.
    fn weight_for(&self, k: usize) -> u64 {
        self.weight_for_slice(k, true)
    }
    /// Weights of a slice of `k` channels: unsplit tensors (attention MLPs, 1-channel convs)
    /// live on the layer's first slice only, which broadcasts their small results.
    fn weight_for_slice(&self, k: usize, first: bool) -> u64 {
        (if first { self.fixed_bytes } else { 0 })
            + (self.split_bytes * k as u64).div_ceil(self.channels as u64)
    }
}

/// Whether a parameter tensor is split by output channel with its layer.
fn splits_with(
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
fn node_work(m: &Machine, i: &NodeInfo) -> f64 {
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

/// Maps an artifact onto a machine.
pub fn compile(art: &Artifact, machine: &Machine, opts: &Options) -> Result<Deployment, MapError> {
    let g = &art.graph;
    let [h, w] = opts.input_size;
    let divisor = g.spatial_divisor();
    if h == 0 || w == 0 || h % divisor != 0 || w % divisor != 0 {
        return Err(MapError::InputSize { h, w, divisor });
    }
    let infos = node_infos(g, 1, h, w);
    let order = g.topo_order().expect("verified");

    // 1. resource assign: layers in order of first appearance.
    let mut drafts: Vec<LayerDraft> = Vec::new();
    let mut layer_of: BTreeMap<NodeId, usize> = BTreeMap::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut uses: BTreeMap<String, usize> = BTreeMap::new();
    for &id in &order {
        let Some(key) = layer_key(g, id) else {
            continue;
        };
        // A node joins its module's latest layer only if that keeps the layer graph acyclic
        // (all its inputs come from that layer or earlier ones); otherwise it opens a new
        // layer `key#k` (a block's second residual add, after its attention).
        let latest_input = g
            .inputs(id)
            .iter()
            .filter_map(|i| layer_of.get(i).copied())
            .max();
        let existing = index
            .get(&key)
            .copied()
            .filter(|&l| latest_input.map_or(true, |m| m <= l));
        let li = existing.unwrap_or_else(|| {
            let n = *uses.entry(key.clone()).and_modify(|n| *n += 1).or_insert(1);
            let name = if n == 1 {
                key.clone()
            } else {
                format!("{key}#{n}")
            };
            index.insert(key.clone(), drafts.len());
            drafts.push(LayerDraft {
                name,
                nodes: vec![],
                channels: 1,
                out_shape: vec![],
                split_bytes: 0,
                fixed_bytes: 0,
                work: 0.0,
                mixes_channels: false,
                halo: 0,
            });
            drafts.len() - 1
        });
        drafts[li].nodes.push(id);
        layer_of.insert(id, li);
    }
    for d in &mut drafts {
        let mut seen_params: BTreeSet<(String, &'static str)> = BTreeSet::new();
        let last = &infos[d.nodes.last().expect("non-empty")];
        d.out_shape = last.shape.clone();
        d.channels = channels_of(&last.shape).max(1);
        for id in &d.nodes {
            let i = &infos[id];
            d.work += node_work(machine, i);
            let node = g.node(*id);
            let co = channels_of(&i.shape);
            match &node.op {
                Op::Conv2d(c) => {
                    d.mixes_channels = true;
                    d.halo = d.halo.max(c.kernel()[0].saturating_sub(1));
                }
                Op::AxisLinear { .. } | Op::Reduce { .. } | Op::Concat { .. } => {
                    d.mixes_channels = true
                }
                _ => {}
            }
            for (role, t) in node.op.params() {
                if !seen_params.insert((node.name.clone(), role)) {
                    continue; // the same module's weights used twice (shared MLP): stored once
                }
                if splits_with(co, d.channels, i.shape.len(), t) {
                    d.split_bytes += t.byte_len() as u64;
                } else {
                    d.fixed_bytes += t.byte_len() as u64;
                }
            }
        }
    }

    // 2. core slice / core map: spread every layer over the cores its work justifies.
    let cap = machine.core.weight_sram_bytes;
    for d in &drafts {
        let need = d.weight_for(1);
        if need > cap {
            return Err(MapError::SliceTooBig {
                layer: d.name.clone(),
                need: kib(need),
                have: kib(cap),
                short: kib(need - cap),
                machine: machine.name.clone(),
            });
        }
    }
    let walk = machine.serpentine();
    let min_work =
        (MIN_SLICE_STEP_FACTOR * machine.noc.barrier_cycles.max(1) as f64) * g.time_steps() as f64;
    let pieces = match spread(&drafts, &walk, cap, min_work) {
        Ok(p) => p,
        Err((failed, c0)) => {
            let need: u64 = drafts.iter().map(|d| d.weight_for(d.channels)).sum();
            let have = cap * walk.len() as u64;
            let left: u64 = drafts[failed].weight_for(drafts[failed].channels - c0)
                + drafts[failed + 1..]
                    .iter()
                    .map(|d| d.weight_for(d.channels))
                    .sum::<u64>();
            return Err(MapError::OutOfCores {
                need: kib(need),
                cores: walk.len(),
                per_core: kib(cap),
                have: kib(have),
                short: kib(left),
                layer: drafts[failed].name.clone(),
                machine: machine.name.clone(),
            });
        }
    };
    let budget = min_work;

    // 3. core memory arrange: tiles per slice.
    let state_cap = machine.core.state_sram_bytes;
    let mut slices: Vec<Slice> = Vec::new();
    for (li, core, c0, c1) in &pieces {
        let d = &drafts[*li];
        let k = c1 - c0;
        // Tiles use at most a quarter of state SRAM when they can, leaving the rest for
        // inter-layer buffers; the whole of it when they must.
        let (tile, ws) = choose_tile(
            g,
            &infos,
            d,
            &layer_of,
            *li,
            k,
            state_cap / TILE_SRAM_DIVISOR,
        )
        .or_else(|_| choose_tile(g, &infos, d, &layer_of, *li, k, state_cap))
        .map_err(|need| MapError::TileTooBig {
            layer: d.name.clone(),
            need: kib(need),
            have: kib(state_cap),
            short: kib(need.saturating_sub(state_cap)),
            machine: machine.name.clone(),
        })?;
        let (oh, ow) = spatial(&d.out_shape);
        slices.push(Slice {
            id: slices.len(),
            layer: *li,
            core: *core,
            channels: [*c0, *c1],
            weight_bytes: d.weight_for_slice(k, *c0 == 0),
            tile,
            tiles: oh.div_ceil(tile[0]) * ow.div_ceil(tile[1]),
            working_bytes: ws,
        });
    }
    let mut layers: Vec<Layer> = drafts
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut ops: Vec<&str> = Vec::new();
            for id in &d.nodes {
                let m = g.node(*id).op.mnemonic();
                if !ops.contains(&m) {
                    ops.push(m);
                }
            }
            Layer {
                id: i,
                name: d.name.clone(),
                ops: ops.join("+"),
                nodes: d.nodes.iter().map(|n| n.index()).collect(),
                channels: d.channels,
                out_shape: d.out_shape.clone(),
                weight_bytes: d.weight_for(d.channels),
                slices: vec![],
            }
        })
        .collect();
    for s in &slices {
        layers[s.layer].slices.push(s.id);
    }

    // Edges between layers (and to/from the host).
    let mut edges: Vec<Edge> = Vec::new();
    let mut seen: BTreeSet<(NodeId, Option<usize>)> = BTreeSet::new();
    for &id in &order {
        let node = g.node(id);
        let to = layer_of.get(&id).copied();
        for src in g.inputs(id) {
            let from = layer_of.get(&src).copied();
            let host_src = from.is_none();
            if to.is_some() && from == to {
                continue;
            }
            if to.is_none() && !matches!(node.op, Op::Output) {
                continue; // host-internal (repeat of the input)
            }
            // The image reaches layers through the host's repeat: record the image itself.
            let src_node = if host_src {
                g.input().expect("verified")
            } else {
                src
            };
            if !seen.insert((src_node, to)) {
                continue;
            }
            let info = &infos[&src_node];
            let kind = g.node(src_node).fact.kind;
            edges.push(Edge {
                id: edges.len(),
                node: src_node.index(),
                from_layer: from,
                to_layer: to,
                kind: kind.to_string(),
                shape: info.shape.clone(),
                bytes: value_bytes(kind, info.out_elems()),
                staging: String::new(),
            });
        }
    }

    // Inter-layer tensors stay in their producer slices' state SRAM (each slice keeps its
    // channel share) from the producing layer to the last consuming one; regions whose
    // lifetimes do not overlap share addresses. What does not fit is staged in DRAM.
    let ncores = machine.cores();
    let mut working = vec![0u64; ncores];
    for s in &slices {
        working[s.core] = working[s.core].max(s.working_bytes.div_ceil(ALIGN) * ALIGN);
    }
    let by_index: BTreeMap<usize, NodeId> = g.ids().map(|i| (i.index(), i)).collect();
    // (offset, bytes, first layer, last layer) per core.
    let mut live: Vec<Vec<(u64, u64, usize, usize)>> = vec![vec![]; ncores];
    let mut state_regions: Vec<Vec<Region>> = vec![vec![]; ncores];
    let mut values: BTreeMap<usize, (usize, usize)> = BTreeMap::new(); // node -> (producer, last consumer)
    for e in &edges {
        if let (Some(f), Some(t)) = (e.from_layer, e.to_layer) {
            let v = values.entry(e.node).or_insert((f, t));
            v.1 = v.1.max(t);
        }
    }
    let mut staging: BTreeMap<usize, &'static str> = BTreeMap::new();
    // In production order.
    let mut candidates: Vec<(u64, usize, usize, usize)> = values
        .iter()
        .map(|(&node, &(from, last))| (from as u64, node, from, last))
        .collect();
    candidates.sort();
    for (_, node, from, last) in candidates {
        let bytes = edges
            .iter()
            .find(|e| e.node == node && e.from_layer.is_some())
            .map(|e| e.bytes)
            .unwrap_or(0);
        let mut placed: Vec<(usize, u64, u64)> = Vec::new();
        let mut ok = true;
        for &ps in &layers[from].slices {
            let sl = &slices[ps];
            let share = ((bytes as f64) * (sl.channels[1] - sl.channels[0]) as f64
                / layers[from].channels as f64)
                .ceil() as u64;
            let need = share.div_ceil(ALIGN) * ALIGN;
            let c = sl.core;
            let mut taken: Vec<(u64, u64)> = live[c]
                .iter()
                .filter(|r| r.2 <= last && from <= r.3)
                .map(|r| (r.0, r.0 + r.1))
                .chain(placed.iter().filter(|p| p.0 == c).map(|p| (p.1, p.1 + p.2)))
                .collect();
            taken.sort();
            let mut off = working[c];
            for (a, b) in taken {
                if off + need <= a {
                    break;
                }
                off = off.max(b);
            }
            if off + need > state_cap {
                ok = false;
                break;
            }
            placed.push((c, off, need));
        }
        if ok {
            for (i, (c, off, need)) in placed.into_iter().enumerate() {
                live[c].push((off, need, from, last));
                let ps = layers[from].slices[i];
                state_regions[c].push(Region {
                    sram: "state".into(),
                    offset: off,
                    bytes: need,
                    what: format!(
                        "output {} [{}, {}), all steps, live layers {}..={}",
                        g.node(by_index[&node]).name,
                        slices[ps].channels[0],
                        slices[ps].channels[1],
                        from,
                        last
                    ),
                });
            }
        }
        staging.insert(node, if ok { "sram" } else { "dram" });
    }
    for e in &mut edges {
        e.staging = match (e.from_layer, e.to_layer) {
            (Some(_), Some(_)) => staging[&e.node].into(),
            _ => "host".into(),
        };
    }
    let top: Vec<u64> = (0..ncores)
        .map(|c| {
            state_cap
                - live[c]
                    .iter()
                    .map(|r| r.0 + r.1)
                    .max()
                    .unwrap_or(working[c])
                    .max(working[c])
        })
        .collect();
    let dram_need: u64 = edges
        .iter()
        .filter(|e| e.staging == "dram")
        .map(|e| e.bytes)
        .sum();
    if dram_need > machine.dram.bytes {
        return Err(MapError::OutOfDram {
            need: kib(dram_need),
            have: kib(machine.dram.bytes),
            short: kib(dram_need - machine.dram.bytes),
            machine: machine.name.clone(),
        });
    }

    // 4. routing: XY multicast trees from every producer slice of an on-chip edge.
    let mut routes: Vec<Vec<Route>> = vec![vec![]; ncores];
    for e in &edges {
        if e.staging != "sram" {
            continue;
        }
        let (from, to) = (e.from_layer.unwrap(), e.to_layer.unwrap());
        let dest_all: BTreeSet<usize> = layers[to].slices.iter().map(|&s| slices[s].core).collect();
        for &ps in &layers[from].slices {
            let src = slices[ps].core;
            let dests: Vec<usize> = dest_all.iter().copied().filter(|&c| c != src).collect();
            let (links, depth) = multicast_tree(machine, src, &dests);
            routes[src].push(Route {
                edge: e.id,
                slice: ps,
                dests,
                links,
                depth,
            });
        }
    }

    // Blobs and per-core memory maps.
    let mut weights_blob: Vec<u8> = Vec::new();
    let mut routes_blob: Vec<u8> = Vec::new();
    let mut cores: Vec<CoreMap> = Vec::new();
    let mut by_core: Vec<Vec<usize>> = vec![vec![]; ncores];
    for s in &slices {
        by_core[s.core].push(s.id);
    }
    for c in 0..ncores {
        let (x, y) = machine.position(c);
        let wstart = weights_blob.len() as u64;
        let mut memory = Vec::new();
        let mut off = 0u64;
        for &si in &by_core[c] {
            let s = &slices[si];
            let d = &drafts[s.layer];
            let mut seen_params: BTreeSet<(String, &'static str)> = BTreeSet::new();
            for id in &d.nodes {
                let node = g.node(*id);
                let co = channels_of(&infos[id].shape);
                for (role, t) in node.op.params() {
                    if !seen_params.insert((node.name.clone(), role)) {
                        continue;
                    }
                    let split = splits_with(co, d.channels, infos[id].shape.len(), t);
                    if !split && s.channels[0] != 0 {
                        continue;
                    }
                    let bytes = param_bytes(t, if split { Some(s.channels) } else { None });
                    if bytes.is_empty() {
                        continue;
                    }
                    memory.push(Region {
                        sram: "weight".into(),
                        offset: off,
                        bytes: bytes.len() as u64,
                        what: if split {
                            format!(
                                "{} {role} [{}, {})",
                                node.name, s.channels[0], s.channels[1]
                            )
                        } else {
                            format!("{} {role}", node.name)
                        },
                    });
                    weights_blob.extend_from_slice(&bytes);
                    off += bytes.len() as u64;
                }
            }
            // Every slice starts aligned.
            let padded = off.div_ceil(ALIGN) * ALIGN;
            weights_blob.resize(weights_blob.len() + (padded - off) as usize, 0);
            off = padded;
        }
        let weight_used = off;
        debug_assert!(
            weight_used <= cap,
            "weights overflow on core {c}: {weight_used} > {cap}"
        );
        for &si in &by_core[c] {
            let s = &slices[si];
            memory.push(Region {
                sram: "state".into(),
                offset: 0,
                bytes: s.working_bytes,
                what: format!(
                    "work {} [{}, {}) tile {}x{} (time-shared)",
                    layers[s.layer].name, s.channels[0], s.channels[1], s.tile[0], s.tile[1]
                ),
            });
        }
        memory.extend(state_regions[c].iter().cloned());
        let rstart = routes_blob.len() as u64;
        for r in &routes[c] {
            routes_blob.extend_from_slice(&(r.edge as u32).to_le_bytes());
            routes_blob.extend_from_slice(&(r.slice as u32).to_le_bytes());
            routes_blob.extend_from_slice(&(c as u16).to_le_bytes());
            routes_blob.extend_from_slice(&(r.dests.len() as u16).to_le_bytes());
            for &d in &r.dests {
                routes_blob.extend_from_slice(&(d as u16).to_le_bytes());
            }
        }
        cores.push(CoreMap {
            id: c,
            x,
            y,
            slices: by_core[c].clone(),
            weight_used,
            state_used: state_cap - top[c],
            memory,
            routes: routes[c].clone(),
            weights_blob: [wstart, weights_blob.len() as u64],
            routes_blob: [rstart, routes_blob.len() as u64],
        });
    }

    let artifact = art.to_bytes();
    let weight_total: u64 = slices.iter().map(|s| s.weight_bytes).sum();
    let summary = Summary {
        cores_total: ncores,
        cores_used: by_core.iter().filter(|v| !v.is_empty()).count(),
        layers: layers.len(),
        slices: slices.len(),
        weight_bytes: weight_total,
        weight_sram_fill: weight_total as f64 / (cap as f64 * ncores as f64),
        edges_sram: edges.iter().filter(|e| e.staging == "sram").count(),
        edges_dram: edges.iter().filter(|e| e.staging == "dram").count(),
        dram_staging_bytes: edges
            .iter()
            .filter(|e| e.staging == "dram")
            .map(|e| e.bytes)
            .sum(),
        min_slice_work_cycles: budget,
    };
    let input_node = g.input().expect("verified");
    let files = vec![
        file_entry("model.spk", &artifact),
        file_entry("weights.bin", &weights_blob),
        file_entry("routes.bin", &routes_blob),
    ];
    let manifest = Manifest {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        model: ModelInfo {
            model: art.meta.model.clone(),
            source: art.meta.source.clone(),
            precision: art.meta.precision.to_string(),
            time_steps: g.time_steps(),
            input_size: [h, w],
            input: TensorInfo {
                name: g.node(input_node).name.clone(),
                shape: infos[&input_node].shape.clone(),
            },
            outputs: g
                .outputs()
                .iter()
                .map(|o| TensorInfo {
                    name: g.node(*o).name.clone(),
                    shape: infos[o].shape.clone(),
                })
                .collect(),
            preset: opts.preset.clone(),
        },
        machine: machine.clone(),
        summary,
        layers,
        slices,
        edges,
        cores,
        files,
    };
    Ok(Deployment {
        manifest,
        weights: weights_blob,
        routes: routes_blob,
        artifact,
    })
}

fn file_entry(name: &str, bytes: &[u8]) -> FileEntry {
    FileEntry {
        name: name.into(),
        bytes: bytes.len() as u64,
        crc32: format!("{:08x}", crc32fast::hash(bytes)),
    }
}

/// Little-endian bytes of a parameter tensor, optionally only rows `[c0, c1)` of axis 0.
fn param_bytes(t: &spikerc_compiler::Tensor, rows: Option<[usize; 2]>) -> Vec<u8> {
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

/// `(rows, cols)` of the last two axes.
fn spatial(shape: &[usize]) -> (usize, usize) {
    let r = shape.len();
    if r >= 2 {
        (shape[r - 2], shape[r - 1])
    } else {
        (1, 1)
    }
}

/// Splits every layer over as many cores as its work justifies (layers run one after another,
/// so each should use the whole chip): `k` even channel ranges, range `j` on the `j`-th core
/// of the serpentine walk (so channel-wise neighbours stay on one core) or, when its weight
/// SRAM is full, the next core with room. `Ok(pieces)` of `(layer, core, c0, c1)`, or the
/// layer (and channel) that did not fit.
fn spread(
    drafts: &[LayerDraft],
    walk: &[usize],
    cap: u64,
    min_work: f64,
) -> Result<Vec<(usize, usize, usize, usize)>, (usize, usize)> {
    let n = walk.len();
    let mut used = vec![0u64; n];
    let mut pieces = Vec::new();
    let ks: Vec<usize> = drafts
        .iter()
        .map(|d| {
            let by_work = (d.work / min_work).floor().max(1.0) as usize;
            let mut k = d.channels.min(n).min(by_work).max(1);
            // More slices when even ones would not fit a core.
            while k < d.channels
                && d.weight_for(d.channels.div_ceil(k)).div_ceil(ALIGN) * ALIGN > cap
            {
                k += 1;
            }
            k
        })
        .collect();
    // Largest slices first (first-fit decreasing), so big unsplit tensors find room; ties
    // keep layer order.
    let mut by_need: Vec<usize> = (0..drafts.len()).collect();
    by_need.sort_by_key(|&li| {
        (
            std::cmp::Reverse(drafts[li].weight_for(drafts[li].channels.div_ceil(ks[li]))),
            li,
        )
    });
    for li in by_need {
        let d = &drafts[li];
        let k = ks[li];
        // Start where the k consecutive cores hold the least weight (ties: earliest), so
        // small layers do not all pile onto the first cores.
        let start = if k == n {
            0
        } else {
            let mut window: u64 = used[..k].iter().sum();
            let (mut best, mut best_sum) = (0, window);
            for s in 1..n {
                window = window + used[(s + k - 1) % n] - used[s - 1];
                if window < best_sum {
                    best = s;
                    best_sum = window;
                }
            }
            best
        };
        for j in 0..k {
            let (c0, c1) = (j * d.channels / k, (j + 1) * d.channels / k);
            if c0 == c1 {
                continue;
            }
            let need = d.weight_for_slice(c1 - c0, c0 == 0).div_ceil(ALIGN) * ALIGN;
            let slot = (0..n)
                .map(|o| (start + j + o) % n)
                .find(|&p| used[p] + need <= cap)
                .ok_or((li, c0))?;
            used[slot] += need;
            pieces.push((li, walk[slot], c0, c1));
        }
    }
    pieces.sort_by_key(|p| (p.0, p.2));
    Ok(pieces)
}

/// The largest output tile whose working set fits `cap`, halving the longer side; `Err(bytes
/// of the 1x1 tile)` when even that does not fit.
fn choose_tile(
    g: &spikerc_compiler::Verified,
    infos: &BTreeMap<NodeId, NodeInfo>,
    d: &LayerDraft,
    layer_of: &BTreeMap<NodeId, usize>,
    li: usize,
    k: usize,
    cap: u64,
) -> Result<([usize; 2], u64), u64> {
    let (oh, ow) = spatial(&d.out_shape);
    let frac = k as f64 / d.channels as f64;
    // External inputs of the layer.
    let mut ext: BTreeSet<NodeId> = BTreeSet::new();
    for id in &d.nodes {
        for i in g.inputs(*id) {
            if layer_of.get(&i) != Some(&li) {
                ext.insert(i);
            }
        }
    }
    let ws = |r: usize, c: usize| -> u64 {
        let mut bytes = 0u64;
        for i in &ext {
            let info = &infos[i];
            let (ih, iw) = spatial(&info.shape);
            let ch = channels_of(&info.shape) as f64 * if d.mixes_channels { 1.0 } else { frac };
            let sy = (ih as f64 / oh.max(1) as f64).max(0.5);
            let sx = (iw as f64 / ow.max(1) as f64).max(0.5);
            let rows = ((r as f64 * sy).ceil() as usize + d.halo).min(ih.max(1));
            let cols = ((c as f64 * sx).ceil() as usize + d.halo).min(iw.max(1));
            let elems = (ch.ceil() as u64) * (rows * cols) as u64;
            bytes += value_bytes(info.kind, elems);
        }
        let out_elems = (k * r * c) as u64;
        bytes += out_elems * 4;
        let lifs = d
            .nodes
            .iter()
            .filter(|n| matches!(g.node(**n).op, Op::Lif(_)))
            .count() as u64;
        bytes += lifs * out_elems * 4;
        bytes.div_ceil(ALIGN) * ALIGN
    };
    let (mut r, mut c) = (oh.max(1), ow.max(1));
    loop {
        let b = ws(r, c);
        if b <= cap {
            return Ok(([r, c], b));
        }
        if r == 1 && c == 1 {
            return Err(b);
        }
        if r >= c {
            r = r.div_ceil(2);
        } else {
            c = c.div_ceil(2);
        }
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
