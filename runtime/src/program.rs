//! Lowering a verified graph to a schedule of kernels, and executing it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use spikerc_compiler::interp::{check_input, Array, InterpError};
use spikerc_compiler::ir::{BinaryOp, Lif, Op, ReduceOp};
use spikerc_compiler::{NodeId, Verified};

use crate::conv::{MacConv, SpikeConv};
use crate::ops;
use crate::simd::{Isa, Level};

/// Why a run was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Input(#[from] InterpError),
    #[error("cannot build a pool of {threads} threads: {message}")]
    Threads { threads: usize, message: String },
    #[error("tile {tile} with overlap {overlap} is invalid: {reason}")]
    Tile {
        tile: usize,
        overlap: usize,
        reason: String,
    },
    /// The system refused an allocation (a buffer the memory plan did not foresee).
    #[error("out of memory: could not allocate {} for {module}", gib(*bytes))]
    Alloc { bytes: u64, module: String },
    /// Even the smallest plan needs more memory than the budget allows.
    #[error("needs {} for a {h}x{w} input, budget {}: {detail}", gib(*needed), gib(*budget))]
    OverBudget {
        needed: u64,
        h: usize,
        w: usize,
        budget: u64,
        detail: String,
    },
}

/// `bytes` in GiB with two decimals (MiB below 1 GiB).
pub fn gib(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

/// The most worker threads a run accepts: 4 x the machine's available parallelism (more only
/// adds scheduling overhead; 1024 threads took 9.5 s on a 32x32 image).
pub fn max_threads() -> usize {
    4 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Options of one run.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// Worker threads; 0 uses rayon's global pool (all cores).
    pub threads: usize,
    /// Record the wall time of every node in [`RunResult::timeline`].
    pub profile: bool,
}

/// Exact operation counts of one source module (summed over its nodes, all T and images).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCounts {
    /// Non-zero inputs of event-driven convolutions.
    pub spikes_in: u64,
    /// Spikes emitted (LIF).
    pub spikes_out: u64,
    /// Accumulates performed on spike input: per spike, the outputs it actually reaches times
    /// the output channels (border spikes reach fewer outputs).
    pub ac: u64,
    /// Multiply-accumulates: dense convolutions (`outputs x ci x kh x kw`), `axis_linear`
    /// (`outputs x n_in`), elementwise `mul` (1 per output), bilinear upsampling (4 taps per
    /// output).
    pub mac: u64,
    /// LIF neuron updates (elements x time steps).
    pub neuron_updates: u64,
}

impl OpCounts {
    /// Adds `o` field by field.
    pub fn add(&mut self, o: &OpCounts) {
        self.spikes_in += o.spikes_in;
        self.spikes_out += o.spikes_out;
        self.ac += o.ac;
        self.mac += o.mac;
        self.neuron_updates += o.neuron_updates;
    }
}

/// Wall time of one executed node.
#[derive(Clone, Debug)]
pub struct NodeTime {
    pub id: NodeId,
    pub module: String,
    pub op: &'static str,
    pub time: Duration,
}

/// What one run produced.
#[derive(Clone, Debug, Default)]
pub struct RunResult {
    /// One array per output node, in output order.
    pub outputs: Vec<Array>,
    /// Spikes per LIF node over all T and images, by module path (as `interp::Execution`).
    pub spikes: BTreeMap<String, u64>,
    /// Operation counts per source module.
    pub ops: BTreeMap<String, OpCounts>,
    /// Per-node wall times, in execution order (only with [`RunOptions::profile`]).
    pub timeline: Vec<NodeTime>,
}

impl RunResult {
    /// Sum of the counts of all modules.
    pub fn total_ops(&self) -> OpCounts {
        let mut t = OpCounts::default();
        for c in self.ops.values() {
            t.add(c);
        }
        t
    }

