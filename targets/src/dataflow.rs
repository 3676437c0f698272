//! Dataflows of a convolution slice on one core: the loop nest, its tile sizes and the
//! register, SRAM accesses that follow from them.
//!
//! Per time step, for a slice computing `co` output channels of `rows x cols` output pixels
//! from `ci` input channels with a `kh x kw` kernel:
//!
//! * [`Dataflow::WeightSram`] (today's spike path) — `for out pixel { for tap { for active
//!   input channel { for co { acc[co] += w[tap][ci][co] } } } }`: the accumulators of one
//!   pixel sit in the lanes, every accumulate reads its weight from weight SRAM
//!   (`ops x weight bytes`), every input element is read once from state SRAM, every output
//!   written once (f32).
//! * [`Dataflow::WeightTiles`] (today's dense path) — the slice's weights are streamed from
//!   weight SRAM once per spatial tile (`tiles x slice weight bytes`), inputs read once,
//!   outputs written once (the tile's partial sums are taken to stay in the MAC array, as
//!   the layer-serial model always assumed; the streaming schedules keep this nest for dense
//!   convolutions whenever output-stationary tiles would cost more).
//! * [`Dataflow::OutputStationary`] — `for pixel tile (side x side) { for co tile { for tap,
//!   ci { load w[tap][ci][co tile] into registers; for pixel in tile { if input active:
//!   acc[pixel][co] += w } } } }`: `side^2 x co_tile` f32 accumulators and one weight vector
//!   stay in the register level (`core.reg_bytes`), so each weight is read from weight SRAM
//!   once per pixel tile (`pixel tiles x kh kw ci co x weight bytes`), every operation reads
//!   its weight operand from registers (`ops x weight bytes`), and every co tile re-reads its
//!   input patch (`((side-1) stride + kh) x ((side-1) stride + kw) x ci` elements) from
//!   state SRAM. Outputs are written once.
//!
//! A nest whose live register bytes exceed `core.reg_bytes` is never chosen ([`choose`]).

use serde::{Deserialize, Serialize};

use crate::machine::Machine;

/// How a convolution slice runs (serialised into the manifest per layer).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Dataflow {
    WeightSram,
    WeightTiles { tiles: usize },
    OutputStationary { side: usize, co_tile: usize },
}

/// The shape of one convolution slice at one time step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvGeometry {
    pub ci: usize,
    pub co: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub rows: usize,
    pub cols: usize,
    /// Bytes per weight (2 for f16).
    pub weight_bytes: f64,
    /// Bytes per input element (1/8 for spike bitmaps, 4 for f32 values).
    pub input_bytes: f64,
}

/// Accesses of one slice at one step, bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Accesses {
    pub reg_read: f64,
    pub weight_sram_read: f64,
    pub state_read: f64,
    pub state_write: f64,
}

impl Dataflow {
    /// Live bytes this nest keeps in the register level.
    pub fn reg_bytes(&self, g: &ConvGeometry) -> u64 {
        match *self {
            Dataflow::OutputStationary { side, co_tile } => {
                (side * side * co_tile * 4) as u64 + (co_tile as f64 * g.weight_bytes).ceil() as u64
            }
            _ => 0,
        }
    }

    /// Accesses of a slice at one step performing `ops` accumulates / MACs.
    pub fn accesses(&self, g: &ConvGeometry, ops: f64) -> Accesses {
        let weights = (g.kh * g.kw * g.ci * g.co) as f64 * g.weight_bytes;
        let inputs = input_extent(g.rows, g.stride, g.kh) as f64
            * input_extent(g.cols, g.stride, g.kw) as f64
            * g.ci as f64
            * g.input_bytes;
        let outputs = (g.rows * g.cols * g.co) as f64 * 4.0;
        match *self {
            Dataflow::WeightSram => Accesses {
                reg_read: 0.0,
                weight_sram_read: ops * g.weight_bytes,
                state_read: inputs,
                state_write: outputs,
            },
            Dataflow::WeightTiles { tiles } => Accesses {
                reg_read: 0.0,
                weight_sram_read: weights * tiles as f64,
                state_read: inputs,
                state_write: outputs,
            },
            Dataflow::OutputStationary { side, co_tile } => {
                let pixel_tiles = (g.rows.div_ceil(side) * g.cols.div_ceil(side)) as f64;
                let co_tiles = g.co.div_ceil(co_tile) as f64;
                let patch = input_extent(side, g.stride, g.kh) as f64
                    * input_extent(side, g.stride, g.kw) as f64;
                Accesses {
                    reg_read: ops * g.weight_bytes,
                    weight_sram_read: pixel_tiles * weights,
                    state_read: pixel_tiles * co_tiles * patch * g.ci as f64 * g.input_bytes,
                    state_write: outputs,
                }
            }
        }
    }

    /// Energy of these accesses on `m`, pJ.
    pub fn energy_pj(a: &Accesses, m: &Machine) -> f64 {
        let ws = m.sram_energy(m.core.weight_sram_bytes);
        let ss = m.sram_energy(m.core.state_sram_bytes);
        a.reg_read * m.energy.reg_pj_per_byte
            + a.weight_sram_read * ws.read_pj_per_byte
            + a.state_read * ss.read_pj_per_byte
            + a.state_write * ss.write_pj_per_byte
    }

