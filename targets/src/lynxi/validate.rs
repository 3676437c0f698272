//! Checks of a manifest: every index points at something that exists, every slice, region
//! and blob range fits its capacity. The compiler runs it before emitting (a mapping that
//! breaks a capacity is never written) and [`super::load_dir`] runs it on what it reads, so
//! a hand-edited manifest is an error, never a panic in the simulator.

use super::{Deployment, Manifest};

/// Largest input side a manifest may declare.
pub const MAX_INPUT_SIDE: usize = 1 << 16;

/// Validates `man`; `dep` (when compiling) supplies the graph and blob sizes, otherwise
/// they come from [`validate_loaded`].
pub fn validate(man: &Manifest, dep: Option<&Deployment>) -> Result<(), String> {
    let Some(dep) = dep else {
        return check(man, &|_| true, None);
    };
    let art = spikerc_compiler::Artifact::from_bytes(&dep.artifact, "model.spk")
        .map_err(|e| e.to_string())?;
    let ids: std::collections::BTreeSet<usize> = art.graph.ids().map(|i| i.index()).collect();
    check(
        man,
        &|i| ids.contains(&i),
        Some((dep.weights.len() as u64, dep.routes.len() as u64)),
    )
}

/// Validates a manifest read from disk against its graph and blobs.
pub fn validate_loaded(
    man: &Manifest,
    graph: &spikerc_compiler::Verified,
    weights: u64,
    routes: u64,
) -> Result<(), String> {
    if man.model.time_steps != graph.time_steps() {
        return Err(format!(
            "model.time_steps is {}, model.spk has T = {}",
            man.model.time_steps,
            graph.time_steps()
        ));
    }
    let ids: std::collections::BTreeSet<usize> = graph.ids().map(|i| i.index()).collect();
    check(man, &|i| ids.contains(&i), Some((weights, routes)))
}

