//! The reference interpreter: the definition of what the IR means.
//!
//! It executes a [`Verified`] graph node by node in topological order, plainly, in f32, and
//! counts the spikes every LIF node emits. Engines (the event-driven runtime, the accelerator
//! simulator) and every pass are tested against it. Speed is not its job; clarity is.
//!
//! Arithmetic (the contract other engines reproduce, see `ARCHITECTURE.md`):
//! * convolutions accumulate in f32 in the canonical order — kernel row, then kernel column,
//!   then input channel — starting from 0, adding the bias last; no fused multiply-add;
//!   `axis_linear` accumulates in f32 over its input axis in ascending order;
//! * an event-driven convolution whose weights are f16 sums the f16 weights of its active
//!   inputs *exactly* (in f64, which is exact for up to 2^13 f16 terms), rounds once to f32, then
//!   adds the bias in f32: the sum cannot depend on accumulation order, so no engine can flip a
//!   spike by summing in another order;
//! * means accumulate in f64 in 16 interleaved lanes (element `k` of the reduced sequence, in
//!   row-major order, into lane `k % 16`), combine the lanes in a fixed pairwise tree, divide
//!   and round once to f32 — a fixed order that engines can vectorise;
//! * LIF state is f32, updated exactly as `spikerir-model.md` writes it.

mod kernels;

pub use kernels::{
    bilinear_up2, combine_lanes, concat, conv2d, lif_forward, reduce, up2_source, MEAN_LANES,
};

use std::collections::BTreeMap;

use crate::ir::{NodeId, Op, ReduceOp};
use crate::verify::Verified;

/// A dense f32 activation, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Array {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Array {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "array shape/data mismatch"
        );
        Array { shape, data }
    }
    pub fn zeros(shape: Vec<usize>) -> Array {
        let n = shape.iter().product();
        Array {
            shape,
            data: vec![0.0; n],
        }
    }
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Why the interpreter refused an input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InterpError {
    #[error("input has shape {found:?}, expected [N, {channels}, H, W]")]
    InputRank { found: Vec<usize>, channels: usize },
    #[error("input image is {h}x{w}; this model needs sides divisible by {divisor} (pad the image or use an engine that pads)")]
    InputSize { h: usize, w: usize, divisor: usize },
    #[error("input is empty (batch {n}, {h}x{w})")]
    Empty { n: usize, h: usize, w: usize },
}

/// Results of one execution.
#[derive(Clone, Debug, Default)]
pub struct Execution {
    /// One array per output node, in output order.
    pub outputs: Vec<Array>,
    /// Spikes emitted by each LIF node over all time steps and images, by module path.
    pub spikes: BTreeMap<String, u64>,
    /// Neuron updates (elements x time steps) per LIF node.
    pub neurons: BTreeMap<String, u64>,
}

/// Checks an input array against a graph and returns `(n, h, w)`.
pub fn check_input(g: &Verified, input: &Array) -> Result<(usize, usize, usize), InterpError> {
    let channels = match g.input().map(|i| &g.node(i).op) {
        Some(Op::Input { channels }) => *channels,
        _ => unreachable!("verified graphs have an input"),
    };
    if input.shape.len() != 4 || input.shape[1] != channels {
        return Err(InterpError::InputRank {
            found: input.shape.clone(),
            channels,
        });
    }
    let (n, h, w) = (input.shape[0], input.shape[2], input.shape[3]);
    if n == 0 || h == 0 || w == 0 {
        return Err(InterpError::Empty { n, h, w });
    }
    let divisor = g.spatial_divisor();
    if h % divisor != 0 || w % divisor != 0 {
        return Err(InterpError::InputSize { h, w, divisor });
    }
    Ok((n, h, w))
}

/// Interpreter settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Accumulate convolutions in f64 (one rounding per output) instead of the canonical f32
    /// order. Closer to exact arithmetic — useful to judge a graph against an external
    /// reference without accumulation-order noise deciding borderline spikes; engines match
    /// the default (f32) mode.
    pub wide_accumulation: bool,
}

/// Runs the graph on `input` (`[N, C, H, W]`).
pub fn run(g: &Verified, input: &Array) -> Result<Execution, InterpError> {
    run_with(g, input, Options::default(), |_, _| {})
}

/// Runs the graph, calling `observe(node, value)` for every value computed (for tests and
/// debugging tools that compare intermediate results).
pub fn run_observed(
    g: &Verified,
    input: &Array,
    observe: impl FnMut(NodeId, &Array),
) -> Result<Execution, InterpError> {
    run_with(g, input, Options::default(), observe)
}

/// Runs the graph with explicit [`Options`].
pub fn run_with(
    g: &Verified,
    input: &Array,
    opts: Options,
    mut observe: impl FnMut(NodeId, &Array),
) -> Result<Execution, InterpError> {
    run_intercepted(g, input, opts, |id, a| observe(id, a))
}

