//! The cycle- and energy-accounting simulator of a `lynxi` deployment.
//!
//! Function: the deployed artifact runs on the event-driven runtime (`spikerc_runtime`, the
//! same kernels as `spikerc run`), so outputs are bit-identical to `spikerc run` of the same
//! artifact. Accounting: while it runs, every value is observed; from the spike tensors the
//! simulator counts, per node and time step, the accumulates each event-driven convolution
//! performs (one per spike and output it actually reaches, times the output channels), the
//! spikes, and — from the shapes — MACs, neuron updates and other vector operations. Those
//! counts are shared among a layer's slices by their channel share, so each core gets its
//! own counts per time step; traffic follows the manifest's edges (multicast packets and
//! hops for on-chip buffers, bytes for DRAM-staged ones).
//!
//! Time: a layer step lasts as long as its busiest core (`ceil(ops / lanes)` summed over its
//! slices), plus the multicast of its output (tree depth x hop cycles + packets), plus its
//! DRAM transfers, plus a barrier; layers start as soon as their inputs are complete and
//! their cores are free (as soon as possible over the layer graph). A core's barrier wait is
//! the part of a layer step it spends idle. Energy = counts x the machine's energy table.

mod report;
mod bound;
mod timing;

pub use report::{CoreReport, ModuleReport, Report, StepCounts};

use std::collections::{BTreeMap, BTreeSet};

use spikerc_compiler::interp::Array;
use spikerc_compiler::{NodeId, Op, ValueKind};
use spikerc_runtime::{Program, RunOptions, RunResult, RuntimeError};

use crate::layers::{node_infos, value_bytes, NodeInfo};
use crate::lynxi::{Loaded, Manifest};
use crate::machine::Machine;

/// Energy per operation the SpikerIR paper (and most SNN papers) uses, 45 nm, pJ.
pub const PAPER_E_AC_PJ: f64 = 0.9;
pub const PAPER_E_MAC_PJ: f64 = 4.6;

/// The actions energy is accounted for, in report order.
pub const ACTIONS: [&str; 11] = [
    "ac",
    "mac",
    "neuron_update",
    "vector_op",
    "reg_read",
    "weight_sram_read",
    "state_sram_read",
    "state_sram_write",
    "dram",
    "noc_hop",
    "chip_link",
];
/// Number of accounted actions.
pub const NACT: usize = ACTIONS.len();

/// The image sizes a deployment of (padded) size `dh x dw` runs, in the user's terms: every
/// side that reflect-pads to it (`49-52 x 61-64 (reflect-padded to 52x64; ...)`).
fn accepted_sizes(dh: usize, dw: usize, divisor: usize) -> String {
    let side = |d: usize| {
        let lo = d.saturating_sub(divisor.max(1) - 1).max(1);
        if lo == d { d.to_string() } else { format!("{lo}-{d}") }
    };
    let (a, b) = (side(dh), side(dw));
    if a == dh.to_string() && b == dw.to_string() {
        format!("{dh}x{dw} (compiled with --input-size)")
    } else {
        format!("{a} x {b} (reflect-padded to {dh}x{dw}; compiled with --input-size)")
    }
}

/// Why a simulation was refused.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the deployment runs images of {}; the input is {h}x{w}: recompile with --input-size {h}x{w}", accepted_sizes(*dh, *dw, *divisor))]
    InputSize {
        dh: usize,
        dw: usize,
        divisor: usize,
        h: usize,
        w: usize,
    },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Simulation settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimOptions {
    /// Worker threads of the runtime (0 = all cores).
    pub threads: usize,
}

/// Outputs and report of one simulation.
#[derive(Debug)]
pub struct Simulation {
    pub outputs: Vec<Array>,
    pub report: Report,
    /// The runtime's own per-module counts (for cross-checking).
    pub runtime: RunResult,
}

