//! The simulation report: JSON (serde), a plain-text table for the terminal, and a
//! self-contained HTML page with inline SVG charts (no scripts, no network).
//!
//! Per image: `latency_*`, `energy_pj`, `paper_energy_pj`, `ann_equivalent_energy_pj`,
//! `energy_by_action`, module and core energies (a batch is divided by its image count).
//! Over the whole input batch: `ops`, module counts, `steps`.
//!
//! The JSON document is [`Report::document`] (`schema_version` [`REPORT_SCHEMA_VERSION`]; the
//! fields are described in `docs/json.md`): pJ maps are named `energy_by_action_pj`, byte
//! counts are integers (accounted fractionally, written rounded).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Version of the simulation report document; bumped on any incompatible change of its fields.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// A byte count accounted as a fraction (an average over slices), written as a whole number.
fn whole_bytes<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(v.round().max(0.0) as u64)
}

/// Operation totals over the input batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ops {
    pub ac: u64,
    pub mac: u64,
    pub neuron_updates: u64,
    pub vector_ops: u64,
    pub spikes: u64,
    pub dram_bytes: u64,
    pub packets: u64,
    pub packet_hops: u64,
    #[serde(serialize_with = "whole_bytes")]
    pub weight_sram_read_bytes: f64,
    #[serde(serialize_with = "whole_bytes")]
    pub state_sram_read_bytes: f64,
    #[serde(serialize_with = "whole_bytes")]
    pub state_sram_write_bytes: f64,
    #[serde(serialize_with = "whole_bytes")]
    pub reg_read_bytes: f64,
    /// Bytes over chip-to-chip links (0 on one chip).
    #[serde(serialize_with = "whole_bytes")]
    pub chip_link_bytes: f64,
}

/// One stage of the schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    pub id: usize,
    pub mode: String,
    pub chip: usize,
    pub first_layer: String,
    pub layers: usize,
    pub start_cycles: u64,
    pub cycles: u64,
    pub reason: String,
}

/// Schedule and dataflow of one layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerReport {
    pub name: String,
    pub stage: usize,
    pub mode: String,
    pub chip: usize,
    pub slices: usize,
    pub dataflow: Option<String>,
}

/// An inter-layer tensor and what it costs in DRAM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorReport {
    pub name: String,
    pub buffer: String,
    pub buffer_bytes: u64,
    pub sram_bytes: u64,
    pub dram_bytes: u64,
    /// DRAM bytes moved per image (writes + reads).
    #[serde(serialize_with = "whole_bytes")]
    pub dram_traffic_bytes: f64,
}

/// One chip of the card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChipReport {
    pub chip: usize,
    pub cores_used: usize,
    pub mean_utilisation: f64,
    pub energy_pj: f64,
}

/// What no mapping of this model on this machine can beat, and how far the result is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LowerBound {
    /// Every AC, MAC, neuron update and vector op spread evenly over all lanes of all cores.
    pub compute_cycles: f64,
    /// Tensors that must exist whole (all T, for a full-T consumer) beyond one chip's state
    /// SRAM: written and read back once each.
    #[serde(serialize_with = "whole_bytes")]
    pub compulsory_dram_bytes: f64,
    pub latency_cycles: f64,
    pub latency_ms: f64,
    /// Operations at the table's energies + the compulsory DRAM traffic.
    pub energy_pj: f64,
    /// Achieved / bound.
    pub latency_ratio: f64,
    pub energy_ratio: f64,
}

/// One source module (node name).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModuleReport {
    pub name: String,
    pub ac: u64,
    pub mac: u64,
    pub neuron_updates: u64,
    pub vector_ops: u64,
    pub spikes_in: u64,
    pub spikes_out: u64,
    /// LIF modules: output spikes per neuron update; event-driven convs: input firing rate.
    pub firing_rate: Option<f64>,
    pub energy_pj: f64,
    #[serde(rename = "energy_by_action_pj")]
    pub energy_by_action: BTreeMap<String, f64>,
}

