//! Peak-memory estimate of a run, from the program's buffer plan.
//!
//! [`Program::peak_bytes`] replays the (unobserved, fused) schedule on sizes only: every step
//! takes its buffers from a [`PoolModel`] — the pool's own policy ([`crate::buffers`]) — and
//! frees the values it was the last user of, as [`Program::run`] does; fresh allocations
//! (the input copy, the outputs, spike bitmaps, reduction results) are added and removed at
//! the same points. The peak of the bytes held, over two consecutive runs (the second starts
//! from the pool the first left, as a program's runs do), plus a bound on the per-thread
//! scratch of the kernels, is the estimate. It is an upper bound on the heap a run adds
//! (checked against a counting allocator in `tests/memory.rs`); the program's weights and the
//! caller's input are not counted.

use crate::buffers::PoolModel;
use crate::conv::SpikeAccumulator;
use crate::program::{Kernel, Program};
use spikerc_compiler::interp::MEAN_LANES;
use spikerc_compiler::ir::ReduceOp;

/// The bytes held by the model at any time, and their peak.
#[derive(Default)]
struct Tracker {
    pool: PoolModel,
    /// Bytes outside the pool (bitmaps, fresh vectors).
    extra: u64,
    peak: u64,
}

impl Tracker {
    fn now(&self) -> u64 {
        self.pool.bytes() + self.extra
    }
    fn mark(&mut self, transient: u64) {
        self.peak = self.peak.max(self.now().saturating_add(transient));
    }
}

/// A value's buffer in the model.
#[derive(Clone, Copy)]
enum Held {
    /// An f32 buffer of this capacity (pooled on free).
    Pooled(usize),
    /// Bytes outside the pool (freed on free).
    Fresh(u64),
}