/// Counts of one node (or one core) at one time step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counts {
    pub ac: f64,
    pub mac: f64,
    pub neuron_updates: f64,
    pub vector_ops: f64,
    pub spikes_in: f64,
    pub spikes_out: f64,
    pub weight_read_bytes: f64,
    pub state_read_bytes: f64,
    pub state_write_bytes: f64,
    pub dram_bytes: f64,
    pub packets: f64,
    pub packet_hops: f64,
    pub reg_read_bytes: f64,
    pub chip_link_bytes: f64,
}

impl Counts {
    fn add_scaled(&mut self, o: &Counts, f: f64) {
        self.ac += o.ac * f;
        self.mac += o.mac * f;
        self.neuron_updates += o.neuron_updates * f;
        self.vector_ops += o.vector_ops * f;
        self.spikes_in += o.spikes_in * f;
        self.spikes_out += o.spikes_out * f;
        self.weight_read_bytes += o.weight_read_bytes * f;
        self.state_read_bytes += o.state_read_bytes * f;
        self.state_write_bytes += o.state_write_bytes * f;
        self.dram_bytes += o.dram_bytes * f;
        self.packets += o.packets * f;
        self.packet_hops += o.packet_hops * f;
        self.reg_read_bytes += o.reg_read_bytes * f;
        self.chip_link_bytes += o.chip_link_bytes * f;
    }

    /// Energy of these counts by action (same order as [`ACTIONS`]).
    pub fn energy(&self, m: &Machine, fp16: bool) -> [f64; NACT] {
        let e = &m.energy;
        let ws = m.sram_energy(m.core.weight_sram_bytes);
        let ss = m.sram_energy(m.core.state_sram_bytes);
        [
            self.ac * m.ac_pj(fp16),
            self.mac * m.mac_pj(fp16),
            self.neuron_updates * e.neuron_update_pj,
            self.vector_ops * e.vector_op_pj,
            self.reg_read_bytes * e.reg_pj_per_byte,
            self.weight_read_bytes * ws.read_pj_per_byte,
            self.state_read_bytes * ss.read_pj_per_byte,
            self.state_write_bytes * ss.write_pj_per_byte,
            self.dram_bytes * e.dram_pj_per_byte,
            self.packet_hops * e.hop_pj,
            self.chip_link_bytes * m.card.link_pj_per_byte,
        ]
    }

    /// Compute cycles of these counts on one core.
    pub fn cycles(&self, m: &Machine) -> f64 {
        let c = &m.core;
        (self.ac / c.ac_lanes as f64).ceil()
            + (self.mac / c.mac_lanes as f64).ceil()
            + (self.neuron_updates / c.neuron_lanes as f64).ceil()
            + (self.vector_ops / c.vector_lanes as f64).ceil()
    }
}

/// How many outputs along one axis each input position reaches.
fn reach(input: usize, output: usize, k: usize, stride: usize, pad: usize) -> Vec<u64> {
    (0..input)
        .map(|y| {
            (0..output)
                .filter(|&o| (y + pad) >= o * stride && (y + pad) - o * stride < k)
                .count() as u64
        })
        .collect()
}

struct AcConv {
    conv: NodeId,
    co: u64,
    ry: Vec<u64>,
    rx: Vec<u64>,
}

/// Dynamic counts gathered while the runtime runs.
#[derive(Default)]
struct Observed {
    /// Spikes per time step of every spike-valued node.
    spikes: BTreeMap<NodeId, Vec<u64>>,
    /// Accumulates and input spikes per time step of every event-driven convolution.
    ac: BTreeMap<NodeId, Vec<u64>>,
    spikes_in: BTreeMap<NodeId, Vec<u64>>,
}

/// Simulates a loaded deployment on `input` (`[N, C, H, W]` at the deployed size).
pub fn simulate(dep: &Loaded, input: &Array, opts: &SimOptions) -> Result<Simulation, SimError> {
    simulate_image(dep, input, opts, None)
}