/// Counts of one time step (of one core, or of the chip).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepCounts {
    pub t: usize,
    pub ac: u64,
    pub mac: u64,
    pub neuron_updates: u64,
    pub busy_cycles: u64,
    pub packets: u64,
    pub dram_bytes: u64,
}

/// One core.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoreReport {
    pub id: usize,
    pub x: usize,
    pub y: usize,
    pub slices: usize,
    pub layers: Vec<String>,
    pub busy_cycles: u64,
    pub barrier_wait_cycles: u64,
    pub utilisation: f64,
    pub energy_pj: f64,
    pub steps: Vec<StepCounts>,
}

/// The report of one simulation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub model: String,
    pub preset: String,
    pub machine: String,
    pub precision: String,
    /// The user's image size, and the size the deployment runs (reflect-padded to the
    /// model's multiple).
    pub image_size: [usize; 2],
    pub input_size: [usize; 2],
    /// The schedule asked for and the chips of the card.
    pub schedule: String,
    pub chips: usize,
    pub images: usize,
    pub time_steps: usize,
    pub latency_cycles: u64,
    pub latency_ms: f64,
    /// Full figure: operations, SRAM, DRAM, network, neuron updates (machine energy table).
    pub energy_pj: f64,
    pub average_power_mw: f64,
    /// Eq. 1 of the SpikerIR paper: sum of fr x 0.9 pJ x dense AC ops + 4.6 pJ x MACs.
    pub paper_energy_pj: f64,
    /// The same architecture as an ANN: every conv (spiking ones too) dense, T = 1, 4.6 pJ/MAC.
    pub ann_equivalent_energy_pj: f64,
    /// `paper_energy_pj / ann_equivalent_energy_pj`.
    #[serde(rename = "snn_ann_energy_ratio")]
    pub snn_ann_ratio: f64,
    pub ops: Ops,
    #[serde(rename = "energy_by_action_pj")]
    pub energy_by_action: BTreeMap<String, f64>,
    pub cores_used: usize,
    pub mean_utilisation: f64,
    /// Mesh links per spike-carrying packet (measured), and the compiler's estimates for
    /// this placement and for the serpentine walk.
    pub hops_per_spike: f64,
    pub hops_per_spike_placed_estimate: f64,
    pub hops_per_spike_serpentine_estimate: f64,
    /// The estimates over all on-chip traffic (wire bytes of spikes and real values): the
    /// placement's objective, never above the serpentine walk's.
    pub hops_per_byte_placed_estimate: f64,
    pub hops_per_byte_serpentine_estimate: f64,
    pub lower_bound: LowerBound,
    /// Cycles per time step (streaming stages) and of the full-T stages, per image.
    pub step_cycles: Vec<u64>,
    pub full_t_cycles: u64,
    pub stages: Vec<StageReport>,
    pub layers: Vec<LayerReport>,
    /// Inter-layer tensors with DRAM traffic, most first.
    pub dram_tensors: Vec<TensorReport>,
    pub chip_reports: Vec<ChipReport>,
    pub steps: Vec<StepCounts>,
    pub modules: Vec<ModuleReport>,
    pub cores: Vec<CoreReport>,
    /// Machine parameters that are assumed, not published.
    pub assumed: Vec<String>,
    /// Their values.
    pub assumed_values: BTreeMap<String, f64>,
}

impl Report {
    /// The JSON document (`simulate --report`, Python `Deployment.simulate`): the report's
    /// fields and `schema_version`.
    pub fn document(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("a report serializes");
        if let Some(m) = v.as_object_mut() {
            m.insert("schema_version".into(), REPORT_SCHEMA_VERSION.into());
        }
        v
    }
}