    /// Adds another result's counts (used when tiling): spikes and ops are summed.
    pub fn merge_counts(&mut self, o: &RunResult) {
        for (k, v) in &o.spikes {
            *self.spikes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.ops {
            self.ops.entry(k.clone()).or_default().add(v);
        }
    }
}

/// The kernel a node runs.
#[derive(Clone, Debug)]
pub(crate) enum Kernel {
    Input,
    Output,
    RepeatTime(usize),
    SpikeConv(SpikeConv),
    DenseConv(MacConv),
    /// A dense convolution whose input is the same at all `t` time steps (a repeated image,
    /// or such a convolution's output): computed on one step and replicated. Op counts stay
    /// the network's (`t` steps).
    DenseConvRepeated(MacConv, usize),
    /// Eval BatchNorm as `y = fma(x, alpha, beta)` (PyTorch's CPU kernel), with the
    /// parameters kept for calibration.
    BatchNorm {
        alpha: Vec<f32>,
        beta: Vec<f32>,
        gamma: Vec<f32>,
        bias: Vec<f32>,
        eps: f32,
    },
    Lif(Lif),
    /// A LIF whose only consumer is a spike convolution of geometry `geo`: in unobserved runs
    /// it writes that convolution's channel bitmaps directly ([`ops::lif_packed`]).
    LifPacked {
        lif: Lif,
        geo: crate::conv::Geometry,
    },
    Binary(BinaryOp),
    Affine {
        scale: f32,
        shift: f32,
    },
    Concat(usize),
    Relu,
    Sigmoid,
    Reduce {
        op: ReduceOp,
        axes: Vec<usize>,
    },
    /// This node's reduction and `partner`'s (the other of mean / max, same input and axes)
    /// in one pass; `partner`'s own step then finds its value ready.
    ReducePair {
        op: ReduceOp,
        axes: Vec<usize>,
        partner: NodeId,
    },
    /// The value was computed by an earlier step ([`Kernel::ReducePair`]).
    Computed,
    AxisLinear {
        axis: usize,
        weight: Vec<f32>,
    },
    Upsample2x,
    MeanTime,
}

#[derive(Clone, Debug)]
pub(crate) struct Step {
    pub(crate) id: NodeId,
    pub(crate) module: String,
    pub(crate) mnemonic: &'static str,
    pub(crate) inputs: Vec<NodeId>,
    pub(crate) kernel: Kernel,
    /// In unobserved runs this step's work is done by a later step ([`fuse_gate_relu_add`]):
    /// it produces no value.
    pub(crate) folded: bool,
    /// In unobserved runs this `Add` step computes `relu(p * q) + x` itself:
    /// `([p, q], x)`.
    pub(crate) gate_relu_add: Option<([NodeId; 2], NodeId)>,
    /// Values no longer needed once this step ran.
    pub(crate) free: Vec<NodeId>,
}

/// A callback that sees every value a run computes.
type Observer<'a> = dyn FnMut(NodeId, &Array) + Send + 'a;

/// A graph lowered to a schedule of kernels; cheap to run many times.
#[derive(Clone, Debug)]
pub struct Program {
    graph: Verified,
    pub(crate) steps: Vec<Step>,
    level: Level,
    /// Intermediate buffers kept between runs ([`crate::buffers`]).
    pool: crate::buffers::Pool,
}

impl Program {
    /// Lowers `g` (weights re-laid for the kernels, instruction set detected once).
    pub fn new(g: &Verified) -> Program {
        let order = g.topo_order().expect("verified graphs are acyclic");
        let mut steps: Vec<Step> = order
            .iter()
            .map(|&id| {
                let node = g.node(id);
                let kernel = match &node.op {
                    Op::Input { .. } => Kernel::Input,
                    Op::Output => Kernel::Output,
                    Op::RepeatTime { steps } => Kernel::RepeatTime(*steps),
                    Op::Conv2d(c) if c.event_driven => Kernel::SpikeConv(SpikeConv::new(c)),
                    Op::Conv2d(c) => Kernel::DenseConv(MacConv::new(c)),
                    Op::BatchNorm(b) => {
                        let (gm, bt, m, v) = (
                            b.gamma.to_f32(),
                            b.beta.to_f32(),
                            b.running_mean.to_f32(),
                            b.running_var.to_f32(),
                        );
                        let (alpha, beta) = bn_affine(&gm, &bt, &m, &v, b.eps);
                        Kernel::BatchNorm {
                            alpha,
                            beta,
                            gamma: gm.into_owned(),
                            bias: bt.into_owned(),
                            eps: b.eps,
                        }
                    }
                    Op::Lif(l) => Kernel::Lif(*l),
                    Op::Binary(op) => Kernel::Binary(*op),
                    Op::Affine { scale, shift } => Kernel::Affine {
                        scale: *scale,
                        shift: *shift,
                    },
                    Op::Concat { axis } => Kernel::Concat(*axis),
                    Op::Relu => Kernel::Relu,
                    Op::Sigmoid => Kernel::Sigmoid,
                    Op::Reduce { op, axes } => Kernel::Reduce {
                        op: *op,
                        axes: axes.clone(),
                    },
                    Op::AxisLinear { axis, weight } => Kernel::AxisLinear {
                        axis: *axis,
                        weight: weight.to_f32().into_owned(),
                    },
                    Op::Upsample2x => Kernel::Upsample2x,
                    Op::MeanTime => Kernel::MeanTime,
                };
                Step {
                    id,
                    module: node.name.clone(),
                    mnemonic: node.op.mnemonic(),
                    inputs: g.inputs(id),
                    kernel,
                    folded: false,
                    gate_relu_add: None,
                    free: vec![],
                }
            })
            .collect();
        pair_reductions(&mut steps);
        hoist_time_invariant(&mut steps);
        pack_lif_outputs(g, &mut steps);
        fuse_gate_relu_add(g, &mut steps);
        // Free every value after its last use in either schedule (fused or not).
        let mut last_use: Vec<Option<usize>> = vec![None; g.id_bound()];
        for (pos, s) in steps.iter().enumerate() {
            let fused = s
                .gate_relu_add
                .iter()
                .flat_map(|(pq, x)| [pq[0], pq[1], *x]);
            for i in s.inputs.iter().copied().chain(fused) {
                last_use[i.index()] = Some(pos);
            }
        }
        for &id in &order {
            if let Some(pos) = last_use[id.index()] {
                steps[pos].free.push(id);
            }
        }
        Program {
            graph: g.clone(),
            steps,
            level: Level::detect(),
            pool: Default::default(),
        }
    }

