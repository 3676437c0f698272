//! Machine descriptions: what a Lynxi-style many-core accelerator offers, in one TOML file.
//!
//! A [`Machine`] lists the mesh of cores, each core's weight and state SRAM, its lanes per
//! cycle (accumulates, multiply-accumulates, neuron updates, other vector operations), the
//! clock, the off-chip DRAM, the network on chip, and an energy table per action. Every
//! figure that is not published is named in the file's `assumed` list (dotted paths such as
//! `core.weight_sram_bytes` or `energy.sram[1].read_pj_per_byte`); [`Machine::validate`]
//! checks that each such name exists, so the list cannot silently rot.
//!
//! Presets ship as TOML files in `targets/presets/` and are embedded in the binary
//! ([`Machine::preset`]); a user's own file ([`Machine::from_file`]) goes through exactly the
//! same parser and checks. A bad file gives one error naming the file and the field.
//!
//! A card of several identical chips may name its chip preset instead of repeating it:
//! `[card] chip = "ka200-like"` plus the card's own fields (`chips`, link figures), `name`,
//! `description`, and `sources` / `assumed` added to the chip's (`hp300-like` is written so).

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Names and TOML texts of the shipped presets.
pub const PRESETS: &[(&str, &str)] = &[
    ("ka200-like", include_str!("../presets/ka200-like.toml")),
    ("tianjic-like", include_str!("../presets/tianjic-like.toml")),
    ("loihi-like", include_str!("../presets/loihi-like.toml")),
    ("hp300-like", include_str!("../presets/hp300-like.toml")),
];

/// The preset used when a target names none.
pub const DEFAULT_PRESET: &str = "ka200-like";

/// Bounds every description must respect (checked by [`Machine::validate`]).
pub const MAX_MESH_SIDE: usize = 1024;
/// Cores on a whole card; core ids are 16-bit in `routes.bin`.
pub const MAX_CORES: usize = 65535;
pub const MAX_CHIPS: usize = 64;
pub const MAX_SRAM_BYTES: u64 = 1 << 30;
pub const MAX_LANES: u64 = 1 << 20;
pub const MAX_PJ: f64 = 1e9;

/// A many-core accelerator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    pub name: String,
    pub description: String,
    /// Where the published figures come from.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Dotted names of every parameter whose value is assumed (not published).
    pub assumed: Vec<String>,
    pub mesh: Mesh,
    pub core: Core,
    pub clock: Clock,
    pub dram: Dram,
    pub noc: Noc,
    pub energy: EnergyTable,
    /// Chips on one card (absent: one chip).
    #[serde(default)]
    pub card: Card,
}

/// Several identical chips on one card, joined by chip-to-chip links: chip `k` holds global
/// cores `k * cores_per_chip ..`; traffic between chips crosses one link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Card {
    pub chips: usize,
    /// Payload bytes one chip-to-chip link moves per cycle.
    #[serde(default)]
    pub link_bytes_per_cycle: f64,
    /// Cycles from one chip's router to the next chip's.
    #[serde(default)]
    pub link_latency_cycles: u64,
    /// Energy per byte over a link.
    #[serde(default)]
    pub link_pj_per_byte: f64,
}

impl Card {
    /// Link figures used when `--chips N` is asked of a single-chip description (all
    /// assumed): 32 bytes per cycle (a x16 PCIe-4-class link at 1 GHz), 500 cycles latency,
    /// 10 pJ per byte (SerDes-class energy, ~80 pJ per 64-bit word).
    pub fn assumed_link(chips: usize) -> Card {
        Card {
            chips,
            link_bytes_per_cycle: 32.0,
            link_latency_cycles: 500,
            link_pj_per_byte: 10.0,
        }
    }
}

impl Default for Card {
    fn default() -> Card {
        Card {
            chips: 1,
            link_bytes_per_cycle: 0.0,
            link_latency_cycles: 0,
            link_pj_per_byte: 0.0,
        }
    }
}

/// Cores on a 2-D mesh, numbered row-major: core `id` sits at `(id % cols, id / cols)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mesh {
    pub cols: usize,
    pub rows: usize,
}