/// As [`simulate`], for an image of `image_size` that was reflect-padded to `input`'s size
/// (the report speaks of the user's size).
pub fn simulate_image(
    dep: &Loaded,
    input: &Array,
    opts: &SimOptions,
    image_size: Option<[usize; 2]>,
) -> Result<Simulation, SimError> {
    let man = &dep.manifest;
    let g = &dep.artifact.graph;
    let [dh, dw] = man.model.input_size;
    if input.shape.len() == 4 && (input.shape[2], input.shape[3]) != (dh, dw) {
        let [h, w] = image_size.unwrap_or([input.shape[2], input.shape[3]]);
        return Err(SimError::InputSize { dh, dw, divisor: g.spatial_divisor(), h, w });
    }
    spikerc_compiler::interp::check_input(g, input).map_err(RuntimeError::from)?;
    let (n, h, w) = (input.shape[0], input.shape[2], input.shape[3]);
    let t_steps = g.time_steps();
    let infos = node_infos(g, n, h, w);

    // Spike consumers: which event-driven convs read each spike-valued node.
    let mut consumers: BTreeMap<NodeId, Vec<AcConv>> = BTreeMap::new();
    for id in g.ids() {
        if let Op::Conv2d(c) = &g.node(id).op {
            if c.event_driven {
                let src = g.inputs(id)[0];
                let (is, os) = (&infos[&src].shape, &infos[&id].shape);
                let r = is.len();
                let [kh, kw] = c.kernel();
                consumers.entry(src).or_default().push(AcConv {
                    conv: id,
                    co: c.out_channels() as u64,
                    ry: reach(is[r - 2], os[r - 2], kh, c.stride[0], c.padding[0]),
                    rx: reach(is[r - 1], os[r - 1], kw, c.stride[1], c.padding[1]),
                });
            }
        }
    }
    let spike_nodes: BTreeSet<NodeId> = g
        .ids()
        .filter(|&i| g.node(i).fact.kind == ValueKind::Spikes)
        .collect();
    let mut obs = Observed::default();
    let program = Program::new(g);
    let run = {
        let obs = &mut obs;
        let consumers = &consumers;
        let spike_nodes = &spike_nodes;
        program.run_observed(
            input,
            &RunOptions {
                threads: opts.threads,
                profile: false,
            },
            move |id, v| {
                if !spike_nodes.contains(&id) {
                    return;
                }
                let t = v.shape[0];
                let plane = v.len() / t;
                let per_t: Vec<u64> = v
                    .data
                    .chunks(plane)
                    .map(|c| c.iter().filter(|&&x| x != 0.0).count() as u64)
                    .collect();
                obs.spikes.insert(id, per_t.clone());
                if let Some(cs) = consumers.get(&id) {
                    let r = v.shape.len();
                    let (hh, ww) = (v.shape[r - 2], v.shape[r - 1]);
                    for c in cs {
                        let mut acs = Vec::with_capacity(t);
                        for chunk in v.data.chunks(plane) {
                            let mut sum = 0u64;
                            for img in chunk.chunks(hh * ww) {
                                for (y, row) in img.chunks(ww).enumerate() {
                                    let mut rs = 0u64;
                                    for (x, &s) in row.iter().enumerate() {
                                        if s != 0.0 {
                                            rs += c.rx[x];
                                        }
                                    }
                                    sum += rs * c.ry[y];
                                }
                            }
                            acs.push(sum * c.co);
                        }
                        obs.ac.insert(c.conv, acs);
                        obs.spikes_in.insert(c.conv, per_t.clone());
                    }
                }
            },
        )?
    };

    let by_index: BTreeMap<usize, NodeId> = g.ids().map(|i| (i.index(), i)).collect();
    let mut tiles: BTreeMap<NodeId, u64> = BTreeMap::new();
    for l in &man.layers {
        let t = l
            .slices
            .iter()
            .map(|&s| man.slices[s].tiles as u64)
            .max()
            .unwrap_or(1);
        for ni in &l.nodes {
            tiles.insert(by_index[ni], t);
        }
    }
    let mut counts = node_counts(g, &infos, &obs, &tiles, t_steps);
    apply_dataflows(man, g, &by_index, &mut counts, n);
    let fp16 = man.model.precision == "f16";
    let report = account(man, g, &infos, &counts, &obs, n, fp16, image_size);
    Ok(Simulation {
        outputs: run.outputs.clone(),
        report,
        runtime: run,
    })
}