    /// Like [`Program::new`] with the kernels' instruction set capped at `level` (never above
    /// what the CPU supports): for tests that every variant gives the same bits.
    pub fn with_level(g: &Verified, cap: Isa) -> Program {
        let mut p = Program::new(g);
        p.level = p.level.capped(cap);
        p
    }

    /// Frees the buffers kept from earlier runs (a program keeps one run's working set to
    /// reuse it; release it before other memory-hungry work).
    pub fn release_buffers(&self) {
        self.pool.clear();
    }

    /// The graph this program was lowered from.
    pub fn graph(&self) -> &Verified {
        &self.graph
    }

    /// The instruction-set level the kernels use.
    pub fn level(&self) -> Level {
        self.level
    }

    /// Runs on `input` (`[N, C, H, W]`, sides divisible by the graph's spatial divisor).
    pub fn run(&self, input: &Array, opts: &RunOptions) -> Result<RunResult, RuntimeError> {
        self.run_with(input, opts, None)
    }

    /// Runs, calling `observe(node, value)` for every value computed, in execution order (the
    /// same contract as `spikerc_compiler::interp::run_observed`; spikes are 0/1 arrays, so
    /// an observed run materialises every LIF's spikes, which an unobserved one may keep only
    /// as its consumer's bitmaps; the results are the same bits).
    pub fn run_observed(
        &self,
        input: &Array,
        opts: &RunOptions,
        mut observe: impl FnMut(NodeId, &Array) + Send,
    ) -> Result<RunResult, RuntimeError> {
        self.run_with(input, opts, Some(&mut observe))
    }

    fn run_with(
        &self,
        input: &Array,
        opts: &RunOptions,
        observe: Option<&mut Observer<'_>>,
    ) -> Result<RunResult, RuntimeError> {
        let (n, h, w) = check_input(&self.graph, input)?;
        check_threads(opts.threads)?;
        if opts.threads == 0 {
            return self.execute(input, (n, h, w), opts, observe, None);
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads)
            .build()
            .map_err(|e| RuntimeError::Threads {
                threads: opts.threads,
                message: e.to_string(),
            })?;
        pool.install(move || self.execute(input, (n, h, w), opts, observe, None))
    }