/// One core.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Core {
    /// SRAM holding the (stationary) weights and biases.
    pub weight_sram_bytes: u64,
    /// SRAM holding membrane potentials, activation tiles and inter-layer buffers.
    pub state_sram_bytes: u64,
    /// Accumulates (spike-driven weight additions) per cycle.
    pub ac_lanes: u64,
    /// Multiply-accumulates per cycle.
    pub mac_lanes: u64,
    /// LIF neuron updates per cycle.
    pub neuron_lanes: u64,
    /// Other elementwise operations (add, sigmoid, reductions, ...) per cycle.
    pub vector_lanes: u64,
    /// Register / operand-buffer level between weight SRAM and the lanes (weight tiles and
    /// accumulators of the stationary dataflows live here); 0 = none.
    #[serde(default)]
    pub reg_bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Clock {
    pub mhz: f64,
}

/// Off-chip memory.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dram {
    pub bytes: u64,
    pub bytes_per_cycle: f64,
}

/// Network on chip (dimension-ordered routing on the mesh, multicast trees).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Noc {
    /// Cycles a packet needs per mesh link.
    pub hop_cycles: u64,
    /// Payload bytes per packet.
    pub packet_payload_bytes: u64,
    /// Bytes of one address event (one spike sent as an event rather than a bitmap).
    pub spike_event_bytes: u64,
    /// Cycles of the barrier that closes every layer time step.
    pub barrier_cycles: u64,
}

/// Energy per action, picojoules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyTable {
    pub ac_fp16_pj: f64,
    pub ac_fp32_pj: f64,
    pub mac_fp16_pj: f64,
    pub mac_fp32_pj: f64,
    pub neuron_update_pj: f64,
    pub vector_op_pj: f64,
    pub dram_pj_per_byte: f64,
    /// One packet over one mesh link.
    pub hop_pj: f64,
    /// One byte read from the register level (`core.reg_bytes`).
    #[serde(default)]
    pub reg_pj_per_byte: f64,
    /// SRAM access energy by array size, ascending; sizes in between interpolate linearly in
    /// log(size), sizes outside use the nearest entry.
    pub sram: Vec<SramEnergy>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SramEnergy {
    pub array_bytes: u64,
    pub read_pj_per_byte: f64,
    pub write_pj_per_byte: f64,
}

/// Why a machine description was refused.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: invalid machine description: {message}")]
    Parse { origin: String, message: String },
    #[error("{origin}: {field} {message}")]
    Invalid {
        origin: String,
        field: String,
        message: String,
    },
    #[error(
        "unknown preset `{name}` (presets: {known}); or give a path to a .toml machine description"
    )]
    UnknownPreset { name: String, known: String },
}