/// Per node and time step: operation and memory counts (edges excluded).
fn node_counts(
    g: &spikerc_compiler::Verified,
    infos: &BTreeMap<NodeId, NodeInfo>,
    obs: &Observed,
    tiles: &BTreeMap<NodeId, u64>,
    t_steps: usize,
) -> BTreeMap<NodeId, Vec<Counts>> {
    let mut out = BTreeMap::new();
    for (&id, i) in infos {
        let mut v = vec![Counts::default(); t_steps];
        // Static counts are spread evenly over the steps of a per-step value; values without a
        // time axis (or reduced over it) are computed after the last step.
        let split = |total: u64| -> Vec<f64> {
            if i.steps == t_steps {
                vec![total as f64 / t_steps as f64; t_steps]
            } else {
                let mut z = vec![0.0; t_steps];
                z[t_steps - 1] = total as f64;
                z
            }
        };
        let node = g.node(id);
        let host = matches!(
            node.op,
            Op::Input { .. } | Op::RepeatTime { .. } | Op::Output
        );
        if host {
            out.insert(id, v);
            continue;
        }
        let mac = split(i.mac);
        let neu = split(i.neuron_updates);
        let vec_ops = split(i.vector_ops);
        let in_bytes: u64 = g
            .inputs(id)
            .iter()
            .map(|s| value_bytes(g.node(*s).fact.kind, infos[s].out_elems()))
            .sum();
        let reads = split(in_bytes + 4 * i.neuron_updates);
        let writes = split(value_bytes(i.kind, i.out_elems()) + 4 * i.neuron_updates);
        // Weight reads: an accumulate reads the one weight it adds; MAC arrays are
        // weight-stationary, loading each weight once per tile and step.
        let event = matches!(&node.op, Op::Conv2d(c) if c.event_driven);
        let dense_weighted = !event && matches!(node.op, Op::Conv2d(_) | Op::AxisLinear { .. });
        let wloads = split(i.weight_bytes * tiles.get(&id).copied().unwrap_or(1) * i.steps as u64);
        for t in 0..t_steps {
            let c = &mut v[t];
            c.mac = mac[t];
            c.neuron_updates = neu[t];
            c.vector_ops = vec_ops[t];
            c.state_read_bytes = reads[t];
            c.state_write_bytes = writes[t];
            if let Some(a) = obs.ac.get(&id) {
                c.ac = a[t] as f64;
                c.spikes_in = obs.spikes_in[&id][t] as f64;
            }
            if matches!(node.op, Op::Lif(_)) {
                if let Some(s) = obs.spikes.get(&id) {
                    c.spikes_out = s[t] as f64;
                }
            }
            if event {
                c.weight_read_bytes = c.ac * i.param_elem_bytes as f64;
            } else if dense_weighted {
                c.weight_read_bytes = wloads[t];
            }
        }
        out.insert(id, v);
    }
    out
}