    /// Runs `input` once, setting every BatchNorm's statistics from its own input right before
    /// applying it (per-channel mean and biased variance over batch, time and space), so that
    /// downstream layers already see calibrated activations: one forward pass calibrates the
    /// whole network. Returns the statistics by BatchNorm module path. Used by
    /// `spikerc gen-model` to make random benchmark models fire like trained ones.
    pub fn calibrate_batch_norms(
        &self,
        input: &Array,
        opts: &RunOptions,
    ) -> Result<(RunResult, BTreeMap<String, BnStats>), RuntimeError> {
        let (n, h, w) = check_input(&self.graph, input)?;
        check_threads(opts.threads)?;
        let mut stats = BTreeMap::new();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads)
            .build()
            .map_err(|e| RuntimeError::Threads {
                threads: opts.threads,
                message: e.to_string(),
            })?;
        let res = pool.install(|| self.execute(input, (n, h, w), opts, None, Some(&mut stats)))?;
        Ok((res, stats))
    }

    /// Runs the schedule with a buffer pool ([`crate::buffers`]) for its intermediate values.
    fn execute(
        &self,
        input: &Array,
        nhw: (usize, usize, usize),
        opts: &RunOptions,
        observe: Option<&mut Observer<'_>>,
        calib: Option<&mut BTreeMap<String, BnStats>>,
    ) -> Result<RunResult, RuntimeError> {
        crate::buffers::scope(&self.pool, || {
            self.execute_steps(input, nhw, opts, observe, calib)
        })
    }