/// `1234567.0` pJ as `1.235 uJ`.
pub fn energy(pj: f64) -> String {
    let a = pj.abs();
    if a >= 1e12 {
        format!("{:.3} J", pj / 1e12)
    } else if a >= 1e9 {
        format!("{:.3} mJ", pj / 1e9)
    } else if a >= 1e6 {
        format!("{:.3} uJ", pj / 1e6)
    } else if a >= 1e3 {
        format!("{:.3} nJ", pj / 1e3)
    } else {
        format!("{pj:.1} pJ")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Report {
    /// A readable summary table; `top` modules by energy.
    pub fn table(&self, top: usize) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} on {} ({}), {}x{}, T={}, {} image(s)",
            self.model,
            self.preset,
            self.precision,
            self.input_size[0],
            self.input_size[1],
            self.time_steps,
            self.images
        );
        if self.image_size != self.input_size {
            let _ = writeln!(
                s,
                "  image              {}x{} (run reflect-padded to {}x{})",
                self.image_size[0], self.image_size[1], self.input_size[0], self.input_size[1]
            );
        }
        let _ = writeln!(
            s,
            "  schedule           {} on {} chip(s): {}",
            self.schedule,
            self.chips,
            self.stage_summary()
        );
        let _ = writeln!(
            s,
            "  latency            {} cycles = {:.3} ms",
            self.latency_cycles, self.latency_ms
        );
        let lb = &self.lower_bound;
        let _ = writeln!(
            s,
            "  lower bound        {:.3} ms, {} (compute floor {:.3} ms, compulsory DRAM {}): latency x{:.2}, energy x{:.2} of it",
            lb.latency_ms,
            energy(lb.energy_pj),
            lb.compute_cycles * self.latency_ms / self.latency_cycles.max(1) as f64,
            crate::lynxi::kib(lb.compulsory_dram_bytes as u64),
            lb.latency_ratio,
            lb.energy_ratio
        );
        let _ = writeln!(
            s,
            "  energy per image   {}   (average power {:.1} mW)",
            energy(self.energy_pj),
            self.average_power_mw
        );
        let _ = writeln!(
            s,
            "  paper figure (Eq.1) {}   ANN equivalent {}   SNN/ANN {:.3}",
            energy(self.paper_energy_pj),
            energy(self.ann_equivalent_energy_pj),
            self.snn_ann_ratio
        );
        let _ = writeln!(
            s,
            "  ops                AC {}  MAC {}  neuron updates {}  spikes {}",
            self.ops.ac, self.ops.mac, self.ops.neuron_updates, self.ops.spikes
        );
        let _ = writeln!(
            s,
            "  cores used         {} (mean utilisation {:.1} %); hops per spike {:.2} (placement estimate {:.2}, serpentine walk {:.2}); hops per byte, all traffic: placement {:.2}, serpentine {:.2}",
            self.cores_used,
            100.0 * self.mean_utilisation,
            self.hops_per_spike,
            self.hops_per_spike_placed_estimate,
            self.hops_per_spike_serpentine_estimate,
            self.hops_per_byte_placed_estimate,
            self.hops_per_byte_serpentine_estimate
        );
        let _ = writeln!(
            s,
            "  DRAM               {} moved{}",
            crate::lynxi::kib(self.ops.dram_bytes),
            if self.chips > 1 {
                format!(
                    "; chip links {}",
                    crate::lynxi::kib(self.ops.chip_link_bytes as u64)
                )
            } else {
                String::new()
            }
        );
        let _ = writeln!(s, "  energy by action:");
        let mut acts: Vec<(&String, &f64)> = self.energy_by_action.iter().collect();
        acts.sort_by(|a, b| b.1.total_cmp(a.1).then(a.0.cmp(b.0)));
        for (a, e) in acts {
            let _ = writeln!(
                s,
                "    {:<18} {:>14} {:>6.1} %",
                a,
                energy(*e),
                100.0 * e / self.energy_pj.max(f64::MIN_POSITIVE)
            );
        }
        let mut mods: Vec<&ModuleReport> = self.modules.iter().collect();
        mods.sort_by(|a, b| {
            b.energy_pj
                .total_cmp(&a.energy_pj)
                .then(a.name.cmp(&b.name))
        });
        let _ = writeln!(s, "  top {} modules by energy:", top.min(mods.len()));
        let _ = writeln!(
            s,
            "    {:<40} {:>14} {:>7} {:>12} {:>12} {:>6}",
            "module", "energy", "share", "AC", "MAC", "fr"
        );
        for m in mods.iter().take(top) {
            let fr = m
                .firing_rate
                .map(|f| format!("{f:.3}"))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                s,
                "    {:<40} {:>14} {:>6.1}% {:>12} {:>12} {:>6}",
                m.name,
                energy(m.energy_pj),
                100.0 * m.energy_pj / self.energy_pj.max(f64::MIN_POSITIVE),
                m.ac,
                m.mac,
                fr
            );
        }
        s
    }

    /// `pipelined 12, full-t 16` — stages by mode.
    pub fn stage_summary(&self) -> String {
        let mut by: BTreeMap<&str, usize> = BTreeMap::new();
        for st in &self.stages {
            *by.entry(st.mode.as_str()).or_default() += 1;
        }
        by.iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A self-contained HTML page.
    pub fn html(&self) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>spikerc simulation: {}</title>\n<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}}td:first-child,th:first-child{{text-align:left}}h2{{margin-top:1.5em}}</style></head><body>\n",
            esc(&self.model)
        );
        let _ = writeln!(h, "<h1>{} on {}</h1>", esc(&self.model), esc(&self.preset));
        let _ = writeln!(h, "<table>");
        let rows = [
            (
                "input",
                format!(
                    "T={}, {} image(s), {}",
                    self.time_steps, self.images, self.precision
                ),
            ),
            (
                "image",
                format!(
                    "{}x{}{}",
                    self.image_size[0],
                    self.image_size[1],
                    if self.image_size != self.input_size {
                        format!(
                            " (run reflect-padded to {}x{})",
                            self.input_size[0], self.input_size[1]
                        )
                    } else {
                        String::new()
                    }
                ),
            ),
            (
                "schedule",
                format!(
                    "{} on {} chip(s): {}",
                    self.schedule,
                    self.chips,
                    self.stage_summary()
                ),
            ),
            (
                "latency",
                format!("{} cycles = {:.3} ms", self.latency_cycles, self.latency_ms),
            ),
            (
                "lower bound",
                format!(
                    "{:.3} ms, {} (compulsory DRAM {}); achieved x{:.2} latency, x{:.2} energy",
                    self.lower_bound.latency_ms,
                    energy(self.lower_bound.energy_pj),
                    crate::lynxi::kib(self.lower_bound.compulsory_dram_bytes as u64),
                    self.lower_bound.latency_ratio,
                    self.lower_bound.energy_ratio
                ),
            ),
            (
                "hops per spike",
                format!(
                    "{:.2} (placement estimate {:.2}, serpentine walk {:.2}); per byte of all traffic, the placement's objective: {:.2} placed, {:.2} serpentine",
                    self.hops_per_spike,
                    self.hops_per_spike_placed_estimate,
                    self.hops_per_spike_serpentine_estimate,
                    self.hops_per_byte_placed_estimate,
                    self.hops_per_byte_serpentine_estimate
                ),
            ),
            (
                "DRAM / chip links",
                format!(
                    "{} / {}",
                    crate::lynxi::kib(self.ops.dram_bytes),
                    crate::lynxi::kib(self.ops.chip_link_bytes as u64)
                ),
            ),
            ("energy per image", energy(self.energy_pj)),
            ("average power", format!("{:.1} mW", self.average_power_mw)),
            ("paper figure (Eq. 1)", energy(self.paper_energy_pj)),
            ("ANN equivalent", energy(self.ann_equivalent_energy_pj)),
            ("SNN / ANN", format!("{:.3}", self.snn_ann_ratio)),
            (
                "AC / MAC / neuron updates",
                format!(
                    "{} / {} / {}",
                    self.ops.ac, self.ops.mac, self.ops.neuron_updates
                ),
            ),
            (
                "cores used",
                format!(
                    "{} (mean utilisation {:.1} %)",
                    self.cores_used,
                    100.0 * self.mean_utilisation
                ),
            ),
        ];
        for (k, v) in rows {
            let _ = writeln!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(&v));
        }
        let _ = writeln!(h, "</table>");
        let acts: Vec<(String, f64)> = self
            .energy_by_action
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let total = self.energy_pj.max(f64::MIN_POSITIVE);
        let share = |v: f64| format!("{} ({:.1} %)", energy(v), 100.0 * v / total);
        let _ = writeln!(h, "<h2>Energy by action</h2>{}", bars(&acts, share));
        let mut mods: Vec<(String, f64)> = self
            .modules
            .iter()
            .filter(|m| m.energy_pj > 0.0)
            .map(|m| (m.name.clone(), m.energy_pj))
            .collect();
        mods.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        mods.truncate(40);
        let _ = writeln!(
            h,
            "<h2>Energy by module (top {})</h2>{}",
            mods.len(),
            bars(&mods, share)
        );
        // LIF populations only (a spike conv's input rate is its LIF's output rate).
        let fr: Vec<(String, f64)> = self
            .modules
            .iter()
            .filter(|m| m.neuron_updates > 0)
            .filter_map(|m| m.firing_rate.map(|f| (m.name.clone(), f)))
            .collect();
        let _ = writeln!(
            h,
            "<h2>Firing rate by LIF population</h2>{}",
            bars(&fr, |v| format!("{v:.3}"))
        );
        let steps: Vec<(String, f64)> = self
            .step_cycles
            .iter()
            .enumerate()
            .map(|(t, c)| (format!("step {t}"), *c as f64))
            .chain(std::iter::once((
                "full-T stages".to_string(),
                self.full_t_cycles as f64,
            )))
            .collect();
        let ms = self.latency_ms / self.latency_cycles.max(1) as f64;
        let _ = writeln!(
            h,
            "<h2>Latency per time step</h2>{}",
            bars(&steps, |v| format!("{:.3} ms", v * ms))
        );
        let _ = writeln!(h, "<h2>Timeline (stages in order)</h2>{}", self.timeline());
        let _ = writeln!(h, "<h2>Core map (utilisation)</h2>{}", self.core_map());
        let _ = writeln!(h, "<h2>DRAM traffic by tensor (top 20)</h2><table><tr><th>tensor</th><th>buffer</th><th>bytes</th><th>in SRAM</th><th>DRAM moved</th></tr>");
        for t in self.dram_tensors.iter().take(20) {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&t.name),
                esc(&t.buffer),
                crate::lynxi::kib(t.buffer_bytes),
                crate::lynxi::kib(t.sram_bytes),
                crate::lynxi::kib(t.dram_traffic_bytes as u64)
            );
        }
        let _ = writeln!(h, "</table>");
        let _ = writeln!(h, "<h2>Assumed machine parameters</h2><table><tr><th>parameter</th><th>value (assumed)</th></tr>");
        for (k, v) in &self.assumed_values {
            let _ = writeln!(h, "<tr><td>{}</td><td>{v}</td></tr>", esc(k));
        }
        let _ = writeln!(h, "</table>");
        let _ = writeln!(h, "</body></html>");
        h
    }

    fn core_map(&self) -> String {
        let cols = self.cores.iter().map(|c| c.x + 1).max().unwrap_or(1);
        let rows = self.cores.iter().map(|c| c.y + 1).max().unwrap_or(1);
        let chips = self.chips.max(1);
        let cell = 30;
        let width = chips * (cols * cell + 12);
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-size=\"9\">",
            width + 2,
            rows * cell + 2
        );
        let per_chip = cols * rows;
        for c in &self.cores {
            let u = c.utilisation.clamp(0.0, 1.0);
            let fill = if c.slices == 0 { "#e6e6e6" } else { scale_colour(u) };
            let chip = c.id / per_chip.max(1);
            let x0 = 1 + chip * (cols * cell + 12) + c.x * cell;
            let y0 = 1 + c.y * cell;
            let _ = write!(
                s,
                "<rect x=\"{x0}\" y=\"{y0}\" width=\"{}\" height=\"{}\" fill=\"{fill}\" stroke=\"#888\"><title>core {} ({},{}): {:.1} % busy, {} slices, {}; {}</title></rect><text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{:.0}</text>",
                cell - 2,
                cell - 2,
                c.id,
                c.x,
                c.y,
                100.0 * u,
                c.slices,
                esc(&c.layers.join(", ")),
                energy(c.energy_pj),
                x0 + cell / 2 - 1,
                y0 + cell / 2 + 2,
                100.0 * u
            );
        }
        s.push_str("</svg><p>");
        for (lo, hi) in SCALE_BINS.iter().zip(SCALE_BINS.iter().skip(1)) {
            let _ = write!(
                s,
                "<span style=\"background:{};padding:0 8px;border:1px solid #888\">&nbsp;</span> {:.0}-{:.0} % &nbsp; ",
                scale_colour((lo + hi) / 2.0),
                100.0 * lo,
                100.0 * hi
            );
        }
        s.push_str("<span style=\"background:#e6e6e6;padding:0 8px;border:1px solid #888\">&nbsp;</span> unused. Numbers: % busy; hover a core for its layers.</p>");
        s
    }

    fn timeline(&self) -> String {
        let total = self.latency_cycles.max(1) as f64;
        let (w, row) = (900.0, 14);
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-size=\"9\">",
            w as usize + 4,
            (self.chips.max(1)) * row + 16
        );
        for st in &self.stages {
            let x = 2.0 + w * st.start_cycles as f64 / total;
            let bw = (w * st.cycles as f64 / total).max(0.5);
            let fill = match st.mode.as_str() {
                "full-t" => "#c1554a",
                "fused" => "#4a9c6d",
                "pipelined" => "#4a7fc1",
                _ => "#999999",
            };
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{}\" width=\"{bw:.1}\" height=\"{}\" fill=\"{fill}\"><title>stage {} ({}, chip {}): {} from {}, {} cycles; {}</title></rect>",
                2 + st.chip * row,
                row - 2,
                st.id,
                esc(&st.mode),
                st.chip,
                st.layers,
                esc(&st.first_layer),
                st.cycles,
                esc(&st.reason)
            );
        }
        let _ = write!(
            s,
            "<text x=\"2\" y=\"{}\">0</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.3} ms</text></svg><p>one row per chip; blue pipelined, green fused, red full-T, grey layer-serial; hover for the reason</p>",
            self.chips.max(1) * row + 12,
            w as usize,
            self.chips.max(1) * row + 12,
            self.latency_ms
        );
        s
    }
}