    /// A short label for reports.
    pub fn label(&self) -> String {
        match *self {
            Dataflow::WeightSram => "weight-sram (one weight-SRAM read per op)".into(),
            Dataflow::WeightTiles { tiles } => format!("weight tiles ({tiles} per step)"),
            Dataflow::OutputStationary { side, co_tile } => {
                format!("output-stationary {side}x{side} px x {co_tile} co in registers")
            }
        }
    }
}

/// Input rows (or columns) `n` outputs of a `k`-tap, `stride` window read (without padding).
fn input_extent(n: usize, stride: usize, k: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n - 1) * stride + k
    }
}

/// The cheapest nest for a slice whose register needs fit `m.core.reg_bytes`, with `ops`
/// the expected operations per step; `fallback` (today's) when no stationary nest fits or
/// none is cheaper.
pub fn choose(g: &ConvGeometry, ops: f64, m: &Machine, fallback: Dataflow) -> Dataflow {
    let cost = |d: &Dataflow| Dataflow::energy_pj(&d.accesses(g, ops), m);
    let mut best = (cost(&fallback), fallback);
    for side in [1usize, 2, 4, 8] {
        if side > g.rows.max(g.cols) * 2 {
            continue;
        }
        let mut co_tile = g.co.max(1);
        loop {
            let d = Dataflow::OutputStationary { side, co_tile };
            if d.reg_bytes(g) <= m.core.reg_bytes {
                let c = cost(&d);
                if c < best.0 {
                    best = (c, d);
                }
                break; // a smaller co tile only re-reads more input
            }
            if co_tile == 1 {
                break;
            }
            co_tile = co_tile.div_ceil(2);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2 -> 4 channels, 3x3, stride 1, 4x4 outputs, f16 weights, spike input.
    fn small() -> ConvGeometry {
        ConvGeometry {
            ci: 2,
            co: 4,
            kh: 3,
            kw: 3,
            stride: 1,
            rows: 4,
            cols: 4,
            weight_bytes: 2.0,
            input_bytes: 0.125,
        }
    }

    #[test]
    fn weight_sram_reads_one_weight_per_accumulate() {
        // 50 ACs: 100 weight bytes; input 6x6x2 bits = 9 bytes; output 4x4x4 f32 = 256 bytes.
        let a = Dataflow::WeightSram.accesses(&small(), 50.0);
        assert_eq!(a.weight_sram_read, 100.0);
        assert_eq!(a.state_read, 9.0);
        assert_eq!(a.state_write, 256.0);
        assert_eq!(a.reg_read, 0.0);
        let t = Dataflow::WeightTiles { tiles: 3 }.accesses(&small(), 50.0);
        // 3 tiles x (3*3*2*4 = 72 weights x 2 bytes).
        assert_eq!(t.weight_sram_read, 432.0);
    }

    #[test]
    fn output_stationary_counts_follow_the_loop_nest() {
        // 2x2 pixel tiles -> 4 tiles; co tile 2 -> 2 co tiles; patch 4x4 = 16 inputs.
        let d = Dataflow::OutputStationary { side: 2, co_tile: 2 };
        let a = d.accesses(&small(), 50.0);
        // weights: 4 pixel tiles x 72 weights x 2 bytes.
        assert_eq!(a.weight_sram_read, 576.0);
        // inputs: 4 x 2 x 16 x 2 channels x 1/8 byte.
        assert_eq!(a.state_read, 32.0);
        assert_eq!(a.reg_read, 100.0);
        assert_eq!(a.state_write, 256.0);
        // registers: 2x2 px x 2 co x 4 bytes + 2 weights x 2 bytes.
        assert_eq!(d.reg_bytes(&small()), 36);
    }

    #[test]
    fn choose_respects_the_register_capacity() {
        let mut m = Machine::preset("ka200-like").unwrap();
        let g = ConvGeometry {
            ci: 48,
            co: 48,
            kh: 3,
            kw: 3,
            stride: 1,
            rows: 64,
            cols: 256,
            weight_bytes: 2.0,
            input_bytes: 0.125,
        };
        // A spike conv at 25 % firing: one weight-SRAM read per AC costs more than loading
        // each weight once per pixel tile.
        let ops = (64 * 256 * 48 * 9 * 48) as f64 * 0.25;
        let d = choose(&g, ops, &m, Dataflow::WeightSram);
        assert!(matches!(d, Dataflow::OutputStationary { .. }), "{d:?}");
        assert!(d.reg_bytes(&g) <= m.core.reg_bytes);
        let (a, b) = (d.accesses(&g, ops), Dataflow::WeightSram.accesses(&g, ops));
        assert!(a.weight_sram_read < b.weight_sram_read / 2.0);
        // Without a register level only today's nest remains.
        m.core.reg_bytes = 0;
        assert_eq!(choose(&g, ops, &m, Dataflow::WeightSram), Dataflow::WeightSram);
    }
}