    fn execute_steps(
        &self,
        input: &Array,
        (n, h, w): (usize, usize, usize),
        opts: &RunOptions,
        mut observe: Option<&mut Observer<'_>>,
        mut calib: Option<&mut BTreeMap<String, BnStats>>,
    ) -> Result<RunResult, RuntimeError> {
        let g = &self.graph;
        let mut values: Vec<Option<Array>> = vec![None; g.id_bound()];
        // Unobserved runs take the fused schedule: LIF outputs kept only as their consumer's
        // bitmaps, folded steps skipped (see `ARCHITECTURE.md`, "Runtime lowering").
        let fused = observe.is_none() && calib.is_none();
        let mut packed: Vec<Option<crate::gather::Masks>> =
            (0..g.id_bound()).map(|_| None).collect();
        let mut res = RunResult::default();
        for step in &self.steps {
            let start = opts.profile.then(Instant::now);
            let node = g.node(step.id);
            let out_shape = node
                .fact
                .shape
                .resolve(n, h, w)
                .expect("checked divisibility");
            let args: Vec<&Array> = step
                .inputs
                .iter()
                .filter_map(|i| values[i.index()].as_ref())
                .collect();
            debug_assert!(
                args.len() == step.inputs.len()
                    || step.inputs.iter().any(|i| packed[i.index()].is_some())
                    || (fused && (step.folded || step.gate_relu_add.is_some())),
                "{}: an input was not computed",
                step.module
            );
            let mut counts = OpCounts::default();
            let len: usize = out_shape.iter().product();
            let oom = |e: crate::buffers::AllocError| RuntimeError::Alloc {
                bytes: e.bytes,
                module: step.module.clone(),
            };
            if !(fused && step.folded) {
                crate::buffers::prepare(&pool_requests(&step.kernel, len)).map_err(oom)?;
            }
            let out = match &step.kernel {
                Kernel::Binary(BinaryOp::Mul) if fused && step.folded => {
                    counts.mac = out_shape.iter().product::<usize>() as u64;
                    None
                }
                _ if fused && step.folded => None,
                Kernel::Binary(BinaryOp::Add) if fused && step.gate_relu_add.is_some() => {
                    let ([p, q], x) = step.gate_relu_add.expect("checked");
                    let v = |i: NodeId| values[i.index()].as_ref().expect("value computed");
                    Some(ops::mul_relu_add(v(p), v(q), v(x), &out_shape))
                }
                Kernel::LifPacked { lif, geo } if fused => {
                    let (masks, count) = ops::lif_packed(args[0], lif, geo, self.level);
                    res.spikes.insert(step.module.clone(), count);
                    counts.spikes_out = count;
                    counts.neuron_updates = args[0].len() as u64;
                    packed[step.id.index()] = Some(masks);
                    None
                }
                Kernel::SpikeConv(c) if packed[step.inputs[0].index()].is_some() => {
                    let masks = packed[step.inputs[0].index()].as_ref().expect("packed");
                    let in_shape = g
                        .node(step.inputs[0])
                        .fact
                        .shape
                        .resolve(n, h, w)
                        .expect("checked divisibility");
                    let (lead, hw, ohw) = conv_dims(&in_shape, &out_shape);
                    let (d, cc) = c.run_packed(masks, lead, hw, ohw, self.level);
                    counts.spikes_in = cc.spikes_in;
                    counts.ac = cc.ac;
                    Some(Array::new(out_shape.clone(), d))
                }
                kernel => Some(match kernel {
                    Kernel::Input => Array::new(
                        input.shape.clone(),
                        crate::buffers::try_copy(&input.data).map_err(oom)?,
                    ),
                    Kernel::Output => Array::new(
                        args[0].shape.clone(),
                        crate::buffers::try_copy(&args[0].data).map_err(oom)?,
                    ),
                    Kernel::RepeatTime(t) => {
                        let mut d = crate::buffers::overwritten(args[0].len() * t);
                        for c in d.chunks_exact_mut(args[0].len()) {
                            c.copy_from_slice(&args[0].data);
                        }
                        Array::new(out_shape.clone(), d)
                    }
                    Kernel::SpikeConv(c) => {
                        let (lead, hw, ohw) = conv_dims(&args[0].shape, &out_shape);
                        let (d, cc) = c.run(&args[0].data, lead, hw, ohw, self.level);
                        counts.spikes_in = cc.spikes_in;
                        counts.ac = cc.ac;
                        Array::new(out_shape.clone(), d)
                    }
                    Kernel::DenseConv(c) => {
                        let (lead, hw, ohw) = conv_dims(&args[0].shape, &out_shape);
                        let (d, cc) = c.run(&args[0].data, lead, hw, ohw, self.level);
                        counts.mac = cc.mac;
                        Array::new(out_shape.clone(), d)
                    }
                    Kernel::DenseConvRepeated(c, t) => {
                        let (lead, hw, ohw) = conv_dims(&args[0].shape, &out_shape);
                        let one = &args[0].data[..args[0].len() / t];
                        let (d, cc) = c.run(one, lead / t, hw, ohw, self.level);
                        counts.mac = cc.mac * *t as u64;
                        let mut out = crate::buffers::overwritten(d.len() * t);
                        for chunk in out.chunks_exact_mut(d.len()) {
                            chunk.copy_from_slice(&d);
                        }
                        crate::buffers::recycle(d);
                        Array::new(out_shape.clone(), out)
                    }
                    Kernel::BatchNorm {
                        alpha,
                        beta,
                        gamma,
                        bias,
                        eps,
                    } => match calib.as_deref_mut() {
                        None => ops::channel_affine(args[0], alpha, beta),
                        Some(stats) => {
                            let (mean, var) = ops::channel_stats(args[0]);
                            let (a, b) = bn_affine(gamma, bias, &mean, &var, *eps);
                            stats.insert(step.module.clone(), BnStats { mean, var });
                            ops::channel_affine(args[0], &a, &b)
                        }
                    },
                    Kernel::LifPacked { lif: l, .. } | Kernel::Lif(l) => {
                        let (s, count) = ops::lif(args[0], l);
                        res.spikes.insert(step.module.clone(), count);
                        counts.spikes_out = count;
                        counts.neuron_updates = args[0].len() as u64;
                        s
                    }
                    Kernel::Binary(op) => {
                        if *op == BinaryOp::Mul {
                            counts.mac = out_shape.iter().product::<usize>() as u64;
                        }
                        ops::binary(args[0], args[1], *op, &out_shape)
                    }
                    Kernel::Affine { scale, shift } => {
                        let (s, t) = (*scale, *shift);
                        ops::map(args[0], move |x| s * x + t)
                    }
                    Kernel::Concat(axis) => ops::concat(&args, *axis, &out_shape),
                    Kernel::Relu => ops::map(args[0], |x| x.max(0.0)),
                    Kernel::Sigmoid => ops::map(args[0], |x| 1.0 / (1.0 + (-x).exp())),
                    Kernel::Reduce { op, axes } => {
                        ops::reduce(args[0], *op, axes, &out_shape, self.level)
                    }
                    Kernel::ReducePair { op, axes, partner } => {
                        let mean_first = *op == ReduceOp::Mean;
                        let (mean, max) =
                            ops::reduce_both(args[0], true, true, axes, &out_shape, self.level);
                        let (mine, theirs) = if mean_first { (mean, max) } else { (max, mean) };
                        values[partner.index()] = theirs;
                        mine.expect("both reductions computed")
                    }
                    Kernel::Computed => values[step.id.index()]
                        .take()
                        .expect("computed by its pair step"),
                    Kernel::AxisLinear { axis, weight } => {
                        let a = args[0].shape[*axis];
                        counts.mac = (out_shape.iter().product::<usize>() * a) as u64;
                        ops::axis_linear(args[0], *axis, weight, &out_shape)
                    }
                    Kernel::Upsample2x => {
                        counts.mac = 4 * out_shape.iter().product::<usize>() as u64;
                        ops::upsample2x(args[0])
                    }
                    Kernel::MeanTime => ops::mean_time(args[0], &out_shape),
                }),
            };
            if let Some(out) = &out {
                debug_assert_eq!(
                    out.shape, out_shape,
                    "{} produced a wrong shape",
                    step.module
                );
                if let Some(observe) = observe.as_mut() {
                    observe(step.id, out);
                }
            }
            res.ops.entry(step.module.clone()).or_default().add(&counts);
            for f in &step.free {
                if let Some(dead) = values[f.index()].take() {
                    crate::buffers::recycle(dead.data);
                }
                packed[f.index()] = None;
            }
            if let Some(s) = start {
                res.timeline.push(NodeTime {
                    id: step.id,
                    module: step.module.clone(),
                    op: step.mnemonic,
                    time: s.elapsed(),
                });
            }
            match out {
                Some(out) if matches!(step.kernel, Kernel::Output) => res.outputs.push(out),
                Some(out) => values[step.id.index()] = Some(out),
                None => {}
            }
        }
        Ok(res)
    }
}

