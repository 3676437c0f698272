//! Traffic and time of a deployment from its per-node counts.
//!
//! Traffic follows the manifest's edges: the part of a buffer held in DRAM is written once
//! by the producer and read by every consumer (a full-T consumer once per pass) except the
//! consumers that read the producer's stream (`Edge::streamed`); the part in SRAM (all of
//! it for those) travels over the routes (packets of `noc.packet_payload_bytes`, hops = tree links,
//! `fraction` = the rows the destinations read; other chips over the card's links).
//!
//! Time, per stage in order (see [`crate::schedule`]):
//! * `layer-serial` — each layer over all T, a step lasting as long as its busiest core plus
//!   its multicast, its DRAM transfers and a barrier (today's model);
//! * `pipelined` / `fused` — per time step, every core runs its slices of the stage: the step
//!   lasts `max(busiest core, DRAM bytes / bandwidth)` (DMA overlaps compute) + the pipeline
//!   fill (each layer waits for the first rows of its producer: its busiest slice's time per
//!   row x its line rows) + the longest route + link transfers + (fused) one neighbour
//!   handshake per row band (`noc.hop_cycles` per row) + the barrier;
//! * a full-T stage runs once over its buffered input: busiest core over all steps,
//!   `max`-overlapped with its DRAM traffic, + its routes + a barrier.

use std::collections::{BTreeMap, BTreeSet};

use spikerc_compiler::NodeId;

use super::{wire_bytes, Counts, Observed};
use crate::layers::{value_bytes, NodeInfo};
use crate::lynxi::Manifest;
use crate::schedule::{self, BufferKind, StageMode};

/// What the timing model produced.
pub(super) struct Timed {
    /// Counts per core and step, including traffic.
    pub core_steps: Vec<Vec<Counts>>,
    pub core_busy_t: Vec<Vec<f64>>,
    pub core_busy: Vec<f64>,
    pub core_wait: Vec<f64>,
    /// Traffic attributed to the producing node, per step (module view).
    pub edge_node: BTreeMap<NodeId, Vec<Counts>>,
    pub total_cycles: f64,
    /// Cycles of each time step's streaming stages (all stages together), and of the
    /// full-T stages.
    pub step_cycles: Vec<f64>,
    pub full_t_cycles: f64,
    /// `(stage, mode, start, cycles)` in order.
    pub timeline: Vec<(usize, StageMode, f64, f64)>,
    /// Spike-carrying packets and their hops.
    pub spike_packets: f64,
    pub spike_hops: f64,
}

/// Share of a slice in its layer: channels x rows.
pub(super) fn share(man: &Manifest, s: usize) -> f64 {
    let sl = &man.slices[s];
    let l = &man.layers[sl.layer];
    let rows = crate::lynxi::spatial_rows(&l.out_shape).max(1);
    (sl.channels[1] - sl.channels[0]) as f64 / l.channels as f64
        * ((sl.rows[1] - sl.rows[0]) as f64 / rows as f64).min(1.0)
}