/// Utilisation bins of the core map: 5 % and 50 % fall in clearly different colours.
pub const SCALE_BINS: [f64; 8] = [0.0, 0.01, 0.05, 0.1, 0.2, 0.35, 0.5, 1.0001];

/// Colour of a utilisation (one colour per [`SCALE_BINS`] interval, light to dark).
pub fn scale_colour(u: f64) -> &'static str {
    const COLOURS: [&str; 7] = [
        "#fff7ec", "#fee8c8", "#fdbb84", "#fc8d59", "#d7301f", "#990000", "#4d0000",
    ];
    let i = SCALE_BINS
        .iter()
        .skip(1)
        .position(|&hi| u < hi)
        .unwrap_or(COLOURS.len() - 1);
    COLOURS[i.min(COLOURS.len() - 1)]
}

/// A horizontal bar chart.
fn bars(items: &[(String, f64)], fmt: impl Fn(f64) -> String) -> String {
    let max = items.iter().map(|i| i.1).fold(0.0, f64::max);
    let (label_w, bar_w, row_h) = (330, 420, 16);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-size=\"11\">",
        label_w + bar_w + 120,
        items.len() * row_h + 4
    );
    for (i, (name, v)) in items.iter().enumerate() {
        let y = i * row_h + 2;
        let w = if max > 0.0 {
            (v / max * bar_w as f64).max(0.0)
        } else {
            0.0
        };
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><rect x=\"{}\" y=\"{}\" width=\"{:.1}\" height=\"{}\" fill=\"#4a7fc1\"/><text x=\"{:.1}\" y=\"{}\">{}</text>",
            label_w - 4,
            y + 12,
            esc(name),
            label_w,
            y + 2,
            w,
            row_h - 4,
            label_w as f64 + w + 4.0,
            y + 12,
            esc(&fmt(*v))
        );
    }
    s.push_str("</svg>");
    s
}
