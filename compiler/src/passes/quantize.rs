//! Float16 quantization: every parameter tensor is stored as f16 (round to nearest even) and
//! LIF constants (threshold, tau, reset) are rounded to f16 values. The report gives, per layer,
//! the max absolute and the relative (L2) weight error. Semantics of f16 artifacts are in
//! `ARCHITECTURE.md` and implemented by the interpreter.

use half::f16;
use serde::{Deserialize, Serialize};

use super::Pass;
use crate::ir::{Graph, Op, Reset};

/// Quantization error of one layer's parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerQuantError {
    pub name: String,
    pub op: String,
    pub params: usize,
    pub max_abs_error: f64,
    pub rel_error: f64,
    /// Weights that fell below f16's smallest subnormal and became zero.
    pub flushed_to_zero: usize,
}

/// What quantization cost, per layer and overall.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QuantReport {
    pub layers: Vec<LayerQuantError>,
    pub max_abs_error: f64,
    pub rel_error: f64,
}

#[derive(Default)]
pub struct QuantizeF16 {
    pub report: QuantReport,
}

fn round16(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

impl Pass for QuantizeF16 {
    fn name(&self) -> &'static str {
        "quantize-f16"
    }

    fn run(&mut self, g: &mut Graph) -> Result<usize, String> {
        let ids: Vec<_> = g.ids().collect();
        let (mut tot_err2, mut tot_ref2, mut tot_max) = (0f64, 0f64, 0f64);
        let mut changed = 0;
        for id in ids {
            let node = g.node_mut(id);
            if let Op::Lif(l) = &mut node.op {
                l.v_threshold = round16(l.v_threshold);
                l.tau = round16(l.tau);
                if let Reset::Hard { v_reset } = &mut l.reset {
                    *v_reset = round16(*v_reset);
                }
                changed += 1;
                continue;
            }
            let mnemonic = node.op.mnemonic().to_string();
            let (mut err2, mut ref2, mut max_abs, mut count, mut flushed) =
                (0f64, 0f64, 0f64, 0usize, 0usize);
            for (_, t) in node.op.params_mut() {
                let q = t.to_f16();
                for (a, b) in t.to_f32().iter().zip(q.to_f32().iter()) {
                    let d = (*a as f64 - *b as f64).abs();
                    err2 += d * d;
                    ref2 += (*a as f64) * (*a as f64);
                    max_abs = max_abs.max(d);
                    flushed += usize::from(*a != 0.0 && *b == 0.0);
                }
                count += t.len();
                *t = q;
            }
            if count == 0 {
                continue;
            }
            changed += 1;
            tot_err2 += err2;
            tot_ref2 += ref2;
            tot_max = tot_max.max(max_abs);
            self.report.layers.push(LayerQuantError {
                name: node.name.clone(),
                op: mnemonic,
                params: count,
                max_abs_error: max_abs,
                rel_error: if ref2 > 0.0 {
                    (err2 / ref2).sqrt()
                } else {
                    0.0
                },
                flushed_to_zero: flushed,
            });
        }
        self.report.max_abs_error = tot_max;
        self.report.rel_error = if tot_ref2 > 0.0 {
            (tot_err2 / tot_ref2).sqrt()
        } else {
            0.0
        };
        Ok(changed)
    }
}
