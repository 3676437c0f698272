//! The mapping pipeline: assign -> schedule -> partition -> slice/place -> memory -> route ->
//! emit (see the module docs of [`super`]). Every stage works on typed indices (layer, stage,
//! slice, core) and the result is checked by [`super::validate`] before it is returned.

use std::collections::{BTreeMap, BTreeSet};

use spikerc_compiler::{Artifact, NodeId, Op, ValueKind};

use super::place::{self, Piece};
use super::*;
use crate::dataflow::{self, ConvGeometry, Dataflow};
use crate::machine::MAX_CHIPS;
use crate::schedule::{self, BufferKind, Schedule, StageMode};

/// Share of a chip's weight SRAM the partition may fill (the rest absorbs packing losses).
pub const PARTITION_FILL: f64 = 0.97;

/// Maps an artifact onto a machine with the default schedule (`auto`).
pub fn compile(art: &Artifact, machine: &Machine, opts: &Options) -> Result<Deployment, MapError> {
    compile_with(art, machine, opts, Schedule::Auto)
}

/// Maps an artifact with a given schedule. A model that does not fit names the smallest
/// chip count that does.
pub fn compile_with(
    art: &Artifact,
    machine: &Machine,
    opts: &Options,
    schedule: Schedule,
) -> Result<Deployment, MapError> {
    machine
        .validate(&opts.preset)
        .map_err(|e| MapError::Machine(e.to_string()))?;
    match map(art, machine, opts, schedule) {
        Err(MapError::OutOfCores {
            need,
            cores,
            per_core,
            have,
            short,
            layer,
            machine: name,
            ..
        }) => {
            let chips = machine.card.chips;
            let advice = (chips + 1..=MAX_CHIPS.min(chips + 16))
                .find(|&n| map(art, &machine.with_chips(n), opts, schedule).is_ok())
                .map(|n| format!("; the smallest card that fits has {n} chips: --chips {n}"))
                .unwrap_or_default();
            Err(MapError::OutOfCores {
                need,
                cores,
                per_core,
                have,
                short,
                layer,
                machine: name,
                advice,
            })
        }
        r => r,
    }
}

/// Whether a layer needs all T of its input, and its passes over it ([`super::passes`]).
/// `streaming`: not layer-serial; `band_fits`: an apply band of all T x C fits state SRAM.
fn passes_of(
    g: &spikerc_compiler::Verified,
    nodes: &[NodeId],
    layer_of: &BTreeMap<NodeId, usize>,
    li: usize,
    streaming: bool,
    band_fits: bool,
) -> (bool, super::passes::Passes) {
    use super::passes::Reduction;
    let mut reductions = Vec::new();
    let mut other = false;
    for &id in nodes {
        let input = g.inputs(id).first().copied();
        let rank = input.map_or(0, |i| g.node(i).fact.shape.rank());
        let on_input = input.is_some_and(|i| layer_of.get(&i) != Some(&li));
        match &g.node(id).op {
            Op::Reduce { axes, .. } => reductions.push(Reduction { axes: axes.clone(), rank, on_input }),
            Op::MeanTime => reductions.push(Reduction { axes: vec![0], rank, on_input }),
            _ => other = true,
        }
    }
    let all_t = !reductions.is_empty();
    let p = super::passes::plan(&reductions, other, streaming, band_fits);
    (all_t, if all_t { p } else { super::passes::Passes { count: 1, on_write: 0, in_band: 0, separate: 0 } })
}

fn out_of_cores(
    drafts: &[LayerDraft],
    machine: &Machine,
    failed: usize,
    c0: usize,
    layers_left: &[usize],
) -> MapError {
    let cap = machine.core.weight_sram_bytes;
    let need: u64 = drafts.iter().map(|d| d.weight_for(d.channels)).sum();
    let have = cap * machine.cores() as u64;
    let left: u64 = drafts[failed].weight_for(drafts[failed].channels - c0)
        + layers_left
            .iter()
            .filter(|&&l| l > failed)
            .map(|&l| drafts[l].weight_for(drafts[l].channels))
            .sum::<u64>();
    MapError::OutOfCores {
        need: kib(need),
        cores: machine.cores(),
        per_core: kib(cap),
        have: kib(have),
        short: kib(left.min(need)),
        layer: drafts[failed].name.clone(),
        machine: machine.name.clone(),
        advice: String::new(),
    }
}