/// Replaces a convolution's register / SRAM accesses by those of its layer's dataflow
/// ([`crate::dataflow`]), slice by slice (`n` images per run).
fn apply_dataflows(
    man: &Manifest,
    g: &spikerc_compiler::Verified,
    by_index: &BTreeMap<usize, NodeId>,
    counts: &mut BTreeMap<NodeId, Vec<Counts>>,
    n: usize,
) {
    for l in &man.layers {
        let Some(df) = l.dataflow else { continue };
        let Some((id, conv)) = l.nodes.iter().find_map(|i| match &g.node(by_index[i]).op {
            Op::Conv2d(c) => Some((by_index[i], c)),
            _ => None,
        }) else {
            continue;
        };
        let [kh, kw] = conv.kernel();
        let cols = *l.out_shape.last().unwrap_or(&1);
        for c in counts.get_mut(&id).into_iter().flatten() {
            let ops = if conv.event_driven { c.ac } else { c.mac };
            let mut acc = crate::dataflow::Accesses::default();
            for &s in &l.slices {
                let sl = &man.slices[s];
                let geo = crate::dataflow::ConvGeometry {
                    ci: conv.in_channels(),
                    co: sl.channels[1] - sl.channels[0],
                    kh,
                    kw,
                    stride: conv.stride[0].max(1),
                    rows: sl.rows[1] - sl.rows[0],
                    cols,
                    weight_bytes: conv.weight.dtype().size_of() as f64,
                    input_bytes: if conv.event_driven { 0.125 } else { 4.0 },
                };
                let a = df.accesses(&geo, ops * timing::share(man, s) / n as f64);
                acc.reg_read += a.reg_read * n as f64;
                acc.weight_sram_read += a.weight_sram_read * n as f64;
                acc.state_read += a.state_read * n as f64;
                acc.state_write += a.state_write * n as f64;
            }
            c.reg_read_bytes = acc.reg_read;
            c.weight_read_bytes = acc.weight_sram_read;
            c.state_read_bytes = acc.state_read;
            c.state_write_bytes = acc.state_write;
        }
    }
}

/// Bytes a value occupies on the wire at step `t`: spikes as the cheaper of a bitmap and
/// address events, real values as f32.
fn wire_bytes(
    m: &Machine,
    info: &NodeInfo,
    spikes: Option<&Vec<u64>>,
    t: usize,
    t_steps: usize,
) -> f64 {
    let per_step = info.steps == t_steps;
    if !per_step && t != t_steps - 1 {
        return 0.0;
    }
    let elems = if per_step {
        info.out_elems() / t_steps as u64
    } else {
        info.out_elems()
    };
    match (info.kind, spikes) {
        (ValueKind::Spikes, Some(s)) => {
            let events = s.get(t).copied().unwrap_or(0) * m.noc.spike_event_bytes;
            (elems.div_ceil(8)).min(events) as f64
        }
        _ => value_bytes(info.kind, elems) as f64,
    }
}