fn check(
    man: &Manifest,
    is_node: &dyn Fn(usize) -> bool,
    blobs: Option<(u64, u64)>,
) -> Result<(), String> {
    let m = &man.machine;
    m.validate("manifest.json machine").map_err(|e| e.to_string())?;
    let [h, w] = man.model.input_size;
    if h == 0 || w == 0 || h > MAX_INPUT_SIDE || w > MAX_INPUT_SIDE {
        return Err(format!(
            "model.input_size {h}x{w}: sides must be in [1, {MAX_INPUT_SIDE}]"
        ));
    }
    let (nl, ns, nc, ne, nst) = (
        man.layers.len(),
        man.slices.len(),
        man.cores.len(),
        man.edges.len(),
        man.stages.len(),
    );
    if nc != m.cores() {
        return Err(format!(
            "cores lists {nc} cores, the machine has {} ({} chips x {})",
            m.cores(),
            m.card.chips,
            m.cores_per_chip()
        ));
    }
    let idx = |what: &str, i: usize, n: usize| -> Result<(), String> {
        if i < n {
            Ok(())
        } else {
            Err(format!("{what} is {i}, must be below {n}"))
        }
    };
    for (i, s) in man.slices.iter().enumerate() {
        if s.id != i {
            return Err(format!("slices[{i}].id is {}, expected {i}", s.id));
        }
        idx(&format!("slices[{i}].layer"), s.layer, nl)?;
        idx(&format!("slices[{i}].core"), s.core, nc)?;
        let l = &man.layers[s.layer];
        if s.channels[0] >= s.channels[1] || s.channels[1] > l.channels {
            return Err(format!(
                "slices[{i}].channels {:?} is not a range inside [0, {})",
                s.channels, l.channels
            ));
        }
        if s.rows[0] >= s.rows[1] || s.rows[1] > MAX_INPUT_SIDE {
            return Err(format!("slices[{i}].rows {:?} is not a row range", s.rows));
        }
        if s.weight_bytes > m.core.weight_sram_bytes {
            return Err(format!(
                "slices[{i}] needs {} bytes of weights, core weight SRAM holds {}",
                s.weight_bytes, m.core.weight_sram_bytes
            ));
        }
        if s.tile[0] == 0 || s.tile[1] == 0 || s.tiles == 0 {
            return Err(format!("slices[{i}].tile must be positive"));
        }
    }
    for (i, l) in man.layers.iter().enumerate() {
        idx(&format!("layers[{i}].id"), l.id, i + 1)?;
        if l.id != i {
            return Err(format!("layers[{i}].id is {}, expected {i}", l.id));
        }
        if l.channels == 0 {
            return Err(format!("layers[{i}].channels must be positive"));
        }
        idx(&format!("layers[{i}].stage"), l.stage, nst)?;
        idx(&format!("layers[{i}].chip"), l.chip, m.card.chips)?;
        for &s in &l.slices {
            idx(&format!("layers[{i}].slices[..]"), s, ns)?;
            if man.slices[s].layer != i {
                return Err(format!("layers[{i}] lists slice {s}, which belongs to layer {}", man.slices[s].layer));
            }
        }
        for &n in &l.nodes {
            if !is_node(n) {
                return Err(format!("layers[{i}].nodes names node {n}, which model.spk lacks"));
            }
        }
    }
    for (i, st) in man.stages.iter().enumerate() {
        if st.id != i {
            return Err(format!("stages[{i}].id is {}, expected {i}", st.id));
        }
        for &l in &st.layers {
            idx(&format!("stages[{i}].layers[..]"), l, nl)?;
        }
    }
    for (i, e) in man.edges.iter().enumerate() {
        if e.id != i {
            return Err(format!("edges[{i}].id is {}, expected {i}", e.id));
        }
        if !is_node(e.node) {
            return Err(format!("edges[{i}].node names node {}, which model.spk lacks", e.node));
        }
        if let Some(f) = e.from_layer {
            idx(&format!("edges[{i}].from_layer"), f, nl)?;
        }
        if let Some(t) = e.to_layer {
            idx(&format!("edges[{i}].to_layer"), t, nl)?;
        }
        if e.from_layer.is_some() && e.to_layer.is_some() && e.sram_bytes + e.dram_bytes != e.buffer_bytes {
            return Err(format!(
                "edges[{i}]: sram_bytes {} + dram_bytes {} != buffer_bytes {}",
                e.sram_bytes, e.dram_bytes, e.buffer_bytes
            ));
        }
    }
    for (i, c) in man.cores.iter().enumerate() {
        if c.id != i {
            return Err(format!("cores[{i}].id is {}, expected {i}", c.id));
        }
        for &s in &c.slices {
            idx(&format!("cores[{i}].slices[..]"), s, ns)?;
            if man.slices[s].core != i {
                return Err(format!("cores[{i}] lists slice {s}, which sits on core {}", man.slices[s].core));
            }
        }
        let caps = [
            ("weight", m.core.weight_sram_bytes, c.weight_used),
            ("state", m.core.state_sram_bytes, c.state_used),
        ];
        for (what, cap, used) in caps {
            if used > cap {
                return Err(format!(
                    "cores[{i}] uses {used} bytes of {what} SRAM, it holds {cap}: short by {}",
                    used - cap
                ));
            }
        }
        for (k, r) in c.memory.iter().enumerate() {
            let cap = match r.sram.as_str() {
                "weight" => m.core.weight_sram_bytes,
                "state" => m.core.state_sram_bytes,
                other => return Err(format!("cores[{i}].memory[{k}].sram is `{other}`, expected weight or state")),
            };
            if r.offset.checked_add(r.bytes).is_none_or(|end| end > cap) {
                return Err(format!(
                    "cores[{i}].memory[{k}] ({}) ends at {} + {}, past the {} bytes of {} SRAM",
                    r.what, r.offset, r.bytes, cap, r.sram
                ));
            }
        }
        for (k, r) in c.routes.iter().enumerate() {
            idx(&format!("cores[{i}].routes[{k}].edge"), r.edge, ne)?;
            idx(&format!("cores[{i}].routes[{k}].slice"), r.slice, ns)?;
            for &d in &r.dests {
                idx(&format!("cores[{i}].routes[{k}].dests[..]"), d, nc)?;
            }
            if !(r.fraction.is_finite() && (0.0..=1.0).contains(&r.fraction)) {
                return Err(format!("cores[{i}].routes[{k}].fraction {} is not in [0, 1]", r.fraction));
            }
        }
        if let Some((wl, rl)) = blobs {
            for (what, [a, b], len) in [("weights_blob", c.weights_blob, wl), ("routes_blob", c.routes_blob, rl)] {
                if a > b || b > len {
                    return Err(format!("cores[{i}].{what} [{a}, {b}) is outside the {len}-byte file"));
                }
            }
        }
    }
    Ok(())
}
