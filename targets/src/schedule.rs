//! Schedules: in what order the layers of a deployment run over the T time steps, and what
//! each inter-layer tensor must therefore buffer.
//!
//! * `layer-serial` — every layer runs over all T steps before the next starts (the model's
//!   multi-step semantics taken literally): every inter-layer tensor is buffered whole
//!   (`[T, C, H, W]`).
//! * `pipelined` — all layers are resident; the graph is cut into **stages** at the layers
//!   that need all T of their input at once (reductions over time or over the whole image:
//!   the attention's statistics, the mean over T, the refinement's pooling). Inside a stage
//!   every core works in every time step: the activations of step t stream through the
//!   stage's layers, then a barrier. A tensor inside a stage is buffered for one step
//!   (`[C, H, W]`); a tensor consumed by a full-T layer, or crossing one, is buffered whole.
//! * `fused` — as `pipelined`, but the layers of a stage process row bands: a tensor inside
//!   a stage only needs a line buffer of the consumer's receptive field (+1 row being
//!   written), so it stays in core SRAM; every band costs a neighbour handshake.
//! * `auto` — per stage, `pipelined` when its one-step buffers fit the stage's share of
//!   state SRAM (no band handshakes), `fused` otherwise; the reason is recorded.

use serde::{Deserialize, Serialize};

/// A `--schedule` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    LayerSerial,
    Pipelined,
    Fused,
    Auto,
}

impl Schedule {
    pub const ALL: [Schedule; 4] = [
        Schedule::LayerSerial,
        Schedule::Pipelined,
        Schedule::Fused,
        Schedule::Auto,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Schedule::LayerSerial => "layer-serial",
            Schedule::Pipelined => "pipelined",
            Schedule::Fused => "fused",
            Schedule::Auto => "auto",
        }
    }

    pub fn parse(s: &str) -> Result<Schedule, String> {
        Schedule::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                format!("unknown schedule `{s}` (schedules: layer-serial, pipelined, fused, auto)")
            })
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Schedule, String> {
        Schedule::parse(s)
    }
}

/// How a stage runs (what `auto` chose, or what was asked).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StageMode {
    /// Layer-serial: each layer over all T.
    LayerSerial,
    /// One-step buffers, a barrier per step.
    Pipelined,
    /// Row bands with line buffers, a barrier per step.
    Fused,
    /// A layer that needs all T of its input: runs once over the buffered tensor.
    FullT,
}

/// What a tensor between two layers buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BufferKind {
    /// The image or a result, in host DRAM.
    Host,
    /// A few rows (the consumer's receptive field + 1).
    Line,
    /// One time step.
    Step,
    /// All T steps.
    FullT,
}

/// Rows a line buffer holds for a consumer with `halo` extra kernel rows.
pub fn line_rows(halo: usize) -> usize {
    halo + 2
}

/// Stage index of every layer: a layer that `needs_all_t` is a stage of its own; the layers
/// between two of them form one stage. Returns `(stage of layer, full-T flag per stage)`.
pub fn stages(needs_all_t: &[bool]) -> (Vec<usize>, Vec<bool>) {
    let mut of = Vec::with_capacity(needs_all_t.len());
    let mut full = Vec::new();
    let mut open = false;
    for &f in needs_all_t {
        if f {
            full.push(true);
            open = false;
        } else if !open {
            full.push(false);
            open = true;
        }
        of.push(full.len() - 1);
    }
    (of, full)
}

/// The buffer a tensor from layer `from` to layer `to` needs under a stage assignment: whole
/// when the consumer needs all T or the tensor waits across a full-T stage; one step (or a
/// line buffer when `fused`) inside a stage, including the stream a full-T layer's apply
/// pass emits into the stage after it.
pub fn edge_buffer(
    stage_of: &[usize],
    full_t: &[bool],
    from: usize,
    to: usize,
    fused: bool,
) -> BufferKind {
    let (sf, st) = (stage_of[from], stage_of[to]);
    let streaming = sf == st || (full_t[sf] && st == sf + 1);
    if full_t[st] || !streaming {
        BufferKind::FullT
    } else if fused {
        BufferKind::Line
    } else {
        BufferKind::Step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_cut_at_full_t_layers() {
        // conv, lif, attn, add, conv, attn, mean
        let (of, full) = stages(&[false, false, true, false, false, true, true]);
        assert_eq!(of, vec![0, 0, 1, 2, 2, 3, 4]);
        assert_eq!(full, vec![false, true, false, true, true]);
        // Inside a stage: one step (or lines); into a full-T layer or across one: all T;
        // out of a full-T layer into the next stage: its apply pass streams.
        assert_eq!(edge_buffer(&of, &full, 0, 1, false), BufferKind::Step);
        assert_eq!(edge_buffer(&of, &full, 0, 1, true), BufferKind::Line);
        assert_eq!(edge_buffer(&of, &full, 1, 2, true), BufferKind::FullT);
        assert_eq!(edge_buffer(&of, &full, 2, 3, true), BufferKind::Line);
        assert_eq!(edge_buffer(&of, &full, 1, 3, true), BufferKind::FullT);
        assert_eq!(Schedule::parse("fused").unwrap(), Schedule::Fused);
        assert!(Schedule::parse("fast").unwrap_err().contains("layer-serial"));
    }
}
