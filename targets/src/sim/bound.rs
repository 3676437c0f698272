//! The report's derived views: the lower bound (compute floor and compulsory DRAM traffic),
//! stages, layers, DRAM tensors, chips and the values of the assumed parameters.

use std::collections::BTreeMap;

use spikerc_compiler::NodeId;

use super::report::{ChipReport, CoreReport, LayerReport, LowerBound, StageReport, TensorReport};
use super::timing::Timed;
use super::Counts;
use crate::layers::NodeInfo;
use crate::lynxi::Manifest;
use crate::schedule::{self, BufferKind};

pub(super) struct Extras {
    pub hops_per_spike: f64,
    pub step_cycles: Vec<u64>,
    pub full_t_cycles: u64,
    pub stages: Vec<StageReport>,
    pub layers: Vec<LayerReport>,
    pub dram_tensors: Vec<TensorReport>,
    pub chips: Vec<ChipReport>,
    pub assumed_values: BTreeMap<String, f64>,
}

fn mode_name(m: schedule::StageMode) -> String {
    serde_json::to_value(m)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
pub(super) fn extras(
    man: &Manifest,
    g: &spikerc_compiler::Verified,
    _infos: &BTreeMap<NodeId, NodeInfo>,
    timed: &Timed,
    _total: &Counts,
    cores: &[CoreReport],
    images: usize,
    _fp16: bool,
) -> Extras {
    let per = 1.0 / images as f64;
    let stages = timed
        .timeline
        .iter()
        .map(|&(id, mode, start, cycles)| {
            let st = &man.stages[id];
            StageReport {
                id,
                mode: mode_name(mode),
                chip: st.chip,
                first_layer: st
                    .layers
                    .first()
                    .map(|&l| man.layers[l].name.clone())
                    .unwrap_or_default(),
                layers: st.layers.len(),
                start_cycles: (start * per).round() as u64,
                cycles: (cycles * per).round() as u64,
                reason: st.reason.clone(),
            }
        })
        .collect();
    let layers = man
        .layers
        .iter()
        .map(|l| LayerReport {
            name: l.name.clone(),
            stage: l.stage,
            mode: mode_name(man.stages[l.stage].mode),
            chip: l.chip,
            slices: l.slices.len(),
            dataflow: l.dataflow.map(|d| d.label()),
        })
        .collect();
    let by_index: BTreeMap<usize, NodeId> = g.ids().map(|i| (i.index(), i)).collect();
    let mut tensors: BTreeMap<usize, TensorReport> = BTreeMap::new();
    for e in &man.edges {
        if e.from_layer.is_none() || e.to_layer.is_none() {
            continue;
        }
        let node = by_index[&e.node];
        let traffic: f64 = timed
            .edge_node
            .get(&node)
            .map(|v| v.iter().map(|c| c.dram_bytes).sum())
            .unwrap_or(0.0);
        tensors.entry(e.node).or_insert_with(|| TensorReport {
            name: g.node(node).name.clone(),
            buffer: serde_json::to_value(e.buffer)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            buffer_bytes: e.buffer_bytes,
            sram_bytes: e.sram_bytes,
            dram_bytes: e.dram_bytes,
            dram_traffic_bytes: traffic * per,
        });
    }
    let mut dram_tensors: Vec<TensorReport> = tensors
        .into_values()
        .filter(|t| t.dram_traffic_bytes > 0.0)
        .collect();
    dram_tensors.sort_by(|a, b| {
        b.dram_traffic_bytes
            .total_cmp(&a.dram_traffic_bytes)
            .then(a.name.cmp(&b.name))
    });
    let m = &man.machine;
    let chips = (0..m.card.chips)
        .map(|chip| {
            let on: Vec<&CoreReport> = cores
                .iter()
                .filter(|c| m.chip_of(c.id) == chip && c.slices > 0)
                .collect();
            ChipReport {
                chip,
                cores_used: on.len(),
                mean_utilisation: if on.is_empty() {
                    0.0
                } else {
                    on.iter().map(|c| c.utilisation).sum::<f64>() / on.len() as f64
                },
                energy_pj: cores
                    .iter()
                    .filter(|c| m.chip_of(c.id) == chip)
                    .map(|c| c.energy_pj)
                    .sum(),
            }
        })
        .collect();
    let values = serde_json::to_value(m).unwrap_or_default();
    let assumed_values = m
        .assumed
        .iter()
        .filter_map(|a| lookup(&values, a).map(|v| (a.clone(), v)))
        .collect();
    Extras {
        hops_per_spike: if timed.spike_packets > 0.0 {
            timed.spike_hops / timed.spike_packets
        } else {
            0.0
        },
        step_cycles: timed
            .step_cycles
            .iter()
            .map(|c| (c * per).round() as u64)
            .collect(),
        full_t_cycles: (timed.full_t_cycles * per).round() as u64,
        stages,
        layers,
        dram_tensors,
        chips,
        assumed_values,
    }
}

/// The value of a dotted parameter name (`energy.sram[1].read_pj_per_byte`).
fn lookup(v: &serde_json::Value, name: &str) -> Option<f64> {
    let mut cur = v;
    for part in name.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        cur = cur.get(key)?;
        if let Some(i) = index {
            cur = cur.get(i)?;
        }
    }
    cur.as_f64()
}