/// The worker threads a run with `threads` (0 = all cores) uses.
pub fn threads_used(threads: usize) -> usize {
    if threads == 0 {
        rayon::current_num_threads()
    } else {
        threads
    }
}

/// Refuses thread counts above [`max_threads`].
fn check_threads(threads: usize) -> Result<(), RuntimeError> {
    let max = max_threads();
    if threads > max {
        return Err(RuntimeError::Threads {
            threads,
            message: format!("more than {max} (4 x the {} available cores)", max / 4),
        });
    }
    Ok(())
}

/// The buffers a step takes from the pool, by size (elements), for [`crate::buffers::prepare`].
fn pool_requests(k: &Kernel, len: usize) -> Vec<usize> {
    match k {
        Kernel::Input | Kernel::Output | Kernel::LifPacked { .. } | Kernel::Computed => vec![],
        Kernel::DenseConvRepeated(_, t) => vec![len / t, len],
        Kernel::Reduce { op, .. } if *op != ReduceOp::Mean => vec![],
        Kernel::Reduce { .. } | Kernel::ReducePair { .. } => {
            vec![len.saturating_mul(2 * spikerc_compiler::interp::MEAN_LANES)]
        }
        _ => vec![len],
    }
}

/// Values that are equal at every time step — `RepeatTime` outputs, and dense convolutions of
/// such values — let their dense convolutions run once ([`Kernel::DenseConvRepeated`]).
fn hoist_time_invariant(steps: &mut [Step]) {
    let mut steps_of: std::collections::HashMap<NodeId, usize> = Default::default();
    for s in steps.iter_mut() {
        let t = match &s.kernel {
            Kernel::RepeatTime(t) => Some(*t),
            Kernel::DenseConv(_) => s.inputs.first().and_then(|i| steps_of.get(i).copied()),
            _ => None,
        };
        if let Some(t) = t {
            if let Kernel::DenseConv(c) = &s.kernel {
                s.kernel = Kernel::DenseConvRepeated(c.clone(), t);
            }
            steps_of.insert(s.id, t);
        }
    }
}