/// Runs the graph, letting `intercept(node, value)` see and replace every value before its
/// users read it (teacher-forced checks feed a reference's values into the graph). A
/// replacement must keep the value's shape; spike counts are taken before interception.
pub fn run_intercepted(
    g: &Verified,
    input: &Array,
    opts: Options,
    mut observe: impl FnMut(NodeId, &mut Array),
) -> Result<Execution, InterpError> {
    let (n, h, w) = check_input(g, input)?;
    let order = g.topo_order().expect("verified graphs are acyclic");
    // Remaining users per node, so values are dropped as soon as they are dead.
    let mut remaining: Vec<usize> = vec![0; g.id_bound()];
    for &id in &order {
        remaining[id.index()] = g.users(id).len();
    }
    let mut values: Vec<Option<Array>> = vec![None; g.id_bound()];
    let mut exec = Execution::default();
    for id in order {
        let node = g.node(id);
        let ins = g.inputs(id);
        let args: Vec<&Array> = ins
            .iter()
            .map(|i| values[i.index()].as_ref().expect("value computed"))
            .collect();
        let out_shape = node
            .fact
            .shape
            .resolve(n, h, w)
            .expect("checked divisibility");
        let mut out = match &node.op {
            Op::Input { .. } => input.clone(),
            Op::Output => args[0].clone(),
            Op::RepeatTime { steps } => {
                let mut d = Vec::with_capacity(args[0].len() * steps);
                for _ in 0..*steps {
                    d.extend_from_slice(&args[0].data);
                }
                Array::new(out_shape.clone(), d)
            }
            Op::Conv2d(c) => kernels::conv2d(args[0], c, &out_shape, opts.wide_accumulation),
            Op::BatchNorm(b) => kernels::batch_norm(args[0], b),
            Op::Lif(l) => {
                let (s, count) = lif_forward(args[0], l);
                exec.spikes.insert(node.name.clone(), count);
                exec.neurons.insert(node.name.clone(), args[0].len() as u64);
                s
            }
            Op::Binary(op) => kernels::binary(args[0], args[1], *op, &out_shape),
            Op::Affine { scale, shift } => map(args[0], |x| scale * x + shift),
            Op::Concat { axis } => kernels::concat(&args, *axis, &out_shape),
            Op::Relu => map(args[0], |x| x.max(0.0)),
            Op::Sigmoid => map(args[0], kernels::sigmoid),
            Op::Reduce { op, axes } => kernels::reduce(args[0], *op, axes, &out_shape),
            Op::AxisLinear { axis, weight } => {
                kernels::axis_linear(args[0], *axis, &weight.to_f32(), &out_shape)
            }
            Op::Upsample2x => bilinear_up2(args[0]),
            Op::MeanTime => {
                let mut r = kernels::reduce(
                    args[0],
                    ReduceOp::Mean,
                    &[0],
                    &[&[1], &out_shape[..]].concat(),
                );
                r.shape = out_shape.clone();
                r
            }
        };
        debug_assert_eq!(out.shape, out_shape, "{} produced a wrong shape", node.name);
        observe(id, &mut out);
        assert_eq!(out.shape, out_shape, "{}: an interceptor changed the shape", node.name);
        for i in ins {
            remaining[i.index()] -= 1;
            if remaining[i.index()] == 0 {
                values[i.index()] = None;
            }
        }
        if matches!(node.op, Op::Output) {
            exec.outputs.push(out);
        } else {
            values[id.index()] = Some(out);
        }
    }
    Ok(exec)
}

fn map(x: &Array, f: impl Fn(f32) -> f32) -> Array {
    Array {
        shape: x.shape.clone(),
        data: x.data.iter().map(|&v| f(v)).collect(),
    }
}

/// Mirror index for reflect padding (PyTorch `reflect`), valid for any offset.
fn reflect(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let m = i.rem_euclid(period);
    (if m < n as isize { m } else { period - m }) as usize
}

impl Array {
    /// Pads the last two axes at the bottom/right with reflection up to multiples of `div`.
    pub fn pad_reflect_to_multiple(&self, div: usize) -> Array {
        let r = self.shape.len();
        let (h, w) = (self.shape[r - 2], self.shape[r - 1]);
        let (ph, pw) = (h.div_ceil(div) * div, w.div_ceil(div) * div);
        if (ph, pw) == (h, w) || h == 0 || w == 0 {
            return self.clone();
        }
        let lead: usize = self.shape[..r - 2].iter().product();
        let mut data = Vec::with_capacity(lead * ph * pw);
        for p in 0..lead {
            let src = &self.data[p * h * w..(p + 1) * h * w];
            for y in 0..ph {
                let sy = reflect(y as isize, h);
                data.extend((0..pw).map(|x| src[sy * w + reflect(x as isize, w)]));
            }
        }
        let mut shape = self.shape.clone();
        shape[r - 2] = ph;
        shape[r - 1] = pw;
        Array::new(shape, data)
    }

    /// The top-left `h x w` window of the last two axes.
    pub fn crop(&self, h: usize, w: usize) -> Array {
        let r = self.shape.len();
        let (sh, sw) = (self.shape[r - 2], self.shape[r - 1]);
        if (sh, sw) == (h, w) {
            return self.clone();
        }
        let lead: usize = self.shape[..r - 2].iter().product();
        let mut data = Vec::with_capacity(lead * h * w);
        for p in 0..lead {
            for y in 0..h {
                let row = p * sh * sw + y * sw;
                data.extend_from_slice(&self.data[row..row + w]);
            }
        }
        let mut shape = self.shape.clone();
        shape[r - 2] = h;
        shape[r - 1] = w;
        Array::new(shape, data)
    }
}

#[cfg(test)]
mod tests;