/// Compute floor and compulsory DRAM traffic: whatever the schedule, a tensor a full-T layer
/// reads (or that waits across one) exists whole; the part beyond one chip's state SRAM
/// must go to DRAM and come back once.
#[allow(clippy::too_many_arguments)]
pub(super) fn lower_bound(
    man: &Manifest,
    _g: &spikerc_compiler::Verified,
    _infos: &BTreeMap<NodeId, NodeInfo>,
    total: &Counts,
    images: usize,
    fp16: bool,
    latency_cycles: f64,
    energy_pj: f64,
) -> LowerBound {
    let m = &man.machine;
    let per = 1.0 / images as f64;
    let cores = m.cores() as f64;
    let c = &m.core;
    let compute = (total.ac / c.ac_lanes as f64
        + total.mac / c.mac_lanes as f64
        + total.neuron_updates / c.neuron_lanes as f64
        + total.vector_ops / c.vector_lanes as f64)
        / cores
        * per;
    let needs: Vec<bool> = man.layers.iter().map(|l| l.full_t).collect();
    let (stage_of, full) = schedule::stages(&needs);
    let chip_state = (c.state_sram_bytes * m.cores_per_chip() as u64) as f64;
    let mut seen = std::collections::BTreeSet::new();
    let mut compulsory = 0.0;
    for e in &man.edges {
        let (Some(f), Some(t)) = (e.from_layer, e.to_layer) else {
            continue;
        };
        if schedule::edge_buffer(&stage_of, &full, f, t, true) == BufferKind::FullT
            && seen.insert(e.node)
        {
            compulsory += 2.0 * (e.bytes as f64 - chip_state).max(0.0);
        }
    }
    let bound_cycles = compute.max(compulsory / m.dram.bytes_per_cycle);
    let e = &m.energy;
    let ops_energy = (total.ac * m.ac_pj(fp16)
        + total.mac * m.mac_pj(fp16)
        + total.neuron_updates * e.neuron_update_pj
        + total.vector_ops * e.vector_op_pj)
        * per;
    let bound_energy = ops_energy + compulsory * e.dram_pj_per_byte;
    LowerBound {
        compute_cycles: compute,
        compulsory_dram_bytes: compulsory,
        latency_cycles: bound_cycles,
        latency_ms: bound_cycles * m.cycle_seconds() * 1e3,
        energy_pj: bound_energy,
        latency_ratio: if bound_cycles > 0.0 {
            latency_cycles / bound_cycles
        } else {
            0.0
        },
        energy_ratio: if bound_energy > 0.0 {
            energy_pj / bound_energy
        } else {
            0.0
        },
    }
}