/// Fuses the attention's last gate, its ReLU and the block's residual add —
/// `Add(Relu(Mul(p, q)), x)` with the `Mul` and the `Relu` used only once and `x` of the
/// output's shape — into one pass at the `Add` step ([`ops::mul_relu_add`]).
fn fuse_gate_relu_add(g: &Verified, steps: &mut [Step]) {
    let pos: std::collections::HashMap<NodeId, usize> =
        steps.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    let single_user = |id: NodeId| g.users(id).len() == 1;
    for d in 0..steps.len() {
        if !matches!(steps[d].kernel, Kernel::Binary(BinaryOp::Add)) || steps[d].inputs.len() != 2 {
            continue;
        }
        for k in 0..2 {
            let (r, x) = (steps[d].inputs[k], steps[d].inputs[1 - k]);
            let rs = pos[&r];
            if !matches!(steps[rs].kernel, Kernel::Relu) || !single_user(r) {
                continue;
            }
            let m = steps[rs].inputs[0];
            let ms = pos[&m];
            if !matches!(steps[ms].kernel, Kernel::Binary(BinaryOp::Mul)) || !single_user(m) {
                continue;
            }
            if g.node(x).fact.shape != g.node(steps[d].id).fact.shape {
                continue;
            }
            let pq = [steps[ms].inputs[0], steps[ms].inputs[1]];
            steps[ms].folded = true;
            steps[rs].folded = true;
            steps[d].gate_relu_add = Some((pq, x));
            break;
        }
    }
}

/// Marks every LIF whose only user is a spike convolution as [`Kernel::LifPacked`].
fn pack_lif_outputs(g: &Verified, steps: &mut [Step]) {
    let pos: std::collections::HashMap<NodeId, usize> =
        steps.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    for i in 0..steps.len() {
        let Kernel::Lif(lif) = steps[i].kernel else {
            continue;
        };
        let users = g.users(steps[i].id);
        let [(user, _)] = users.as_slice() else {
            continue;
        };
        if let Kernel::SpikeConv(c) = &steps[pos[user]].kernel {
            let geo = c.geo.clone();
            steps[i].kernel = Kernel::LifPacked { lif, geo };
        }
    }
}

/// Pairs a mean and a max over the same input and axes (the attention's avg/max pooling):
/// the earlier step computes both in one pass, the later one becomes [`Kernel::Computed`].
fn pair_reductions(steps: &mut [Step]) {
    for i in 0..steps.len() {
        let Kernel::Reduce { op, axes } = &steps[i].kernel else {
            continue;
        };
        let (op, axes) = (*op, axes.clone());
        let partner = (i + 1..steps.len()).find(|&j| {
            matches!(&steps[j].kernel, Kernel::Reduce { op: o, axes: a } if *o != op && *a == axes)
                && steps[j].inputs == steps[i].inputs
        });
        if let Some(j) = partner {
            steps[i].kernel = Kernel::ReducePair {
                op,
                axes,
                partner: steps[j].id,
            };
            steps[j].kernel = Kernel::Computed;
        }
    }
}

/// Per-channel statistics a BatchNorm was calibrated with.
#[derive(Clone, Debug, PartialEq)]
pub struct BnStats {
    pub mean: Vec<f32>,
    /// Biased (population) variance.
    pub var: Vec<f32>,
}

/// `alpha = gamma / sqrt(var + eps)`, `beta = bias - mean * alpha`, as the interpreter does.
fn bn_affine(g: &[f32], b: &[f32], m: &[f32], v: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>) {
    let alpha: Vec<f32> = (0..g.len())
        .map(|c| g[c] * (1.0 / (v[c] + eps).sqrt()))
        .collect();
    let beta = (0..g.len()).map(|c| b[c] - m[c] * alpha[c]).collect();
    (alpha, beta)
}

/// `(lead, (h, w), (oh, ow))` of a convolution from its input and output shapes.
fn conv_dims(x: &[usize], out: &[usize]) -> (usize, (usize, usize), (usize, usize)) {
    let r = x.len();
    let lead: usize = x[..r - 3].iter().product();
    (lead, (x[r - 2], x[r - 1]), (out[r - 2], out[r - 1]))
}