impl Machine {
    /// Parses and validates a TOML description; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Machine, MachineError> {
        if let Some(merged) = card_of_preset(text, origin)? {
            let m: Machine = toml::Value::Table(merged).try_into().map_err(|e: toml::de::Error| MachineError::Parse {
                origin: origin.to_string(),
                message: e.message().to_string(),
            })?;
            m.validate(origin)?;
            return Ok(m);
        }
        let m: Machine = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|sp| {
                let line = text[..sp.start.min(text.len())].matches('\n').count() + 1;
                let src = text.lines().nth(line - 1).unwrap_or("");
                let src = src.split('#').next().unwrap_or("").trim();
                format!("line {line} (`{src}`): ")
            });
            MachineError::Parse {
                origin: origin.to_string(),
                message: format!("{}{}", at.unwrap_or_default(), e.message()),
            }
        })?;
        m.validate(origin)?;
        Ok(m)
    }

    /// Reads a user's machine file.
    pub fn from_file(path: &Path) -> Result<Machine, MachineError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| MachineError::Io {
            path: p.clone(),
            source,
        })?;
        Machine::from_toml(&text, &p)
    }

    /// A shipped preset by name.
    pub fn preset(name: &str) -> Result<Machine, MachineError> {
        let (n, text) = PRESETS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            MachineError::UnknownPreset {
                name: name.to_string(),
                known: PRESETS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })?;
        Machine::from_toml(text, &format!("preset {n}"))
    }

    /// A preset name or, when it looks like a path (ends in `.toml` or has a separator), a file.
    pub fn resolve(spec: &str) -> Result<Machine, MachineError> {
        if spec.ends_with(".toml") || spec.contains('/') || spec.contains('\\') {
            Machine::from_file(Path::new(spec))
        } else {
            Machine::preset(spec)
        }
    }

    /// Cores of one chip.
    pub fn cores_per_chip(&self) -> usize {
        self.mesh.cols * self.mesh.rows
    }

    /// Cores of the whole card (all chips).
    pub fn cores(&self) -> usize {
        self.cores_per_chip() * self.card.chips
    }

    /// The chip holding a (global) core.
    pub fn chip_of(&self, core: usize) -> usize {
        core / self.cores_per_chip()
    }

    /// `(x, y)` of a core on its chip.
    pub fn position(&self, core: usize) -> (usize, usize) {
        let c = core % self.cores_per_chip();
        (c % self.mesh.cols, c / self.mesh.cols)
    }

    /// The same machine as a card of `chips` chips (link figures as described; a
    /// single-chip description without them gets the assumed defaults of
    /// [`Card::assumed_link`], named in `assumed`).
    pub fn with_chips(&self, chips: usize) -> Machine {
        let mut m = self.clone();
        if chips > 1 && m.card.link_bytes_per_cycle <= 0.0 {
            m.card = Card::assumed_link(chips);
            for f in [
                "card.link_bytes_per_cycle",
                "card.link_latency_cycles",
                "card.link_pj_per_byte",
            ] {
                if !m.is_assumed(f) {
                    m.assumed.push(f.to_string());
                }
            }
        }
        m.card.chips = chips;
        m
    }

    /// Core ids along a serpentine (boustrophedon) walk of the mesh: consecutive entries are
    /// neighbours, so layers placed in order keep their traffic one hop long.
    pub fn serpentine(&self) -> Vec<usize> {
        let mut v = Vec::with_capacity(self.cores());
        for y in 0..self.mesh.rows {
            let row: Vec<usize> = (0..self.mesh.cols)
                .map(|x| y * self.mesh.cols + x)
                .collect();
            if y % 2 == 0 {
                v.extend(row);
            } else {
                v.extend(row.into_iter().rev());
            }
        }
        v
    }

    /// Seconds per cycle.
    pub fn cycle_seconds(&self) -> f64 {
        1e-6 / self.clock.mhz
    }

    /// SRAM access energy for an array of `bytes`: interpolated linearly in log(size) between
    /// the table's entries, clamped to the first and last.
    pub fn sram_energy(&self, bytes: u64) -> SramEnergy {
        let t = &self.energy.sram;
        let first = &t[0];
        let last = t.last().expect("validated: non-empty");
        let at = |e: &SramEnergy| SramEnergy {
            array_bytes: bytes,
            ..e.clone()
        };
        if bytes <= first.array_bytes {
            return at(first);
        }
        if bytes >= last.array_bytes {
            return at(last);
        }
        let i = t
            .iter()
            .position(|e| e.array_bytes >= bytes)
            .expect("inside the table");
        let (a, b) = (&t[i - 1], &t[i]);
        let f = ((bytes as f64).ln() - (a.array_bytes as f64).ln())
            / ((b.array_bytes as f64).ln() - (a.array_bytes as f64).ln());
        SramEnergy {
            array_bytes: bytes,
            read_pj_per_byte: a.read_pj_per_byte + f * (b.read_pj_per_byte - a.read_pj_per_byte),
            write_pj_per_byte: a.write_pj_per_byte
                + f * (b.write_pj_per_byte - a.write_pj_per_byte),
        }
    }

    /// Energy of one accumulate / multiply-accumulate at the given parameter width.
    pub fn ac_pj(&self, fp16: bool) -> f64 {
        if fp16 {
            self.energy.ac_fp16_pj
        } else {
            self.energy.ac_fp32_pj
        }
    }

    pub fn mac_pj(&self, fp16: bool) -> f64 {
        if fp16 {
            self.energy.mac_fp16_pj
        } else {
            self.energy.mac_fp32_pj
        }
    }

    /// Checks every field against its range (so no description can make the back end
    /// allocate absurd tables) and the `assumed` names.
    pub fn validate(&self, origin: &str) -> Result<(), MachineError> {
        let bad = |field: &str, message: String| MachineError::Invalid {
            origin: origin.to_string(),
            field: field.to_string(),
            message,
        };
        // (field, value, smallest, largest): every numeric field of the description.
        let c = &self.core;
        let e = &self.energy;
        let ranged: [(&str, f64, f64, f64); 31] = [
            ("mesh.cols", self.mesh.cols as f64, 1.0, MAX_MESH_SIDE as f64),
            ("mesh.rows", self.mesh.rows as f64, 1.0, MAX_MESH_SIDE as f64),
            ("core.weight_sram_bytes", c.weight_sram_bytes as f64, 1.0, MAX_SRAM_BYTES as f64),
            ("core.state_sram_bytes", c.state_sram_bytes as f64, 1.0, MAX_SRAM_BYTES as f64),
            ("core.ac_lanes", c.ac_lanes as f64, 1.0, MAX_LANES as f64),
            ("core.mac_lanes", c.mac_lanes as f64, 1.0, MAX_LANES as f64),
            ("core.neuron_lanes", c.neuron_lanes as f64, 1.0, MAX_LANES as f64),
            ("core.vector_lanes", c.vector_lanes as f64, 1.0, MAX_LANES as f64),
            ("core.reg_bytes", c.reg_bytes as f64, 0.0, MAX_SRAM_BYTES as f64),
            ("clock.mhz", self.clock.mhz, f64::MIN_POSITIVE, 1e5),
            ("dram.bytes", self.dram.bytes as f64, 0.0, 2f64.powi(50)),
            ("dram.bytes_per_cycle", self.dram.bytes_per_cycle, f64::MIN_POSITIVE, 1e6),
            ("noc.hop_cycles", self.noc.hop_cycles as f64, 0.0, 1e6),
            ("noc.packet_payload_bytes", self.noc.packet_payload_bytes as f64, 1.0, 1e6),
            ("noc.spike_event_bytes", self.noc.spike_event_bytes as f64, 1.0, 1024.0),
            ("noc.barrier_cycles", self.noc.barrier_cycles as f64, 0.0, 1e9),
            ("energy.ac_fp16_pj", e.ac_fp16_pj, 0.0, MAX_PJ),
            ("energy.ac_fp32_pj", e.ac_fp32_pj, 0.0, MAX_PJ),
            ("energy.mac_fp16_pj", e.mac_fp16_pj, 0.0, MAX_PJ),
            ("energy.mac_fp32_pj", e.mac_fp32_pj, 0.0, MAX_PJ),
            ("energy.neuron_update_pj", e.neuron_update_pj, 0.0, MAX_PJ),
            ("energy.vector_op_pj", e.vector_op_pj, 0.0, MAX_PJ),
            ("energy.dram_pj_per_byte", e.dram_pj_per_byte, 0.0, MAX_PJ),
            ("energy.hop_pj", e.hop_pj, 0.0, MAX_PJ),
            ("energy.reg_pj_per_byte", e.reg_pj_per_byte, 0.0, MAX_PJ),
            ("energy.sram", e.sram.len() as f64, 1.0, 64.0),
            ("card.chips", self.card.chips as f64, 1.0, MAX_CHIPS as f64),
            ("card.link_bytes_per_cycle", self.card.link_bytes_per_cycle, 0.0, 1e6),
            ("card.link_latency_cycles", self.card.link_latency_cycles as f64, 0.0, 1e9),
            ("card.link_pj_per_byte", self.card.link_pj_per_byte, 0.0, MAX_PJ),
            (
                "mesh (cols x rows x card.chips)",
                (self.mesh.cols * self.mesh.rows * self.card.chips) as f64,
                1.0,
                MAX_CORES as f64,
            ),
        ];
        for (f, v, lo, hi) in ranged {
            if !v.is_finite() || v < lo {
                let what = if lo == 0.0 { "non-negative" } else { "positive" };
                let what = if f == "energy.sram" {
                    "at least one entry".to_string()
                } else {
                    format!("{what}, found {v}")
                };
                return Err(bad(f, format!("must be {what}")));
            }
            if v > hi {
                return Err(bad(f, format!("must be at most {hi}, found {v}")));
            }
        }
        if self.card.chips > 1 && self.card.link_bytes_per_cycle <= 0.0 {
            return Err(bad(
                "card.link_bytes_per_cycle",
                format!(
                    "must be positive on a card of {} chips, found {}",
                    self.card.chips, self.card.link_bytes_per_cycle
                ),
            ));
        }
        for (i, s) in e.sram.iter().enumerate() {
            for (f, v) in [
                ("read_pj_per_byte", s.read_pj_per_byte),
                ("write_pj_per_byte", s.write_pj_per_byte),
            ] {
                if !(v.is_finite() && (0.0..=MAX_PJ).contains(&v)) {
                    return Err(bad(
                        &format!("energy.sram[{i}].{f}"),
                        format!("must be a number of pJ in [0, {MAX_PJ}], found {v}"),
                    ));
                }
            }
            if s.array_bytes == 0 || s.array_bytes > 1 << 40 {
                return Err(bad(
                    &format!("energy.sram[{i}].array_bytes"),
                    format!("must be in [1, {}], found {}", 1u64 << 40, s.array_bytes),
                ));
            }
            if i > 0 && s.array_bytes <= e.sram[i - 1].array_bytes {
                return Err(bad(
                    &format!("energy.sram[{i}].array_bytes"),
                    format!(
                        "must be larger than the previous entry's ({}), found {}",
                        e.sram[i - 1].array_bytes,
                        s.array_bytes
                    ),
                ));
            }
        }
        let known = self.parameter_names();
        for a in &self.assumed {
            if !known.contains(a) {
                return Err(bad(
                    "assumed",
                    format!("names `{a}`, which is not a parameter of this description"),
                ));
            }
        }
        Ok(())
    }

    /// Dotted names of every numeric parameter (`core.ac_lanes`, `energy.sram[0].read_pj_per_byte`).
    pub fn parameter_names(&self) -> Vec<String> {
        let v = serde_json::to_value(self).expect("serializable");
        let mut out = Vec::new();
        flatten("", &v, &mut out);
        out
    }

    /// Whether a parameter is marked assumed.
    pub fn is_assumed(&self, name: &str) -> bool {
        self.assumed.iter().any(|a| a == name)
    }
}