/// Assign: layers in order of first appearance (see [`crate::layers`]).
fn assign(
    g: &spikerc_compiler::Verified,
    infos: &BTreeMap<NodeId, NodeInfo>,
    order: &[NodeId],
    machine: &Machine,
    streaming: bool,
) -> (Vec<LayerDraft>, BTreeMap<NodeId, usize>) {
    let mut drafts: Vec<LayerDraft> = Vec::new();
    let mut layer_of: BTreeMap<NodeId, usize> = BTreeMap::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut uses: BTreeMap<String, usize> = BTreeMap::new();
    for &id in order {
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
            .filter(|&l| latest_input.is_none_or(|m| m <= l));
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
                needs_all_t: false,
                passes: 1,
                pass_plan: super::passes::Passes { count: 1, on_write: 0, in_band: 0, separate: 0 },
            });
            drafts.len() - 1
        });
        drafts[li].nodes.push(id);
        layer_of.insert(id, li);
    }
    // An apply band of a full-T layer holds `line_rows(halo)` rows of all T x C of its
    // inputs; it must fit the chip's state SRAM beside the working tiles.
    let band_room = machine.core.state_sram_bytes * machine.cores_per_chip() as u64
        / TILE_SRAM_DIVISOR
        * (TILE_SRAM_DIVISOR - 1);
    for (li, d) in drafts.iter_mut().enumerate() {
        let mut seen_params: BTreeSet<(String, &'static str)> = BTreeSet::new();
        let last = &infos[d.nodes.last().expect("non-empty")];
        d.out_shape = last.shape.clone();
        d.channels = channels_of(&last.shape).max(1);
        for id in &d.nodes {
            if let Op::Conv2d(c) = &g.node(*id).op {
                d.halo = d.halo.max(c.kernel()[0].saturating_sub(1));
            }
        }
        let ext: BTreeSet<NodeId> = d
            .nodes
            .iter()
            .flat_map(|id| g.inputs(*id))
            .filter(|i| layer_of.get(i) != Some(&li))
            .collect();
        let band: u64 = ext
            .iter()
            .map(|i| {
                let info = &infos[i];
                let rows = spatial(&info.shape).0.max(1);
                let lines = schedule::line_rows(d.halo).min(rows) as u64;
                value_bytes(info.kind, info.out_elems() / rows as u64 * lines)
            })
            .sum();
        let (all_t, passes) = passes_of(g, &d.nodes, &layer_of, li, streaming, band <= band_room);
        d.needs_all_t = all_t;
        d.passes = passes.count;
        d.pass_plan = passes;
        if streaming {
            // A streaming slice also sends its output rows over the mesh, one packet per
            // cycle from its router: a layer whose output outweighs its arithmetic (a
            // residual add, a concat) is sliced for that too.
            let out = &infos[d.nodes.last().expect("non-empty")];
            let t_steps = g.time_steps();
            d.work += step_wire_bytes(machine, out, t_steps) * out.steps.max(1) as f64
                / machine.noc.packet_payload_bytes.max(1) as f64;
        }
        for id in &d.nodes {
            let i = &infos[id];
            d.work += node_work(machine, i);
            let node = g.node(*id);
            let co = channels_of(&i.shape);
            match &node.op {
                Op::Conv2d(_) => d.mixes_channels = true,
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
    (drafts, layer_of)
}

/// Share of producer slice `p`'s output that consumer slice `q` reads: the rows of `q`'s
/// band widened by its kernel's halo, and (unless `q` mixes channels) its channels.
fn read_fraction(p: &Piece, q: &Piece, dp: &LayerDraft, dq: &LayerDraft) -> f64 {
    let (pr, qr) = (dp.rows().max(1) as f64, dq.rows().max(1) as f64);
    let scale = pr / qr;
    let half = dq.halo.div_ceil(2) as f64 * scale.max(1.0);
    let lo = (q.r[0] as f64 * scale - half).max(0.0);
    let hi = (q.r[1] as f64 * scale + half).min(pr);
    let rows = (hi.min(p.r[1] as f64) - lo.max(p.r[0] as f64)).max(0.0) / (p.r[1] - p.r[0]) as f64;
    let chans = if dq.mixes_channels || dp.channels != dq.channels {
        1.0
    } else {
        let ov = p.c[1].min(q.c[1]).saturating_sub(p.c[0].max(q.c[0]));
        ov as f64 / (p.c[1] - p.c[0]) as f64
    };
    rows * chans
}

/// A tensor between layers, before staging.
struct EdgeDraft {
    node: NodeId,
    from: Option<usize>,
    to: Option<usize>,
}

/// Bytes of one step of a value on the wire at the placement firing rate (spikes as the
/// cheaper of a bitmap and address events).
fn step_wire_bytes(m: &Machine, info: &NodeInfo, t_steps: usize) -> f64 {
    let elems = info.out_elems() / if info.steps == t_steps { t_steps as u64 } else { 1 };
    match info.kind {
        ValueKind::Spikes => (elems.div_ceil(8) as f64)
            .min(elems as f64 * PLACEMENT_FIRING_RATE * m.noc.spike_event_bytes as f64),
        k => value_bytes(k, elems) as f64,
    }
}

#[allow(clippy::too_many_lines)]
fn map(
    art: &Artifact,
    machine: &Machine,
    opts: &Options,
    sched: Schedule,
) -> Result<Deployment, MapError> {
    let g = &art.graph;
    let [h, w] = opts.input_size;
    let divisor = g.spatial_divisor();
    if h == 0 || w == 0 || h > validate::MAX_INPUT_SIDE || w > validate::MAX_INPUT_SIDE {
        return Err(MapError::InputSize { h, w, divisor });
    }
    // Any image size: the deployment runs it reflect-padded to the model's multiple.
    let (h, w) = (h.next_multiple_of(divisor), w.next_multiple_of(divisor));
    let opts = &Options {
        input_size: [h, w],
        preset: opts.preset.clone(),
    };
    let chips = machine.card.chips;
    if chips == 0 || chips > MAX_CHIPS {
        return Err(MapError::Chips {
            chips,
            max: MAX_CHIPS,
        });
    }
    let t_steps = g.time_steps();
    let infos = node_infos(g, 1, h, w);
    let order = g.topo_order().expect("verified");
    let (drafts, layer_of) = assign(g, &infos, &order, machine, sched != Schedule::LayerSerial);
    let nl = drafts.len();
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

    // Edges between layers (and to/from the host).
    let mut edge_drafts: Vec<EdgeDraft> = Vec::new();
    let mut seen: BTreeSet<(NodeId, Option<usize>)> = BTreeSet::new();
    for &id in &order {
        let node = g.node(id);
        let to = layer_of.get(&id).copied();
        for src in g.inputs(id) {
            let from = layer_of.get(&src).copied();
            if to.is_some() && from == to {
                continue;
            }
            if to.is_none() && !matches!(node.op, Op::Output) {
                continue; // host-internal (repeat of the input)
            }
            // The image reaches layers through the host's repeat: record the image itself.
            let src_node = if from.is_none() {
                g.input().expect("verified")
            } else {
                src
            };
            if seen.insert((src_node, to)) {
                edge_drafts.push(EdgeDraft {
                    node: src_node,
                    from,
                    to,
                });
            }
        }
    }

    // 2. schedule: stages.
    let needs: Vec<bool> = drafts.iter().map(|d| d.needs_all_t).collect();
    let (cut_stage_of, cut_full) = schedule::stages(&needs);
    let (stage_of, full_t): (Vec<usize>, Vec<bool>) = if sched == Schedule::LayerSerial {
        ((0..nl).collect(), vec![false; nl])
    } else {
        (cut_stage_of.clone(), cut_full.clone())
    };
    let nstages = full_t.len();

    // 3. partition: contiguous stage ranges per chip.
    let boundaries: Vec<usize> = (1..nl)
        .filter(|&l| cut_stage_of[l] != cut_stage_of[l - 1])
        .collect();
    let mut cut_bytes = vec![0f64; nl + 1];
    for e in &edge_drafts {
        if let (Some(f), Some(t)) = (e.from, e.to) {
            let b = step_wire_bytes(machine, &infos[&e.node], t_steps);
            for c in &mut cut_bytes[f + 1..=t] {
                *c += b;
            }
        }
    }
    let weights: Vec<u64> = drafts.iter().map(|d| d.weight_for(d.channels)).collect();
    let works: Vec<f64> = drafts.iter().map(|d| d.work).collect();
    let cpc = machine.cores_per_chip();
    let chip_cap = (cap as f64 * cpc as f64 * PARTITION_FILL) as u64;
    let chip_of_layer = if chips == 1 {
        vec![0; nl]
    } else {
        place::partition(&weights, &works, &boundaries, &cut_bytes, chips, chip_cap).ok_or_else(
            || {
                // The first layer where the cumulative weight passes what the card holds.
                let mut acc = 0u64;
                let failed = (0..nl)
                    .find(|&l| {
                        acc += weights[l];
                        acc > chip_cap * chips as u64
                    })
                    .unwrap_or(nl - 1);
                out_of_cores(&drafts, machine, failed, 0, &(0..nl).collect::<Vec<_>>())
            },
        )?
    };

    // 4. slice and place, chip by chip.
    let min_work =
        (MIN_SLICE_STEP_FACTOR * machine.noc.barrier_cycles.max(1) as f64) * t_steps as f64;
    let mut pieces: Vec<Piece> = Vec::new();
    let mut hop_cost = (0f64, 0f64, 0f64); // spikes: (serpentine, placed, bytes)
    let mut all_cost = (0f64, 0f64, 0f64); // all traffic, the placement's objective: the same
    for chip in 0..chips {
        let layers: Vec<usize> = (0..nl).filter(|&l| chip_of_layer[l] == chip).collect();
        if layers.is_empty() {
            continue;
        }
        let base = chip * cpc;
        let walk: Vec<usize> = machine.serpentine();
        let chip_pieces = if sched == Schedule::LayerSerial {
            spread(&drafts, &layers, &walk, cap, min_work)
                .map_err(|(l, c0)| out_of_cores(&drafts, machine, l, c0, &layers))?
        } else {
            let slots: Vec<usize> = (0..cpc).collect();
            let mut ps = place::balanced(&drafts, &layers, &stage_of, &slots, cap)
                .map_err(|(l, c0)| out_of_cores(&drafts, machine, l, c0, &layers))?;
            // The search starts from the serpentine layout the report compares with (slots
            // along the walk in first-use order of the slices) and permutes slots over
            // positions, so the placed byte-hops never exceed the serpentine ones.
            let flows = piece_flows(machine, &drafts, &edge_drafts, &infos, &ps, t_steps);
            let bin_flows: Vec<(usize, usize, f64)> =
                flows.iter().map(|f| (ps[f.0].core, ps[f.1].core, f.2)).collect();
            let dist = |a: usize, b: usize| {
                let (pa, pb) = (machine.position(a), machine.position(b));
                (pa.0.abs_diff(pb.0) + pa.1.abs_diff(pb.1)) as f64
            };
            let start = serpentine_start(cpc, &walk, &ps);
            let (pos, _, _) = place::improve(cpc, &start, &bin_flows, dist);
            for p in &mut ps {
                p.core = pos[p.core];
            }
            ps
        };
        // Hops per spike of this chip's spike traffic: placed, and along the walk.
        let flows = piece_flows(machine, &drafts, &edge_drafts, &infos, &chip_pieces, t_steps);
        for (a, b, bytes, spikes) in flows.iter().map(|f| (f.0, f.1, f.2, f.3)) {
            let (ca, cb) = (chip_pieces[a].core, chip_pieces[b].core);
            let d = |x: usize, y: usize| {
                let (px, py) = (machine.position(x), machine.position(y));
                (px.0.abs_diff(py.0) + px.1.abs_diff(py.1)) as f64
            };
            all_cost.1 += bytes * d(ca, cb);
            all_cost.2 += bytes;
            if spikes {
                hop_cost.1 += bytes * d(ca, cb);
                hop_cost.2 += bytes;
            }
        }
        if sched == Schedule::LayerSerial {
            // Its placement is the serpentine walk itself (slices first-fit along it).
            hop_cost.0 = hop_cost.1;
            all_cost.0 = all_cost.1;
        } else {
            hop_cost.0 += serpentine_cost(machine, &walk, &chip_pieces, &flows, true);
            all_cost.0 += serpentine_cost(machine, &walk, &chip_pieces, &flows, false);
        }
        pieces.extend(chip_pieces.into_iter().map(|mut p| {
            p.core += base;
            p
        }));
    }
    pieces.sort_by_key(|p| (p.layer, p.c[0], p.r[0]));

    // 5. memory: a working tile per slice.
    let state_cap = machine.core.state_sram_bytes;
    let mut slices: Vec<Slice> = Vec::new();
    for p in &pieces {
        let d = &drafts[p.layer];
        let k = p.c[1] - p.c[0];
        let rows = p.r[1] - p.r[0];
        // Tiles use at most a quarter of state SRAM when they can, leaving the rest for
        // inter-layer buffers; the whole of it when they must.
        let (tile, ws) = choose_tile(g, &infos, d, &layer_of, p.layer, k, rows, state_cap / TILE_SRAM_DIVISOR)
            .or_else(|_| choose_tile(g, &infos, d, &layer_of, p.layer, k, rows, state_cap))
            .map_err(|need| MapError::TileTooBig {
                layer: d.name.clone(),
                need: kib(need),
                have: kib(state_cap),
                short: kib(need.saturating_sub(state_cap)),
                machine: machine.name.clone(),
            })?;
        let (_, ow) = spatial(&d.out_shape);
        slices.push(Slice {
            id: slices.len(),
            layer: p.layer,
            core: p.core,
            channels: p.c,
            rows: p.r,
            weight_bytes: d.weight_for_slice(k, p.c[0] == 0),
            tile,
            tiles: rows.max(1).div_ceil(tile[0]) * ow.max(1).div_ceil(tile[1]),
            working_bytes: ws,
        });
    }

    // Stage modes: what was asked, or (auto) pipelined where one-step buffers fit.
    let ncores = machine.cores();
    let mut modes: Vec<(StageMode, String)> = Vec::with_capacity(nstages);
    let mut step_need = vec![0f64; nstages];
    let mut line_need = vec![0f64; nstages];
    for e in &edge_drafts {
        if let (Some(f), Some(t)) = (e.from, e.to) {
            let info = &infos[&e.node];
            let step = step_wire_bytes(machine, info, t_steps).max(0.0);
            let step = if info.kind == ValueKind::Spikes { step } else { value_bytes(info.kind, info.out_elems() / info.steps.max(1) as u64) as f64 };
            if schedule::edge_buffer(&stage_of, &full_t, f, t, false) == BufferKind::Step {
                step_need[stage_of[t]] += step;
                line_need[stage_of[t]] += step * line_fraction(&drafts[t], info);
            }
        }
    }
    for s in 0..nstages {
        let free = state_cap as f64 * cpc as f64 / TILE_SRAM_DIVISOR as f64 * (TILE_SRAM_DIVISOR - 1) as f64;
        let m = match (sched, full_t[s]) {
            (Schedule::LayerSerial, _) => (StageMode::LayerSerial, "asked: layer-serial".to_string()),
            (_, true) => (
                StageMode::FullT,
                format!(
                    "needs all T of its input (reductions over time or the whole image): {}",
                    (0..nl)
                        .filter(|&l| stage_of[l] == s)
                        .map(|l| drafts[l].pass_plan.describe())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            (Schedule::Pipelined, _) => (StageMode::Pipelined, "asked: pipelined".to_string()),
            (Schedule::Fused, _) => (StageMode::Fused, "asked: fused".to_string()),
            (Schedule::Auto, _) => {
                if step_need[s] <= free {
                    (
                        StageMode::Pipelined,
                        format!(
                            "one-step buffers {} fit the chip's free state SRAM {}: no band handshakes",
                            kib(step_need[s] as u64),
                            kib(free as u64)
                        ),
                    )
                } else {
                    (
                        StageMode::Fused,
                        format!(
                            "one-step buffers {} exceed the chip's free state SRAM {}: row bands with line buffers {}",
                            kib(step_need[s] as u64),
                            kib(free as u64),
                            kib(line_need[s] as u64)
                        ),
                    )
                }
            }
        };
        modes.push(m);
    }

    // Edges with their buffers.
    let mut edges: Vec<Edge> = Vec::new();
    let mut node_buffer: BTreeMap<NodeId, (BufferKind, usize, usize)> = BTreeMap::new(); // kind, producer, last consumer
    let mut stream_need: BTreeMap<NodeId, (BufferKind, usize)> = BTreeMap::new(); // kind, last streaming consumer
    for e in &edge_drafts {
        if let (Some(f), Some(t)) = (e.from, e.to) {
            let fused = modes[stage_of[t]].0 == StageMode::Fused;
            let kind = if sched == Schedule::LayerSerial {
                BufferKind::FullT
            } else {
                schedule::edge_buffer(&stage_of, &full_t, f, t, fused)
            };
            let b = node_buffer.entry(e.node).or_insert((kind, f, t));
            b.0 = b.0.max(kind);
            b.2 = b.2.max(t);
            if kind < BufferKind::FullT {
                let st = stream_need.entry(e.node).or_insert((kind, t));
                st.0 = st.0.max(kind);
                st.1 = st.1.max(t);
            }
        }
    }
    // A tensor buffered whole for a later consumer also streams to the consumers of its
    // own stage (a block's input: its residual and shortcut now, its second add after the
    // attention): they read the producer's rows over the mesh as they are made, from a
    // line / one-step buffer of their own in the producer's SRAM, instead of the DRAM copy.
    stream_need.retain(|n, _| node_buffer[n].0 == BufferKind::FullT);
    let buffer_bytes = |node: NodeId, kind: BufferKind| -> u64 {
        let info = &infos[&node];
        let whole = value_bytes(info.kind, info.out_elems());
        let step = whole.div_ceil(info.steps.max(1) as u64);
        match kind {
            BufferKind::Host | BufferKind::FullT => whole,
            BufferKind::Step => step,
            BufferKind::Line => {
                let halo = edge_drafts
                    .iter()
                    .filter(|x| x.node == node)
                    .filter_map(|x| x.to)
                    .map(|t| drafts[t].halo)
                    .max()
                    .unwrap_or(0);
                let rows = spatial(&info.shape).0.max(1);
                (step as f64 * (schedule::line_rows(halo) as f64 / rows as f64).min(1.0)).ceil() as u64
            }
        }
    };

    // Inter-layer buffers live in their producer slices' state SRAM (each slice keeps its
    // share) from production to the last consumer (layer order for layer-serial, stage order
    // for the streaming schedules); regions whose lifetimes do not overlap share addresses.
    // A share that does not fit is staged in DRAM.
    let mut working = vec![0u64; ncores];
    for s in &slices {
        working[s.core] = working[s.core].max(s.working_bytes.div_ceil(ALIGN) * ALIGN);
    }
    let time_of = |l: usize| -> usize {
        if sched == Schedule::LayerSerial {
            l
        } else {
            stage_of[l]
        }
    };
    let mut layer_slices: Vec<Vec<usize>> = vec![vec![]; nl];
    for s in &slices {
        layer_slices[s.layer].push(s.id);
    }
    let mut live: Vec<Vec<(u64, u64, usize, usize)>> = vec![vec![]; ncores];
    let mut state_regions: Vec<Vec<Region>> = vec![vec![]; ncores];
    let mut placed_bytes: BTreeMap<NodeId, (u64, u64, u64)> = BTreeMap::new(); // buffer, sram, dram
    // The stream copies of whole-buffered tensors, all or nothing per tensor (on the
    // producer slices' cores; a copy that does not fit leaves its consumers on DRAM).
    let mut streamed: BTreeSet<NodeId> = BTreeSet::new();
    for (&node, &(kind, last)) in &stream_need {
        let from = node_buffer[&node].1;
        let bytes = buffer_bytes(node, kind);
        let (t0, t1) = (time_of(from), time_of(last));
        let d = &drafts[from];
        let mut placed: Vec<(usize, u64, u64)> = Vec::new();
        let (mut ok, mut spill) = (true, 0u64);
        for &ps in &layer_slices[from] {
            let sl = &slices[ps];
            let share = ((bytes as f64)
                * ((sl.channels[1] - sl.channels[0]) as f64 / d.channels as f64)
                * ((sl.rows[1] - sl.rows[0]) as f64 / d.rows().max(1) as f64))
                .ceil() as u64;
            match try_place(&mut live, &working, state_cap, sl.core, share, t0, t1) {
                Some(off) => placed.push((sl.core, off, share)),
                None => spill += share,
            }
        }
        // What the producer cores cannot hold goes to the chip's cores with most room.
        if spill > 0 {
            let chip = chip_of_layer[from];
            spill = spill_to_roomiest(&mut live, &working, state_cap, chip * cpc..(chip + 1) * cpc, spill, t0, t1, &mut placed);
            ok = spill == 0;
        }
        if !ok {
            for &(c, off, _) in &placed {
                let k = live[c].iter().rposition(|r| r.0 == off && r.2 == t0 && r.3 == t1).expect("just placed");
                live[c].remove(k);
            }
            continue;
        }
        streamed.insert(node);
        for (c, off, share) in placed {
            state_regions[c].push(Region {
                sram: "state".into(),
                offset: off,
                bytes: share.div_ceil(ALIGN) * ALIGN,
                what: format!(
                    "stream {} +{share}, {} to its own stage's consumers, live stages {t0}..={t1}",
                    g.node(node).name,
                    if kind == BufferKind::Line { "line buffer" } else { "one step" }
                ),
            });
        }
    }
    // Streaming buffers (line, one step) first: they are small and, staged, would cost
    // DRAM traffic at every step; then whole tensors in production order.
    let mut candidates: Vec<(bool, usize, NodeId)> = node_buffer
        .iter()
        .map(|(&n, b)| (b.0 == BufferKind::FullT, b.1, n))
        .collect();
    candidates.sort();
    for (_, _, node) in candidates {
        let (kind, from, last) = node_buffer[&node];
        let bytes = buffer_bytes(node, kind);
        let (t0, t1) = (time_of(from), time_of(last));
        let mut sram = 0u64;
        let chip = chip_of_layer[from];
        // Producer slices keep their shares; what does not fit there spills to the other
        // cores of the chip with room (most room first), then to DRAM.
        let mut homes: Vec<(usize, u64, String)> = Vec::new();
        let mut spill = 0u64;
        for &ps in &layer_slices[from] {
            let sl = &slices[ps];
            let d = &drafts[from];
            let share = ((bytes as f64)
                * ((sl.channels[1] - sl.channels[0]) as f64 / d.channels as f64)
                * ((sl.rows[1] - sl.rows[0]) as f64 / d.rows().max(1) as f64))
                .ceil() as u64;
            let label = format!(
                "[{}, {}) rows [{}, {})",
                sl.channels[0], sl.channels[1], sl.rows[0], sl.rows[1]
            );
            match try_place(&mut live, &working, state_cap, sl.core, share, t0, t1) {
                Some(off) => homes.push((sl.core, off, format!("{label} +{share}"))),
                None => spill += share,
            }
        }
        if spill > 0 {
            let mut spilled = Vec::new();
            spill = spill_to_roomiest(&mut live, &working, state_cap, chip * cpc..(chip + 1) * cpc, spill, t0, t1, &mut spilled);
            homes.extend(spilled.into_iter().map(|(c, off, take)| (c, off, format!("spilled +{take}"))));
        }
        for (c, off, label) in homes {
            let need = live[c].iter().find(|r| r.0 == off && r.2 == t0 && r.3 == t1).map(|r| r.1).unwrap_or(0);
            state_regions[c].push(Region {
                sram: "state".into(),
                offset: off,
                bytes: need,
                what: format!(
                    "output {} {label}, {}, live {} {}..={}",
                    g.node(node).name,
                    match kind {
                        BufferKind::FullT => "all steps",
                        BufferKind::Step => "one step",
                        BufferKind::Line => "line buffer",
                        BufferKind::Host => "host",
                    },
                    if sched == Schedule::LayerSerial { "layers" } else { "stages" },
                    t0,
                    t1
                ),
            });
        }
        sram += bytes.saturating_sub(spill).min(bytes);
        let sram = sram.min(bytes);
        placed_bytes.insert(node, (bytes, sram, bytes - sram));
    }
    for e in &edge_drafts {
        let info = &infos[&e.node];
        let kind_str = g.node(e.node).fact.kind;
        let (buffer, buffer_b, sram_b, dram_b) = match (e.from, e.to) {
            (Some(_), Some(_)) => {
                let (b, s, d) = placed_bytes[&e.node];
                (node_buffer[&e.node].0, b, s, d)
            }
            _ => (BufferKind::Host, value_bytes(info.kind, info.out_elems()), 0, 0),
        };
        let staging = match (e.from, e.to) {
            (Some(_), Some(_)) if dram_b == 0 => "sram",
            (Some(_), Some(_)) if sram_b == 0 => "dram",
            (Some(_), Some(_)) => "split",
            _ => "host",
        };
        edges.push(Edge {
            id: edges.len(),
            node: e.node.index(),
            from_layer: e.from,
            to_layer: e.to,
            kind: kind_str.to_string(),
            shape: info.shape.clone(),
            bytes: value_bytes(info.kind, info.out_elems()),
            staging: staging.into(),
            buffer,
            buffer_bytes: buffer_b,
            sram_bytes: sram_b,
            dram_bytes: dram_b,
            crosses_chips: matches!((e.from, e.to), (Some(f), Some(t)) if chip_of_layer[f] != chip_of_layer[t]),
            streamed: streamed.contains(&e.node)
                && matches!((e.from, e.to), (Some(f), Some(t))
                    if schedule::edge_buffer(&stage_of, &full_t, f, t, false) != BufferKind::FullT),
        });
    }
    let dram_need: u64 = placed_bytes.values().map(|p| p.2).sum();
    if dram_need > machine.dram.bytes {
        return Err(MapError::OutOfDram {
            need: kib(dram_need),
            have: kib(machine.dram.bytes),
            short: kib(dram_need - machine.dram.bytes),
            machine: machine.name.clone(),
        });
    }

    // 6. routes: every producer slice multicasts to the consumer slices reading its rows.
    let piece_of: Vec<Piece> = slices
        .iter()
        .map(|s| Piece {
            layer: s.layer,
            core: s.core,
            c: s.channels,
            r: s.rows,
        })
        .collect();
    let mut routes: Vec<Vec<Route>> = vec![vec![]; ncores];
    for e in &edges {
        let (Some(from), Some(to)) = (e.from_layer, e.to_layer) else {
            continue;
        };
        if e.sram_bytes == 0 && !e.streamed {
            continue;
        }
        for &ps in &layer_slices[from] {
            let src = slices[ps].core;
            let mut groups: BTreeMap<u64, BTreeSet<usize>> = BTreeMap::new();
            for &qs in &layer_slices[to] {
                let f = read_fraction(&piece_of[ps], &piece_of[qs], &drafts[from], &drafts[to]);
                if f > 0.0 {
                    groups.entry(f.to_bits()).or_default().insert(slices[qs].core);
                }
            }
            // One multicast per distinct share; a core reached by several keeps the largest.
            let mut best: BTreeMap<usize, u64> = BTreeMap::new();
            for (&f, cores) in &groups {
                for &c in cores {
                    let b = best.entry(c).or_insert(f);
                    if f64::from_bits(f) > f64::from_bits(*b) {
                        *b = f;
                    }
                }
            }
            let mut by_share: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
            for (c, f) in best {
                if c != src {
                    by_share.entry(f).or_default().push(c);
                }
            }
            for (f, dests) in by_share {
                let local: Vec<usize> = dests
                    .iter()
                    .copied()
                    .filter(|&d| machine.chip_of(d) == machine.chip_of(src))
                    .collect();
                let remote: BTreeSet<usize> = dests
                    .iter()
                    .map(|&d| machine.chip_of(d))
                    .filter(|&c| c != machine.chip_of(src))
                    .collect();
                let (links, depth) = multicast_tree(machine, src, &local);
                routes[src].push(Route {
                    edge: e.id,
                    slice: ps,
                    dests,
                    links,
                    depth,
                    fraction: f64::from_bits(f),
                    chip_links: remote.len(),
                });
            }
        }
    }

    // Dataflow per convolution layer (the layer's widest slice decides).
    let mut dataflows: Vec<Option<Dataflow>> = vec![None; nl];
    for (li, d) in drafts.iter().enumerate() {
        let convs: Vec<&spikerc_compiler::ir::Conv2d> = d
            .nodes
            .iter()
            .filter_map(|n| match &g.node(*n).op {
                Op::Conv2d(c) => Some(c),
                _ => None,
            })
            .collect();
        let [conv] = convs.as_slice() else {
            continue;
        };
        let Some(widest) = layer_slices[li]
            .iter()
            .max_by_key(|&&s| (slices[s].channels[1] - slices[s].channels[0], slices[s].rows[1] - slices[s].rows[0], s))
        else {
            continue;
        };
        let s = &slices[*widest];
        let [kh, kw] = conv.kernel();
        let geo = ConvGeometry {
            ci: conv.in_channels(),
            co: s.channels[1] - s.channels[0],
            kh,
            kw,
            stride: conv.stride[0].max(1),
            rows: s.rows[1] - s.rows[0],
            cols: spatial(&d.out_shape).1,
            weight_bytes: conv.weight.dtype().size_of() as f64,
            input_bytes: if conv.event_driven { 0.125 } else { 4.0 },
        };
        let dense = (geo.rows * geo.cols * geo.co * geo.ci * kh * kw) as f64;
        let (ops, today) = if conv.event_driven {
            (dense * PLACEMENT_FIRING_RATE, Dataflow::WeightSram)
        } else {
            (dense, Dataflow::WeightTiles { tiles: s.tiles })
        };
        dataflows[li] = Some(if sched == Schedule::LayerSerial {
            today
        } else {
            dataflow::choose(&geo, ops, machine, today)
        });
    }

    let layers: Vec<Layer> = drafts
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
                slices: layer_slices[i].clone(),
                stage: stage_of[i],
                chip: chip_of_layer[i],
                halo: d.halo,
                passes: d.passes,
                dataflow: dataflows[i],
                full_t: d.needs_all_t,
            }
        })
        .collect();
    let stages: Vec<Stage> = (0..nstages)
        .map(|s| {
            let ls: Vec<usize> = (0..nl).filter(|&l| stage_of[l] == s).collect();
            Stage {
                id: s,
                chip: ls.first().map(|&l| chip_of_layer[l]).unwrap_or(0),
                layers: ls,
                mode: modes[s].0,
                reason: modes[s].1.clone(),
            }
        })
        .collect();
    let per = |c: (f64, f64, f64)| {
        if c.2 > 0.0 {
            [c.1 / c.2, c.0 / c.2]
        } else {
            [0.0; 2]
        }
    };
    let hops = [per(hop_cost), per(all_cost)];
    let dep = super::emit::assemble(
        art,
        machine,
        opts,
        sched,
        &infos,
        &drafts,
        layers,
        stages,
        slices,
        edges,
        routes,
        state_regions,
        working,
        live,
        min_work,
        hops,
    );
    validate(&dep.manifest, Some(&dep)).map_err(MapError::Invalid)?;
    Ok(dep)
}

/// The end of the live regions of core `c` overlapping `[t0, t1]` (at least its working set).
fn top_of(live: &[(u64, u64, usize, usize)], working: &[u64], c: usize, t0: usize, t1: usize) -> u64 {
    live.iter()
        .filter(|r| r.2 <= t1 && t0 <= r.3)
        .map(|r| r.0 + r.1)
        .max()
        .unwrap_or(0)
        .max(working[c])
}

/// Places `spill` bytes of a buffer live during `[t0, t1]` on the cores of `cores` with the
/// most free state SRAM first (ties: lowest id), in aligned pieces, pushing `(core, offset,
/// bytes)` to `placed`; returns the bytes that found no room.
#[allow(clippy::too_many_arguments)]
fn spill_to_roomiest(
    live: &mut [Vec<(u64, u64, usize, usize)>],
    working: &[u64],
    cap: u64,
    cores: std::ops::Range<usize>,
    mut spill: u64,
    t0: usize,
    t1: usize,
    placed: &mut Vec<(usize, u64, u64)>,
) -> u64 {
    let mut by_room: Vec<(u64, usize)> = cores
        .map(|c| (cap.saturating_sub(top_of(&live[c], working, c, t0, t1)), c))
        .collect();
    by_room.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (room, c) in by_room {
        if spill == 0 || room < ALIGN {
            break;
        }
        let take = spill.min(room / ALIGN * ALIGN);
        if let Some(off) = try_place(live, working, cap, c, take, t0, t1) {
            placed.push((c, off, take));
            spill -= take;
        }
    }
    spill
}

/// First-fit of `bytes` (aligned) in core `c`'s state SRAM above its working set, among the
/// regions live during `[t0, t1]`; records the region and returns its offset.
fn try_place(
    live: &mut [Vec<(u64, u64, usize, usize)>],
    working: &[u64],
    cap: u64,
    c: usize,
    bytes: u64,
    t0: usize,
    t1: usize,
) -> Option<u64> {
    let need = bytes.div_ceil(ALIGN) * ALIGN;
    if need == 0 {
        return None;
    }
    let mut taken: Vec<(u64, u64)> = live[c]
        .iter()
        .filter(|r| r.2 <= t1 && t0 <= r.3)
        .map(|r| (r.0, r.0 + r.1))
        .collect();
    taken.sort();
    let mut off = working[c];
    for (a, b) in taken {
        if off + need <= a {
            break;
        }
        off = off.max(b);
    }
    if off + need > cap {
        return None;
    }
    live[c].push((off, need, t0, t1));
    Some(off)
}

/// Share of a step tensor a consumer's line buffer holds.
fn line_fraction(consumer: &LayerDraft, info: &NodeInfo) -> f64 {
    let rows = spatial(&info.shape).0.max(1);
    (schedule::line_rows(consumer.halo) as f64 / rows as f64).min(1.0)
}

/// `(producer piece, consumer piece, bytes per step, spikes?)` between the pieces of one
/// chip at the placement firing rate.
fn piece_flows(
    m: &Machine,
    drafts: &[LayerDraft],
    edges: &[EdgeDraft],
    infos: &BTreeMap<NodeId, NodeInfo>,
    pieces: &[Piece],
    t_steps: usize,
) -> Vec<(usize, usize, f64, bool)> {
    let mut by_layer: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, p) in pieces.iter().enumerate() {
        by_layer.entry(p.layer).or_default().push(i);
    }
    let mut out = Vec::new();
    for e in edges {
        let (Some(f), Some(t)) = (e.from, e.to) else {
            continue;
        };
        let (Some(ps), Some(qs)) = (by_layer.get(&f), by_layer.get(&t)) else {
            continue;
        };
        let info = &infos[&e.node];
        let bytes = step_wire_bytes(m, info, t_steps);
        let spikes = info.kind == ValueKind::Spikes;
        let d = &drafts[f];
        for &a in ps {
            let p = &pieces[a];
            let share = (p.c[1] - p.c[0]) as f64 / d.channels as f64 * (p.r[1] - p.r[0]) as f64
                / d.rows().max(1) as f64;
            for &b in qs {
                let fr = read_fraction(p, &pieces[b], d, &drafts[t]);
                if fr > 0.0 {
                    out.push((a, b, bytes * share * fr, spikes));
                }
            }
        }
    }
    out
}

/// Position of each of `n` slots in the serpentine layout: slots in first-use order of
/// `pieces` at `walk[0], walk[1], ...` (as [`serpentine_cost`] lays them), unused slots on
/// the positions left, in order.
fn serpentine_start(n: usize, walk: &[usize], pieces: &[Piece]) -> Vec<usize> {
    let mut order: Vec<usize> = Vec::with_capacity(n);
    let mut used = vec![false; n];
    for p in pieces {
        if !used[p.core] {
            used[p.core] = true;
            order.push(p.core);
        }
    }
    order.extend((0..n).filter(|&b| !used[b]));
    let mut start = vec![0; n];
    for (i, &b) in order.iter().enumerate() {
        start[b] = walk[i % walk.len()];
    }
    start
}

/// Byte-hops of `pieces` (spike traffic only when `spikes_only`) with their bins (cores) laid along the serpentine walk in
/// the order the slices come (layer, channel, row): today's placement rule.
fn serpentine_cost(
    m: &Machine,
    walk: &[usize],
    pieces: &[Piece],
    flows: &[(usize, usize, f64, bool)],
    spikes_only: bool,
) -> f64 {
    let start = serpentine_start(walk.len(), walk, pieces);
    flows
        .iter()
        .filter(|f| f.3 || !spikes_only)
        .map(|&(a, b, bytes, _)| {
            let (x, y) = (
                m.position(start[pieces[a].core]),
                m.position(start[pieces[b].core]),
            );
            bytes * (x.0.abs_diff(y.0) + x.1.abs_diff(y.1)) as f64
        })
        .sum()
}

/// Layer-serial slicing (today's): every layer over as many cores as its work justifies,
/// `k` even channel ranges, range `j` on the `j`-th core of the serpentine walk from the
/// emptiest start (so channel-wise neighbours stay on one core) or, when its weight SRAM is
/// full, the next core with room. `Err((layer, channel))` names the slice that did not fit.
fn spread(
    drafts: &[LayerDraft],
    layers: &[usize],
    walk: &[usize],
    cap: u64,
    min_work: f64,
) -> Result<Vec<Piece>, (usize, usize)> {
    let n = walk.len();
    let mut used = vec![0u64; n];
    let mut pieces = Vec::new();
    let ks: BTreeMap<usize, usize> = layers
        .iter()
        .map(|&li| {
            let d = &drafts[li];
            let by_work = (d.work / min_work).floor().max(1.0) as usize;
            let mut k = d.channels.min(n).min(by_work).max(1);
            // More slices when even ones would not fit a core.
            while k < d.channels
                && d.weight_for(d.channels.div_ceil(k)).div_ceil(ALIGN) * ALIGN > cap
            {
                k += 1;
            }
            (li, k)
        })
        .collect();
    // Largest slices first (first-fit decreasing), so big unsplit tensors find room; ties
    // keep layer order.
    let mut by_need: Vec<usize> = layers.to_vec();
    by_need.sort_by_key(|&li| {
        (
            std::cmp::Reverse(drafts[li].weight_for(drafts[li].channels.div_ceil(ks[&li]))),
            li,
        )
    });
    for li in by_need {
        let d = &drafts[li];
        let k = ks[&li];
        let start = if k >= n {
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
            pieces.push(Piece {
                layer: li,
                core: walk[slot],
                c: [c0, c1],
                r: [0, d.rows().max(1)],
            });
        }
    }
    pieces.sort_by_key(|p| (p.layer, p.c[0]));
    Ok(pieces)
}

/// The largest output tile of `rows` rows whose working set fits `cap`, halving the longer
/// side; `Err(bytes of the 1x1 tile)` when even that does not fit.
#[allow(clippy::too_many_arguments)]
fn choose_tile(
    g: &spikerc_compiler::Verified,
    infos: &BTreeMap<NodeId, NodeInfo>,
    d: &LayerDraft,
    layer_of: &BTreeMap<NodeId, usize>,
    li: usize,
    k: usize,
    rows: usize,
    cap: u64,
) -> Result<([usize; 2], u64), u64> {
    let (oh, ow) = spatial(&d.out_shape);
    let frac = k as f64 / d.channels as f64;
    let mut ext: BTreeSet<NodeId> = BTreeSet::new();
    for id in &d.nodes {
        for i in g.inputs(*id) {
            if layer_of.get(&i) != Some(&li) {
                ext.insert(i);
            }
        }
    }
    let lifs = d
        .nodes
        .iter()
        .filter(|n| matches!(g.node(**n).op, Op::Lif(_)))
        .count() as u64;
    // A channel-mixing layer may stream its input `chunk` channels at a time past
    // stationary accumulators when a tile with every input channel does not fit.
    let ws = |r: usize, c: usize, chunk: usize| -> u64 {
        let mut bytes = 0u64;
        for i in &ext {
            let info = &infos[i];
            let (ih, iw) = spatial(&info.shape);
            let ch = if d.mixes_channels {
                channels_of(&info.shape).min(chunk) as f64
            } else {
                channels_of(&info.shape) as f64 * frac
            };
            let sy = (ih as f64 / oh.max(1) as f64).max(0.5);
            let sx = (iw as f64 / ow.max(1) as f64).max(0.5);
            let rr = ((r as f64 * sy).ceil() as usize + d.halo).min(ih.max(1));
            let cc = ((c as f64 * sx).ceil() as usize + d.halo).min(iw.max(1));
            let elems = (ch.ceil() as u64) * (rr * cc) as u64;
            bytes += value_bytes(info.kind, elems);
        }
        let out_elems = (k * r * c) as u64;
        bytes += out_elems * 4;
        bytes += lifs * out_elems * 4;
        bytes.div_ceil(ALIGN) * ALIGN
    };
    let mut smallest = u64::MAX;
    for chunk in [usize::MAX, 64, 16, 4, 1] {
        if chunk != usize::MAX && !d.mixes_channels {
            break;
        }
        let (mut r, mut c) = (rows.max(1), ow.max(1));
        loop {
            let b = ws(r, c, chunk);
            if b <= cap {
                return Ok(([r, c], b));
            }
            if r == 1 && c == 1 {
                smallest = smallest.min(b);
                break;
            }
            if r >= c {
                r = r.div_ceil(2);
            } else {
                c = c.div_ceil(2);
            }
        }
    }
    Err(smallest)
}