impl Program {
    /// Estimated peak heap bytes that one [`Program::run`] on an `[n, C, h, w]` input (sides
    /// divisible by the spatial divisor) adds, with `threads` workers (0 = all cores), the
    /// program's pool starting empty. Saturates instead of overflowing for absurd sizes.
    pub fn peak_bytes(&self, (n, h, w): (usize, usize, usize), threads: usize) -> u64 {
        let g = self.graph();
        let shape = |id: spikerc_compiler::NodeId| -> Vec<usize> {
            g.node(id).fact.shape.resolve(n, h, w).unwrap_or_default()
        };
        let elems = |s: &[usize]| s.iter().fold(1usize, |a, &d| a.saturating_mul(d));
        let mut tr = Tracker::default();
        // Per-thread scratch, by kind (each kind's thread-local keeps its largest size).
        let mut scratch = Scratch::default();
        for _run in 0..2 {
            let mut values: Vec<Option<Held>> = vec![None; g.id_bound()];
            let mut outputs = 0u64;
            for step in &self.steps {
                let out = shape(step.id);
                let len = elems(&out);
                let mut transient = 0u64;
                let held = match &step.kernel {
                    _ if step.folded => None,
                    Kernel::Input => Some(Held::Pooled(tr.pool.take_fresh(len))),
                    Kernel::Output => {
                        tr.extra += 4 * len as u64;
                        outputs += 4 * len as u64;
                        None
                    }
                    Kernel::LifPacked { geo, .. } => {
                        let s = shape(step.inputs[0]);
                        let r = s.len();
                        let (c, hh, ww) = (s[r - 3], s[r - 2], s[r - 1]);
                        let lead = elems(&s) / (c * hh * ww).max(1);
                        let [py, px] = geo.padding;
                        let words = lead
                            .saturating_mul(hh + 2 * py)
                            .saturating_mul(ww + 2 * px)
                            .saturating_mul(c.div_ceil(64));
                        let bytes = 8 * words as u64;
                        tr.extra += bytes;
                        // Per task: membrane rows, fire flags, word-major row bitmaps.
                        let band = (64 * 1024 / (c * ww).max(1)).clamp(1, hh.max(1));
                        let lif = (4 * c * band * ww + ww + 8 * c.div_ceil(64) * ww) as u64;
                        scratch.lif = scratch.lif.max(lif);
                        Some(Held::Fresh(bytes))
                    }
                    Kernel::SpikeConv(c) => {
                        let s = shape(step.inputs[0]);
                        let r = s.len();
                        let (hh, ww) = (s[r - 2], s[r - 1]);
                        let lead = elems(&s) / (c.geo.ci * hh * ww).max(1);
                        let packed = matches!(
                            values[step.inputs[0].index()],
                            Some(Held::Fresh(_))
                        );
                        if !packed {
                            let [py, px] = c.geo.padding;
                            transient = 8 * (lead * (hh + 2 * py) * (ww + 2 * px) * c.geo.ci.div_ceil(64)) as u64;
                        }
                        let ow = out[out.len() - 1];
                        let row = (ow * c.geo.cp) as u64;
                        match c.accumulator() {
                            SpikeAccumulator::FixedI64 => {
                                scratch.row_i64 = scratch.row_i64.max(8 * row)
                            }
                            SpikeAccumulator::FixedI32 => {
                                scratch.row_i32 = scratch.row_i32.max(4 * row)
                            }
                            SpikeAccumulator::F32 => scratch.row_f32 = scratch.row_f32.max(4 * row),
                        }
                        Some(Held::Pooled(tr.pool.take(len)))
                    }
                    Kernel::DenseConv(c) | Kernel::DenseConvRepeated(c, _) => {
                        let ow = out[out.len() - 1];
                        conv_scratch(&mut scratch, c, ow);
                        if let Kernel::DenseConvRepeated(_, t) = &step.kernel {
                            let one = tr.pool.take(len / t);
                            let all = tr.pool.take(len);
                            tr.mark(0);
                            tr.pool.recycle(one);
                            Some(Held::Pooled(all))
                        } else {
                            Some(Held::Pooled(tr.pool.take(len)))
                        }
                    }
                    Kernel::Reduce { op, .. } | Kernel::ReducePair { op, .. } => {
                        // `ops::reduce_both`: pooled f64 lanes (means), the per-output counts
                        // and the max vector during the pass, then the means collected; the
                        // results are plain vectors that the pool takes when they die.
                        let pair = matches!(step.kernel, Kernel::ReducePair { .. });
                        let (mean, max) = (pair || *op == ReduceOp::Mean, pair || *op == ReduceOp::Max);
                        let lane = mean.then(|| tr.pool.take(len.saturating_mul(2 * MEAN_LANES)));
                        let maxv = max.then(|| tr.pool.take_fresh(len));
                        let means = mean.then(|| tr.pool.take_fresh(len));
                        tr.mark(8 * len as u64);
                        if let Some(l) = lane {
                            tr.pool.recycle(l);
                        }
                        let (mine, theirs) = match op {
                            ReduceOp::Mean => (means, maxv),
                            _ => (maxv, means),
                        };
                        if let Kernel::ReducePair { partner, .. } = &step.kernel {
                            values[partner.index()] = theirs.map(Held::Pooled);
                        }
                        mine.map(Held::Pooled)
                    }
                    Kernel::Computed => values[step.id.index()],
                    // Every other kernel writes one pooled buffer of the output's size.
                    _ => Some(Held::Pooled(tr.pool.take(len))),
                };
                tr.mark(transient);
                values[step.id.index()] = held;
                for f in &step.free {
                    match values[f.index()].take() {
                        Some(Held::Pooled(c)) => tr.pool.recycle(c),
                        Some(Held::Fresh(b)) => tr.extra -= b,
                        None => {}
                    }
                }
            }
            // The outputs go to the caller and are dropped before the next run.
            tr.extra -= outputs;
        }
        let threads = crate::program::threads_used(threads);
        // Bookkeeping: the result's per-module maps, the value table, argument lists.
        let book = (self.steps.len() as u64) * 512 + (g.id_bound() as u64) * 64 + (64 << 10);
        let per_thread = scratch.row_f32 + scratch.row_i32 + scratch.row_i64 + scratch.winograd + scratch.lif;
        tr.peak
            .saturating_add(per_thread.saturating_mul(threads as u64))
            .saturating_add(book)
    }
}

/// Largest per-thread scratch of each kind, in bytes.
#[derive(Default)]
struct Scratch {
    row_f32: u64,
    row_i32: u64,
    row_i64: u64,
    winograd: u64,
    lif: u64,
}

/// Per-thread scratch of a dense convolution producing rows of `ow` pixels: the row
/// accumulators, or Winograd's task buffers.
fn conv_scratch(s: &mut Scratch, c: &crate::conv::MacConv, ow: usize) {
    match c {
        crate::conv::MacConv::Direct(d) => s.row_f32 = s.row_f32.max((4 * ow * d.geo.cp) as u64),
        crate::conv::MacConv::Winograd(wc) => s.winograd = s.winograd.max(wc.scratch_bytes(ow)),
    }
}