/// Top-level keys a card description that names its chip (`[card] chip = "PRESET"`) may
/// hold; everything else comes from the chip preset.
pub const CARD_FILE_KEYS: [&str; 5] = ["name", "description", "sources", "assumed", "card"];

/// A card description that names its chip preset (`[card] chip = "ka200-like"`) as the full
/// description: the chip preset's table with this file's `name` and `description`, its
/// `sources` and `assumed` appended to the chip's, and its `[card]` (without `chip`).
/// `None` when the text names no chip (an ordinary, self-contained description).
fn card_of_preset(text: &str, origin: &str) -> Result<Option<toml::Table>, MachineError> {
    let parse = |message: String| MachineError::Parse {
        origin: origin.to_string(),
        message,
    };
    // A text that does not parse as TOML is left to the ordinary path (its error has a line).
    let Ok(mut file) = text.parse::<toml::Table>() else {
        return Ok(None);
    };
    let Some(chip) = file
        .get_mut("card")
        .and_then(|c| c.as_table_mut())
        .and_then(|c| c.remove("chip"))
    else {
        return Ok(None);
    };
    let Some(chip) = chip.as_str() else {
        return Err(parse(format!("card.chip must be a preset name, found {chip}")));
    };
    let known = || PRESETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
    let Some((_, chip_text)) = PRESETS.iter().find(|(n, _)| *n == chip) else {
        return Err(parse(format!(
            "card.chip names `{chip}`, which is not a preset (presets: {})",
            known()
        )));
    };
    let mut merged: toml::Table = chip_text
        .parse()
        .map_err(|e: toml::de::Error| parse(format!("preset {chip}: {}", e.message())))?;
    if merged.get("card").and_then(|c| c.get("chip")).is_some() {
        return Err(parse(format!("card.chip names `{chip}`, which is itself a card")));
    }
    if let Some(k) = file.keys().find(|k| !CARD_FILE_KEYS.contains(&k.as_str())) {
        return Err(parse(format!(
            "`{k}` comes from the chip preset `{chip}` named by card.chip; a card description holds only {}",
            CARD_FILE_KEYS.join(", ")
        )));
    }
    for (k, v) in file {
        match (k.as_str(), merged.get_mut(&k)) {
            ("sources" | "assumed", Some(toml::Value::Array(base))) => match v {
                toml::Value::Array(extra) => {
                    for x in extra {
                        if !base.contains(&x) {
                            base.push(x);
                        }
                    }
                }
                other => return Err(parse(format!("`{k}` must be a list, found {other}"))),
            },
            _ => {
                merged.insert(k, v);
            }
        }
    }
    Ok(Some(merged))
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&p, x, out);
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                if x.is_object() {
                    flatten(&format!("{prefix}[{i}]"), x, out);
                }
            }
        }
        serde_json::Value::Number(_) => out.push(prefix.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_names_only_real_parameters() {
        for (name, _) in PRESETS {
            let m = Machine::preset(name).unwrap();
            assert_eq!(&m.name, name);
            assert!(!m.assumed.is_empty());
        }
        let ka = Machine::preset("ka200-like").unwrap();
        assert_eq!(ka.cores(), 192);
        assert!(ka.is_assumed("core.weight_sram_bytes"));
        assert!(!ka.is_assumed("energy.mac_fp32_pj"));
    }

    #[test]
    fn bad_descriptions_name_the_field() {
        let text = PRESETS[0].1;
        let e = Machine::from_toml(&text.replace("mac_lanes = 64", "mac_lanes = 0"), "m.toml")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "m.toml: core.mac_lanes must be positive, found 0"
        );
        let e = Machine::from_toml(&text.replace("mac_lanes = 64 ", "mac_lane = 64 "), "m.toml")
            .unwrap_err();
        assert!(e.to_string().contains("mac_lane"), "{e}");
        let e = Machine::from_toml(&text.replace("\"clock.mhz\",", "\"clock.ghz\","), "m.toml")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "m.toml: assumed names `clock.ghz`, which is not a parameter of this description"
        );
        let e = Machine::preset("ka300").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("unknown preset `ka300` (presets: ka200-like, tianjic-like, loihi-like, hp300-like)"));
    }

    #[test]
    fn a_card_preset_is_its_chip_preset_plus_the_card() {
        let ka = Machine::preset("ka200-like").unwrap();
        let hp = Machine::preset("hp300-like").unwrap();
        assert_eq!(hp.name, "hp300-like");
        assert_eq!(hp.card.chips, 4);
        assert_eq!(hp.card.link_bytes_per_cycle, 32.0);
        assert_eq!(hp.card.link_latency_cycles, 500);
        assert_eq!(hp.card.link_pj_per_byte, 10.0);
        // Every chip figure is the chip preset's, and its assumptions stay named.
        assert_eq!(
            (&hp.mesh, &hp.core, &hp.clock, &hp.dram, &hp.noc, &hp.energy, &hp.sources),
            (&ka.mesh, &ka.core, &ka.clock, &ka.dram, &ka.noc, &ka.energy, &ka.sources)
        );
        assert_eq!(hp.assumed[..ka.assumed.len()], ka.assumed[..]);
        assert_eq!(
            hp.assumed[ka.assumed.len()..],
            ["card.chips", "card.link_bytes_per_cycle", "card.link_latency_cycles", "card.link_pj_per_byte"]
        );
        // A card file holds only the card; the chip's fields come from its preset.
        let card = "name = \"c\"\ndescription = \"d\"\nassumed = []\n[card]\nchip = \"ka200-like\"\nchips = 2\nlink_bytes_per_cycle = 8.0\n";
        let m = Machine::from_toml(card, "c.toml").unwrap();
        assert_eq!((m.cores(), m.card.chips, m.card.link_latency_cycles), (384, 2, 0));
        let e = Machine::from_toml(&format!("{card}[clock]\nmhz = 2000.0\n"), "c.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "c.toml: invalid machine description: `clock` comes from the chip preset `ka200-like` named by card.chip; a card description holds only name, description, sources, assumed, card"
        );
        let e = Machine::from_toml(&card.replace("\"ka200-like\"", "\"ka9\""), "c.toml").unwrap_err();
        assert!(e.to_string().contains("card.chip names `ka9`, which is not a preset (presets: ka200-like"), "{e}");
        let e = Machine::from_toml(&card.replace("\"ka200-like\"", "\"hp300-like\""), "c.toml").unwrap_err();
        assert!(e.to_string().ends_with("card.chip names `hp300-like`, which is itself a card"), "{e}");
        let e = Machine::from_toml(&card.replace("chips = 2", "chips = 0"), "c.toml").unwrap_err();
        assert_eq!(e.to_string(), "c.toml: card.chips must be positive, found 0");
    }

    #[test]
    fn sram_energy_interpolates_in_log_size() {
        let m = Machine::preset("ka200-like").unwrap();
        assert_eq!(m.sram_energy(8192).read_pj_per_byte, 1.25);
        assert_eq!(m.sram_energy(1024).read_pj_per_byte, 1.25);
        assert_eq!(m.sram_energy(16384).read_pj_per_byte, 1.875);
        assert_eq!(m.sram_energy(1 << 30).read_pj_per_byte, 12.5);
        // 256 KiB lies 3/5 of the way from 32 KiB to 1 MiB in log size.
        assert!((m.sram_energy(262144).read_pj_per_byte - (2.5 + 0.6 * 10.0)).abs() < 1e-12);
    }

    #[test]
    fn serpentine_walk_visits_neighbours() {
        let m = Machine::preset("ka200-like").unwrap();
        let s = m.serpentine();
        assert_eq!(s.len(), m.cores());
        for w in s.windows(2) {
            let (a, b) = (m.position(w[0]), m.position(w[1]));
            assert_eq!(a.0.abs_diff(b.0) + a.1.abs_diff(b.1), 1);
        }
    }
}
