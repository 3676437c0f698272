//! Op counts of an interpreter run, by the runtime's definitions (`OpCounts`): per spike
//! into an event-driven convolution, the outputs it reaches times the output channels (AC);
//! dense convolutions `outputs x ci x kh x kw` (MAC, Winograd ones counted as the direct
//! convolution they equal); `axis_linear` `outputs x n_in`; elementwise `mul` one per output;
//! bilinear upsampling 4 per output; LIF neuron updates and spikes. The conformance suite
//! checks them against the event runtime's counts.

use spikerc_compiler::interp::Array;
use spikerc_compiler::ir::{BinaryOp, Op};
use spikerc_compiler::{NodeId, Verified};
use spikerc_runtime::OpCounts;
use std::collections::BTreeMap;

/// Outputs of a `n_out`-long axis that input index `i` reaches (kernel `k`, stride `s`,
/// padding `p`).
pub fn reach(i: usize, n_out: usize, k: usize, s: usize, p: usize) -> u64 {
    let num = i + p;
    let lo = num.saturating_sub(k - 1).div_ceil(s);
    let hi = (num / s).min(n_out - 1);
    if lo > hi {
        0
    } else {
        (hi - lo + 1) as u64
    }
}

/// Accumulates op counts from the `(node, value)` stream of an interpreter run.
pub(crate) struct Counter<'a> {
    g: &'a Verified,
    pub ops: BTreeMap<String, OpCounts>,
}

impl<'a> Counter<'a> {
    pub(crate) fn new(g: &'a Verified) -> Counter<'a> {
        Counter { g, ops: BTreeMap::new() }
    }

    pub(crate) fn see(&mut self, id: NodeId, out: &Array) {
        let g = self.g;
        let node = g.node(id);
        let elems = out.len() as u64;
        let mut c = OpCounts::default();
        match &node.op {
            Op::Conv2d(cv) if !cv.event_driven => {
                let [_, ci, kh, kw] = [cv.weight.shape[0], cv.weight.shape[1], cv.weight.shape[2], cv.weight.shape[3]];
                c.mac = elems * (ci * kh * kw) as u64;
            }
            Op::Lif(_) => {
                c.neuron_updates = elems;
                c.spikes_out = out.data.iter().filter(|&&v| v != 0.0).count() as u64;
            }
            Op::Binary(BinaryOp::Mul) => c.mac = elems,
            Op::AxisLinear { weight, .. } => c.mac = elems * weight.shape[1] as u64,
            Op::Upsample2x => c.mac = 4 * elems,
            _ => {}
        }
        self.ops.entry(node.name.clone()).or_default().add(&c);
        // The spikes this value feeds into event-driven convolutions.
        for (user, _) in g.users(id) {
            let un = g.node(user);
            let Op::Conv2d(cv) = &un.op else { continue };
            if !cv.event_driven {
                continue;
            }
            let r = out.shape.len();
            let (h, w) = (out.shape[r - 2], out.shape[r - 1]);
            let (co, kh, kw) = (cv.weight.shape[0], cv.weight.shape[2], cv.weight.shape[3]);
            let oh = (h + 2 * cv.padding[0] - kh) / cv.stride[0] + 1;
            let ow = (w + 2 * cv.padding[1] - kw) / cv.stride[1] + 1;
            let ry: Vec<u64> = (0..h).map(|y| reach(y, oh, kh, cv.stride[0], cv.padding[0])).collect();
            let rx: Vec<u64> = (0..w).map(|x| reach(x, ow, kw, cv.stride[1], cv.padding[1])).collect();
            let mut uc = OpCounts::default();
            for plane in out.data.chunks_exact(h * w) {
                for (y, row) in plane.chunks_exact(w).enumerate() {
                    for (x, &v) in row.iter().enumerate() {
                        if v != 0.0 {
                            uc.spikes_in += 1;
                            uc.ac += ry[y] * rx[x] * co as u64;
                        }
                    }
                }
            }
            self.ops.entry(un.name.clone()).or_default().add(&uc);
        }
    }
}