pub(super) fn time(
    man: &Manifest,
    g: &spikerc_compiler::Verified,
    infos: &BTreeMap<NodeId, NodeInfo>,
    counts: &BTreeMap<NodeId, Vec<Counts>>,
    obs: &Observed,
) -> Timed {
    let m = &man.machine;
    let t_steps = g.time_steps();
    let ncores = man.cores.len();
    let nl = man.layers.len();
    let by_index: BTreeMap<usize, NodeId> = g.ids().map(|i| (i.index(), i)).collect();
    let mut routes: BTreeMap<(usize, usize), Vec<&crate::lynxi::Route>> = BTreeMap::new();
    for c in &man.cores {
        for r in &c.routes {
            routes.entry((r.edge, r.slice)).or_default().push(r);
        }
    }
    let mut edge_node: BTreeMap<NodeId, Vec<Counts>> = BTreeMap::new();
    let mut core_extra: Vec<Vec<Counts>> = vec![vec![Counts::default(); t_steps]; ncores];
    let mut layer_comm = vec![vec![0f64; t_steps]; nl];
    let mut layer_link = vec![vec![0f64; t_steps]; nl];
    let mut layer_dram = vec![vec![0f64; t_steps]; nl];
    let mut host_dram = vec![0f64; t_steps];
    let mut written: BTreeSet<(usize, usize)> = BTreeSet::new();
    let (mut spike_packets, mut spike_hops) = (0.0, 0.0);
    let payload = m.noc.packet_payload_bytes as f64;
    for e in &man.edges {
        let node = by_index[&e.node];
        let info = &infos[&node];
        let spikes = crate::lynxi::is_spikes(&e.kind);
        let ec = edge_node
            .entry(node)
            .or_insert_with(|| vec![Counts::default(); t_steps]);
        let phi = if e.buffer == BufferKind::Host {
            1.0
        } else if e.buffer_bytes > 0 {
            e.dram_bytes as f64 / e.buffer_bytes as f64
        } else {
            0.0
        };
        for t in 0..t_steps {
            let mut bytes = wire_bytes(m, info, obs.spikes.get(&node), t, t_steps);
            let Some(from) = e.from_layer else {
                // The image: read once from DRAM by each consuming layer, at the first step.
                bytes = if t == 0 {
                    value_bytes(info.kind, info.out_elems()) as f64
                } else {
                    0.0
                };
                if let Some(to) = e.to_layer {
                    for &cs in &man.layers[to].slices {
                        core_extra[man.slices[cs].core][t].dram_bytes += bytes * share(man, cs);
                    }
                    layer_dram[to][t] += bytes;
                } else {
                    host_dram[t] += bytes;
                }
                ec[t].dram_bytes += bytes;
                continue;
            };
            if bytes == 0.0 {
                continue;
            }
            let passes = e.to_layer.map_or(1, |l| man.layers[l].passes.max(1)) as f64;
            // DRAM part: written once per node and step, read by each consumer per pass.
            let dram = bytes * phi;
            if dram > 0.0 {
                if written.insert((e.node, t)) {
                    for &ps in &man.layers[from].slices {
                        core_extra[man.slices[ps].core][t].dram_bytes += dram * share(man, ps);
                    }
                    ec[t].dram_bytes += dram;
                    layer_dram[from][t] += dram;
                }
                if let Some(to) = e.to_layer.filter(|_| !e.streamed) {
                    for &cs in &man.layers[to].slices {
                        core_extra[man.slices[cs].core][t].dram_bytes +=
                            dram * passes * share(man, cs);
                    }
                    ec[t].dram_bytes += dram * passes;
                    layer_dram[to][t] += dram * passes;
                }
            }
            // SRAM part over the routes (all of it for a consumer reading the stream).
            let on_chip = if e.streamed { bytes } else { bytes * (1.0 - phi) };
            if on_chip <= 0.0 {
                continue;
            }
            let mut comm: f64 = 0.0;
            let mut link: f64 = 0.0;
            for &ps in &man.layers[from].slices {
                let Some(rs) = routes.get(&(e.id, ps)) else {
                    continue;
                };
                for r in rs {
                    let b = on_chip * share(man, ps) * r.fraction * passes;
                    if b <= 0.0 || r.dests.is_empty() {
                        continue;
                    }
                    let packets = (b / payload).ceil();
                    let hops = packets * r.links as f64;
                    let cc = &mut core_extra[man.slices[ps].core][t];
                    cc.packets += packets;
                    cc.packet_hops += hops;
                    ec[t].packets += packets;
                    ec[t].packet_hops += hops;
                    if spikes {
                        spike_packets += packets;
                        spike_hops += hops;
                    }
                    comm = comm.max((r.depth as u64 * m.noc.hop_cycles) as f64 + packets);
                    if r.chip_links > 0 {
                        let lb = b * r.chip_links as f64;
                        cc.chip_link_bytes += lb;
                        ec[t].chip_link_bytes += lb;
                        link += lb / m.card.link_bytes_per_cycle.max(f64::MIN_POSITIVE);
                    }
                }
            }
            if link > 0.0 {
                link += m.card.link_latency_cycles as f64;
            }
            layer_comm[from][t] = layer_comm[from][t].max(comm);
            layer_link[from][t] += link;
        }
    }

    // Per layer and step: counts, then per stage: time.
    let mut layer_counts: Vec<Vec<Counts>> = vec![vec![Counts::default(); t_steps]; nl];
    for l in &man.layers {
        for &ni in &l.nodes {
            for (t, c) in counts[&by_index[&ni]].iter().enumerate() {
                layer_counts[l.id][t].add_scaled(c, 1.0);
            }
        }
    }
    let mut core_steps: Vec<Vec<Counts>> = vec![vec![Counts::default(); t_steps]; ncores];
    let mut core_busy_t: Vec<Vec<f64>> = vec![vec![0.0; t_steps]; ncores];
    let mut core_busy = vec![0f64; ncores];
    let mut core_wait = vec![0f64; ncores];
    // Busy cycles of every slice at every step.
    let mut slice_cyc = vec![vec![0f64; t_steps]; man.slices.len()];
    for s in &man.slices {
        let f = share(man, s.id);
        for t in 0..t_steps {
            let mut sc = Counts::default();
            sc.add_scaled(&layer_counts[s.layer][t], f);
            slice_cyc[s.id][t] = sc.cycles(m);
            core_steps[s.core][t].add_scaled(&sc, 1.0);
        }
    }
    let dram_bw = m.dram.bytes_per_cycle;
    let barrier = m.noc.barrier_cycles as f64;
    let mut clock = 0.0;
    let mut step_cycles = vec![0f64; t_steps];
    let mut full_t_cycles = 0.0;
    let mut timeline = Vec::new();
    for st in &man.stages {
        let start = clock;
        let layers: Vec<&crate::lynxi::Layer> = st.layers.iter().map(|&l| &man.layers[l]).collect();
        match st.mode {
            StageMode::LayerSerial => {
                for l in &layers {
                    for t in 0..t_steps {
                        let mut busy: BTreeMap<usize, f64> = BTreeMap::new();
                        for &s in &l.slices {
                            *busy.entry(man.slices[s].core).or_default() += slice_cyc[s][t];
                        }
                        let max_busy = busy.values().copied().fold(0.0, f64::max);
                        let dur = max_busy
                            + layer_comm[l.id][t]
                            + layer_link[l.id][t]
                            + (layer_dram[l.id][t] / dram_bw).ceil()
                            + barrier;
                        for (&c, &b) in &busy {
                            core_busy[c] += b;
                            core_busy_t[c][t] += b;
                            core_wait[c] += dur - b;
                        }
                        step_cycles[t] += dur;
                        clock += dur;
                    }
                }
            }
            StageMode::FullT => {
                let mut busy: BTreeMap<usize, f64> = BTreeMap::new();
                let (mut dram, mut comm, mut link) = (0.0, 0f64, 0.0);
                for l in &layers {
                    for t in 0..t_steps {
                        for &s in &l.slices {
                            let c = man.slices[s].core;
                            *busy.entry(c).or_default() += slice_cyc[s][t];
                            core_busy_t[c][t] += slice_cyc[s][t];
                        }
                        dram += layer_dram[l.id][t];
                        comm = comm.max(layer_comm[l.id][t]);
                        link += layer_link[l.id][t];
                    }
                }
                let max_busy = busy.values().copied().fold(0.0, f64::max);
                let dur = max_busy.max((dram / dram_bw).ceil()) + comm + link + barrier;
                for (&c, &b) in &busy {
                    core_busy[c] += b;
                    core_wait[c] += dur - b;
                }
                full_t_cycles += dur;
                clock += dur;
            }
            StageMode::Pipelined | StageMode::Fused => {
                let band_rows = layers
                    .iter()
                    .flat_map(|l| l.slices.iter())
                    .map(|&s| man.slices[s].rows[1] - man.slices[s].rows[0])
                    .max()
                    .unwrap_or(1);
                for t in 0..t_steps {
                    let mut busy: BTreeMap<usize, f64> = BTreeMap::new();
                    let (mut dram, mut comm, mut link, mut fill) = (0.0, 0f64, 0.0, 0.0);
                    for l in &layers {
                        let mut worst = 0f64;
                        for &s in &l.slices {
                            let c = man.slices[s].core;
                            *busy.entry(c).or_default() += slice_cyc[s][t];
                            let rows = (man.slices[s].rows[1] - man.slices[s].rows[0]).max(1);
                            let lines = schedule::line_rows(l.halo).min(rows);
                            worst = worst.max(slice_cyc[s][t] * lines as f64 / rows as f64);
                        }
                        fill += worst;
                        dram += layer_dram[l.id][t];
                        comm = comm.max(layer_comm[l.id][t]);
                        link += layer_link[l.id][t];
                    }
                    let sync = if st.mode == StageMode::Fused {
                        band_rows as f64 * m.noc.hop_cycles as f64
                    } else {
                        0.0
                    };
                    let max_busy = busy.values().copied().fold(0.0, f64::max);
                    let dur =
                        max_busy.max((dram / dram_bw).ceil()) + fill + comm + link + sync + barrier;
                    for (&c, &b) in &busy {
                        core_busy[c] += b;
                        core_busy_t[c][t] += b;
                        core_wait[c] += dur - b;
                    }
                    step_cycles[t] += dur;
                    clock += dur;
                }
            }
        }
        timeline.push((st.id, st.mode, start, clock - start));
    }
    let host_cycles: f64 = host_dram.iter().map(|b| (b / dram_bw).ceil()).sum();
    let total_cycles = clock + host_cycles;
    for c in 0..ncores {
        for t in 0..t_steps {
            let x = core_extra[c][t];
            core_steps[c][t].add_scaled(&x, 1.0);
        }
    }
    Timed {
        core_steps,
        core_busy_t,
        core_busy,
        core_wait,
        edge_node,
        total_cycles,
        step_cycles,
        full_t_cycles,
        timeline,
        spike_packets,
        spike_hops,
    }
}