#[allow(clippy::too_many_arguments)]
fn account(
    man: &Manifest,
    g: &spikerc_compiler::Verified,
    infos: &BTreeMap<NodeId, NodeInfo>,
    counts: &BTreeMap<NodeId, Vec<Counts>>,
    obs: &Observed,
    images: usize,
    fp16: bool,
    image_size: Option<[usize; 2]>,
) -> Report {
    let m = &man.machine;
    let t_steps = g.time_steps();
    let ncores = man.cores.len();
    let by_index: BTreeMap<usize, NodeId> = g.ids().map(|i| (i.index(), i)).collect();
    let nl = man.layers.len();

    let timed = timing::time(man, g, infos, counts, obs);
    let timing::Timed {
        core_steps,
        core_busy_t,
        core_busy,
        core_wait,
        edge_node,
        total_cycles,
        ..
    } = &timed;
    let total_cycles = *total_cycles;
    let _ = (ncores, &by_index, nl);

    // Module view (node names, first appearance order), energy by action.
    let mut module_order: Vec<String> = Vec::new();
    let mut modules: BTreeMap<String, (Counts, [f64; NACT], u64, u64, u64)> = BTreeMap::new(); // counts, energy, dense_ac_in, in_elems, lif neurons
    let order = g.topo_order().expect("verified");
    let mut paper = 0.0;
    let mut ann = 0.0;
    for id in &order {
        let info = &infos[id];
        let mut c = Counts::default();
        for x in &counts[id] {
            c.add_scaled(x, 1.0);
        }
        if let Some(ev) = edge_node.get(id) {
            for x in ev {
                c.add_scaled(x, 1.0);
            }
        }
        let node = g.node(*id);
        let event = matches!(&node.op, Op::Conv2d(cv) if cv.event_driven);
        if event {
            let in_elems = infos[&g.inputs(*id)[0]].out_elems() as f64;
            let rate = c.spikes_in / in_elems.max(1.0);
            paper += PAPER_E_AC_PJ * rate * info.dense as f64;
        }
        paper += PAPER_E_MAC_PJ * info.mac as f64;
        // The ANN twin: every MAC-class op (spiking convs too) densely, once (T = 1).
        ann += PAPER_E_MAC_PJ * info.dense as f64 / info.steps as f64;
        let en = c.energy(m, fp16);
        if !modules.contains_key(&node.name) {
            module_order.push(node.name.clone());
        }
        let e = modules
            .entry(node.name.clone())
            .or_insert((Counts::default(), [0.0; NACT], 0, 0, 0));
        e.0.add_scaled(&c, 1.0);
        for (acc, v) in e.1.iter_mut().zip(en) {
            *acc += v;
        }
        if event {
            e.2 += info.dense;
            e.3 += infos[&g.inputs(*id)[0]].out_elems();
        }
        if matches!(node.op, Op::Lif(_)) {
            e.4 += info.neuron_updates;
        }
    }
    let per_image = 1.0 / images as f64;
    let mut by_action: BTreeMap<String, f64> = BTreeMap::new();
    let mut total_counts = Counts::default();
    let module_reports: Vec<ModuleReport> = module_order
        .iter()
        .map(|name| {
            let (c, en, _dense, in_elems, neurons) = &modules[name];
            total_counts.add_scaled(c, 1.0);
            for (k, a) in ACTIONS.iter().enumerate() {
                *by_action.entry(a.to_string()).or_default() += en[k] * per_image;
            }
            let firing_rate = if *neurons > 0 {
                Some(c.spikes_out / *neurons as f64)
            } else if *in_elems > 0 {
                Some(c.spikes_in / *in_elems as f64)
            } else {
                None
            };
            ModuleReport {
                name: name.clone(),
                ac: c.ac.round() as u64,
                mac: c.mac.round() as u64,
                neuron_updates: c.neuron_updates.round() as u64,
                vector_ops: c.vector_ops.round() as u64,
                spikes_in: c.spikes_in.round() as u64,
                spikes_out: c.spikes_out.round() as u64,
                firing_rate,
                energy_pj: en.iter().sum::<f64>() * per_image,
                energy_by_action: ACTIONS
                    .iter()
                    .zip(en.iter())
                    .map(|(a, v)| (a.to_string(), v * per_image))
                    .collect(),
            }
        })
        .collect();
    let energy_pj: f64 = module_reports.iter().map(|m| m.energy_pj).sum();

    let core_reports: Vec<CoreReport> = man
        .cores
        .iter()
        .map(|cm| {
            let c = cm.id;
            let mut tot = Counts::default();
            for x in &core_steps[c] {
                tot.add_scaled(x, 1.0);
            }
            let en = tot.energy(m, fp16);
            CoreReport {
                id: c,
                x: cm.x,
                y: cm.y,
                slices: cm.slices.len(),
                layers: cm
                    .slices
                    .iter()
                    .map(|&s| man.layers[man.slices[s].layer].name.clone())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
                busy_cycles: core_busy[c].round() as u64,
                barrier_wait_cycles: core_wait[c].round() as u64,
                utilisation: if total_cycles > 0.0 {
                    core_busy[c] / total_cycles
                } else {
                    0.0
                },
                energy_pj: en.iter().sum::<f64>() * per_image,
                steps: (0..t_steps)
                    .map(|t| StepCounts {
                        t,
                        ac: core_steps[c][t].ac.round() as u64,
                        mac: core_steps[c][t].mac.round() as u64,
                        neuron_updates: core_steps[c][t].neuron_updates.round() as u64,
                        busy_cycles: core_busy_t[c][t].round() as u64,
                        packets: core_steps[c][t].packets.round() as u64,
                        dram_bytes: core_steps[c][t].dram_bytes.round() as u64,
                    })
                    .collect(),
            }
        })
        .collect();
    let steps: Vec<StepCounts> = (0..t_steps)
        .map(|t| {
            let mut s = Counts::default();
            for id in &order {
                s.add_scaled(&counts[id][t], 1.0);
            }
            StepCounts {
                t,
                ac: s.ac.round() as u64,
                mac: s.mac.round() as u64,
                neuron_updates: s.neuron_updates.round() as u64,
                busy_cycles: core_busy_t.iter().map(|c| c[t]).fold(0.0, f64::max).round() as u64,
                packets: core_steps.iter().map(|c| c[t].packets).sum::<f64>().round() as u64,
                dram_bytes: core_steps
                    .iter()
                    .map(|c| c[t].dram_bytes)
                    .sum::<f64>()
                    .round() as u64,
            }
        })
        .collect();
    let latency_cycles = total_cycles * per_image;
    let latency_ms = latency_cycles * m.cycle_seconds() * 1e3;
    let used: Vec<&CoreReport> = core_reports.iter().filter(|c| c.slices > 0).collect();
    let x = bound::extras(man, g, infos, &timed, &total_counts, &core_reports, images, fp16);
    let lower_bound = bound::lower_bound(man, g, infos, &total_counts, images, fp16, latency_cycles, energy_pj);
    Report {
        model: man.model.model.clone(),
        preset: man.model.preset.clone(),
        machine: m.name.clone(),
        precision: man.model.precision.clone(),
        image_size: image_size.unwrap_or(man.model.input_size),
        input_size: man.model.input_size,
        schedule: man.model.schedule.to_string(),
        chips: m.card.chips,
        images,
        time_steps: t_steps,
        latency_cycles: latency_cycles.round() as u64,
        latency_ms,
        energy_pj,
        average_power_mw: if latency_ms > 0.0 {
            energy_pj * 1e-9 / latency_ms
        } else {
            0.0
        },
        paper_energy_pj: paper * per_image,
        ann_equivalent_energy_pj: ann * per_image,
        snn_ann_ratio: if ann > 0.0 { paper / ann } else { 0.0 },
        ops: report::Ops {
            ac: total_counts.ac.round() as u64,
            mac: total_counts.mac.round() as u64,
            neuron_updates: total_counts.neuron_updates.round() as u64,
            vector_ops: total_counts.vector_ops.round() as u64,
            spikes: total_counts.spikes_out.round() as u64,
            dram_bytes: total_counts.dram_bytes.round() as u64,
            packets: total_counts.packets.round() as u64,
            packet_hops: total_counts.packet_hops.round() as u64,
            weight_sram_read_bytes: total_counts.weight_read_bytes,
            state_sram_read_bytes: total_counts.state_read_bytes,
            state_sram_write_bytes: total_counts.state_write_bytes,
            reg_read_bytes: total_counts.reg_read_bytes,
            chip_link_bytes: total_counts.chip_link_bytes,
        },
        energy_by_action: by_action,
        cores_used: used.len(),
        mean_utilisation: if used.is_empty() {
            0.0
        } else {
            used.iter().map(|c| c.utilisation).sum::<f64>() / used.len() as f64
        },
        hops_per_spike: x.hops_per_spike,
        hops_per_spike_placed_estimate: man.summary.hops_per_spike,
        hops_per_spike_serpentine_estimate: man.summary.hops_per_spike_serpentine,
        hops_per_byte_placed_estimate: man.summary.hops_per_byte,
        hops_per_byte_serpentine_estimate: man.summary.hops_per_byte_serpentine,
        lower_bound,
        step_cycles: x.step_cycles,
        full_t_cycles: x.full_t_cycles,
        stages: x.stages,
        layers: x.layers,
        dram_tensors: x.dram_tensors,
        chip_reports: x.chips,
        steps,
        modules: module_reports,
        cores: core_reports,
        assumed: m.assumed.clone(),
        assumed_values: x.assumed_values,
    }
}
