//! The operations of the spike-event IR and their typing rules.
//!
//! Each op computes its output [`Fact`] from its input facts ([`Op::infer`]); the verifier and
//! the shape/kind inference pass both rely on this single definition. The meaning of each op
//! is defined by the reference interpreter (`crate::interp`).

use serde::{Deserialize, Serialize};

use super::fact::{Dim, Fact, ValueKind};
use crate::tensor::Tensor;

/// A 2-D convolution applied to every time step independently (or once, without time axis).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv2d {
    /// `[out_channels, in_channels, kh, kw]`.
    pub weight: Tensor,
    /// `[out_channels]`, if any.
    pub bias: Option<Tensor>,
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    /// Set by shape/kind inference: the input is spikes, so the conv is executed and costed
    /// as accumulates (AC) of weight columns per spike rather than multiply-accumulates.
    pub event_driven: bool,
    /// How the convolution is computed (its rounding); set by the `winograd` pass.
    pub algorithm: ConvAlgorithm,
}

/// The arithmetic of a convolution. Both compute the same mathematical function; they round
/// differently, and every engine reproduces the one an op carries bit for bit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConvAlgorithm {
    /// Direct summation in the canonical order (see `interp::kernels::conv2d`).
    #[default]
    Direct,
    /// Winograd F(2x2, 3x3) ([`crate::winograd`]): real-valued 3x3 convolutions with stride 1
    /// and padding 1 only.
    Winograd2x2,
}

impl Conv2d {
    pub fn out_channels(&self) -> usize {
        self.weight.shape[0]
    }
    pub fn in_channels(&self) -> usize {
        self.weight.shape[1]
    }
    pub fn kernel(&self) -> [usize; 2] {
        [self.weight.shape[2], self.weight.shape[3]]
    }
    /// Whether [`ConvAlgorithm::Winograd2x2`] can compute this convolution.
    pub fn winograd_eligible(&self) -> bool {
        !self.event_driven && self.kernel() == [3, 3] && self.stride == [1, 1] && self.padding == [1, 1]
    }
}

/// BatchNorm2d in eval form: `y = (x - mean) / sqrt(var + eps) * gamma + beta`, per channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchNorm {
    pub gamma: Tensor,
    pub beta: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub eps: f32,
}

/// What a LIF neuron does after it fires.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Reset {
    /// `V = v_reset` after a spike.
    Hard { v_reset: f32 },
    /// `V = H - v_threshold` after a spike (SpikingJelly `v_reset=None`).
    Soft,
}

/// Leaky integrate-and-fire neurons, multi-step (all T at once), state reset per image.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lif {
    pub tau: f32,
    pub v_threshold: f32,
    pub reset: Reset,
    pub decay_input: bool,
}

impl Lif {
    /// The value the membrane starts from and decays towards.
    pub fn v_rest(&self) -> f32 {
        match self.reset {
            Reset::Hard { v_reset } => v_reset,
            Reset::Soft => 0.0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReduceOp {
    Mean,
    Max,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinaryOp {
    Add,
    Mul,
}

/// An IR operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// The image batch `[N, C, H, W]`, real, nominally in [0, 1].
    Input {
        channels: usize,
    },
    /// Direct encoding: the same value at each of `steps` time steps.
    RepeatTime {
        steps: usize,
    },
    Conv2d(Conv2d),
    BatchNorm(BatchNorm),
    Lif(Lif),
    /// Elementwise with broadcasting (a size-1 axis broadcasts).
    Binary(BinaryOp),
    /// `y = scale * x + shift` (e.g. `1 - t` in the refinement block).
    Affine {
        scale: f32,
        shift: f32,
    },
    /// Concatenation of all inputs along `axis`, inputs in port order.
    Concat {
        axis: usize,
    },
    Relu,
    Sigmoid,
    /// Mean or max over `axes`, keeping them as size 1.
    Reduce {
        op: ReduceOp,
        axes: Vec<usize>,
    },
    /// Mixes one axis with a `[out, in]` matrix (the attention's 1x1 Conv3d MLPs): for every
    /// other index, `y[o] = sum_i weight[o, i] * x[i]`.
    AxisLinear {
        axis: usize,
        weight: Tensor,
    },
    /// Bilinear x2 upsampling of the last two axes, `align_corners=False`.
    Upsample2x,
    /// Mean over the time axis, dropping it: `[T, N, C, H, W] -> [N, C, H, W]`.
    MeanTime,
    /// A graph result.
    Output,
}

/// How an op is costed by accounting engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CostClass {
    /// Accumulates per input spike and reachable output.
    Accumulate,
    /// Multiply-accumulates per output element.
    MultiplyAccumulate,
    /// Neuron updates per element and step.
    Neuron,
    /// No arithmetic worth counting (data movement, reshaping).
    Free,
}

impl Op {
    /// Short lowercase mnemonic used in dumps and reports.
    pub fn mnemonic(&self) -> &'static str {
        match self {
            Op::Input { .. } => "input",
            Op::RepeatTime { .. } => "repeat_t",
            Op::Conv2d(c) if c.event_driven => "conv2d.ac",
            Op::Conv2d(_) => "conv2d",
            Op::BatchNorm(_) => "batch_norm",
            Op::Lif(_) => "lif",
            Op::Binary(BinaryOp::Add) => "add",
            Op::Binary(BinaryOp::Mul) => "mul",
            Op::Affine { .. } => "affine",
            Op::Concat { .. } => "concat",
            Op::Relu => "relu",
            Op::Sigmoid => "sigmoid",
            Op::Reduce {
                op: ReduceOp::Mean, ..
            } => "reduce_mean",
            Op::Reduce {
                op: ReduceOp::Max, ..
            } => "reduce_max",
            Op::AxisLinear { .. } => "axis_linear",
            Op::Upsample2x => "upsample2x",
            Op::MeanTime => "mean_t",
            Op::Output => "output",
        }
    }

    /// Number of inputs the op takes; `None` for variadic (concat: at least one).
    pub fn arity(&self) -> Option<usize> {
        match self {
            Op::Input { .. } => Some(0),
            Op::Binary(_) => Some(2),
            Op::Concat { .. } => None,
            _ => Some(1),
        }
    }

    pub fn cost_class(&self) -> CostClass {
        match self {
            Op::Conv2d(c) if c.event_driven => CostClass::Accumulate,
            Op::Conv2d(_) | Op::AxisLinear { .. } | Op::Upsample2x | Op::Binary(BinaryOp::Mul) => {
                CostClass::MultiplyAccumulate
            }
            Op::Lif(_) => CostClass::Neuron,
            _ => CostClass::Free,
        }
    }

    /// Parameter tensors of the op, with a role name each.
    pub fn params(&self) -> Vec<(&'static str, &Tensor)> {
        match self {
            Op::Conv2d(c) => {
                let mut v = vec![("weight", &c.weight)];
                if let Some(b) = &c.bias {
                    v.push(("bias", b));
                }
                v
            }
            Op::BatchNorm(b) => vec![
                ("weight", &b.gamma),
                ("bias", &b.beta),
                ("running_mean", &b.running_mean),
                ("running_var", &b.running_var),
            ],
            Op::AxisLinear { weight, .. } => vec![("weight", weight)],
            _ => vec![],
        }
    }

    /// Mutable access to the parameter tensors (for passes such as quantization).
    pub fn params_mut(&mut self) -> Vec<(&'static str, &mut Tensor)> {
        match self {
            Op::Conv2d(c) => {
                let mut v = vec![("weight", &mut c.weight)];
                if let Some(b) = &mut c.bias {
                    v.push(("bias", b));
                }
                v
            }
            Op::BatchNorm(b) => vec![
                ("weight", &mut b.gamma),
                ("bias", &mut b.beta),
                ("running_mean", &mut b.running_mean),
                ("running_var", &mut b.running_var),
            ],
            Op::AxisLinear { weight, .. } => vec![("weight", weight)],
            _ => vec![],
        }
    }

    /// The output fact for the given input facts, or why they are not acceptable.
    pub fn infer(&self, inputs: &[&Fact]) -> Result<Fact, String> {
        if let Some(n) = self.arity() {
            if inputs.len() != n {
                return Err(format!("takes {n} input(s), has {}", inputs.len()));
            }
        } else if inputs.is_empty() {
            return Err("takes at least one input, has 0".into());
        }
        let real_kind = |f: &Fact| {
            if f.kind == ValueKind::Spikes {
                ValueKind::RealSeq
            } else {
                f.kind
            }
        };
        match self {
            Op::Input { channels } => Ok(Fact::new(
                ValueKind::Real,
                vec![
                    Dim::Batch,
                    Dim::Fixed(*channels),
                    Dim::Height(0),
                    Dim::Width(0),
                ],
            )),
            Op::RepeatTime { steps } => {
                let x = inputs[0];
                expect_kind(x, &[ValueKind::Real])?;
                if *steps == 0 {
                    return Err("repeats over 0 time steps".into());
                }
                let mut dims = vec![Dim::Fixed(*steps)];
                dims.extend(x.shape.0.iter().copied());
                Ok(Fact::new(ValueKind::RealSeq, dims))
            }
            Op::Conv2d(c) => {
                let x = inputs[0];
                check_image_like(x)?;
                let ci = channel_of(x)?;
                if c.weight.shape.len() != 4 {
                    return Err(format!(
                        "weight has rank {}, expected 4",
                        c.weight.shape.len()
                    ));
                }
                if ci != c.in_channels() {
                    return Err(format!(
                        "input has {ci} channels, weight expects {}",
                        c.in_channels()
                    ));
                }
                if let Some(b) = &c.bias {
                    if b.shape != [c.out_channels()] {
                        return Err(format!(
                            "bias shape {:?}, expected [{}]",
                            b.shape,
                            c.out_channels()
                        ));
                    }
                }
                if c.event_driven && x.kind != ValueKind::Spikes {
                    return Err(format!(
                        "is event-driven (AC-costed) but its input is {}",
                        x.kind
                    ));
                }
                if c.algorithm == ConvAlgorithm::Winograd2x2 && !c.winograd_eligible() {
                    return Err(format!(
                        "is marked Winograd F(2x2,3x3) but is {} with kernel {:?}, stride {:?}, padding {:?} (needs a real-valued 3x3 conv, stride 1, padding 1)",
                        if c.event_driven { "event-driven" } else { "real-valued" },
                        c.kernel(),
                        c.stride,
                        c.padding
                    ));
                }
                let r = x.shape.rank();
                let mut dims = x.shape.0.clone();
                dims[r - 3] = Dim::Fixed(c.out_channels());
                let k = c.kernel();
                for a in 0..2 {
                    dims[r - 2 + a] = conv_dim(dims[r - 2 + a], k[a], c.stride[a], c.padding[a])?;
                }
                Ok(Fact::new(real_kind(x), dims))
            }
            Op::BatchNorm(b) => {
                let x = inputs[0];
                check_image_like(x)?;
                let c = channel_of(x)?;
                for (name, t) in [
                    ("weight", &b.gamma),
                    ("bias", &b.beta),
                    ("running_mean", &b.running_mean),
                    ("running_var", &b.running_var),
                ] {
                    if t.shape != [c] {
                        return Err(format!("{name} shape {:?}, expected [{c}]", t.shape));
                    }
                }
                Ok(Fact::new(real_kind(x), x.shape.0.clone()))
            }
            Op::Lif(l) => {
                let x = inputs[0];
                expect_kind(x, &[ValueKind::RealSeq])?;
                if !(l.tau.is_finite() && l.tau > 0.0) || !l.v_threshold.is_finite() {
                    return Err(format!(
                        "has tau {} and v_threshold {}",
                        l.tau, l.v_threshold
                    ));
                }
                Ok(Fact::new(ValueKind::Spikes, x.shape.0.clone()))
            }
            Op::Binary(_) => {
                let (a, b) = (inputs[0], inputs[1]);
                if a.shape.rank() != b.shape.rank() || a.kind.has_time() != b.kind.has_time() {
                    return Err(format!("operands {a} and {b} differ in rank or time axis"));
                }
                let mut dims = Vec::with_capacity(a.shape.rank());
                for (i, (&da, &db)) in a.shape.0.iter().zip(&b.shape.0).enumerate() {
                    dims.push(match (da, db) {
                        _ if da == db => da,
                        (Dim::Fixed(1), d) | (d, Dim::Fixed(1)) => d,
                        _ => {
                            return Err(format!(
                                "operands {a} and {b} do not broadcast on axis {i}"
                            ))
                        }
                    });
                }
                let kind = if a.kind.has_time() {
                    ValueKind::RealSeq
                } else {
                    ValueKind::Real
                };
                Ok(Fact::new(kind, dims))
            }
            Op::Affine { .. } | Op::Relu | Op::Sigmoid => {
                let x = inputs[0];
                Ok(Fact::new(real_kind(x), x.shape.0.clone()))
            }
            Op::Concat { axis } => {
                let first = inputs[0];
                if *axis >= first.shape.rank() {
                    return Err(format!("axis {axis} out of range for {first}"));
                }
                let mut total = 0;
                for f in inputs {
                    if f.shape.rank() != first.shape.rank()
                        || f.kind.has_time() != first.kind.has_time()
                    {
                        return Err(format!(
                            "operands {first} and {f} differ in rank or time axis"
                        ));
                    }
                    for (i, (&da, &db)) in first.shape.0.iter().zip(&f.shape.0).enumerate() {
                        if i != *axis && da != db {
                            return Err(format!("operands {first} and {f} differ on axis {i}"));
                        }
                    }
                    total += f.shape.0[*axis]
                        .fixed()
                        .ok_or_else(|| format!("concat axis {axis} of {f} is not fixed"))?;
                }
                let mut dims = first.shape.0.clone();
                dims[*axis] = Dim::Fixed(total);
                let kind = if inputs.iter().all(|f| f.kind == ValueKind::Spikes) {
                    ValueKind::Spikes
                } else {
                    real_kind(first)
                };
                Ok(Fact::new(kind, dims))
            }
            Op::Reduce { axes, .. } => {
                let x = inputs[0];
                let mut dims = x.shape.0.clone();
                for &a in axes {
                    if a >= dims.len() {
                        return Err(format!("axis {a} out of range for {x}"));
                    }
                    if dims[a] == Dim::Batch {
                        return Err("reduces over the batch axis".into());
                    }
                    dims[a] = Dim::Fixed(1);
                }
                Ok(Fact::new(real_kind(x), dims))
            }
            Op::AxisLinear { axis, weight } => {
                let x = inputs[0];
                let n_in = x
                    .shape
                    .0
                    .get(*axis)
                    .and_then(|d| d.fixed())
                    .ok_or_else(|| format!("axis {axis} of {x} is not a fixed axis"))?;
                if weight.shape.len() != 2 || weight.shape[1] != n_in {
                    return Err(format!(
                        "weight shape {:?}, expected [_, {n_in}]",
                        weight.shape
                    ));
                }
                let mut dims = x.shape.0.clone();
                dims[*axis] = Dim::Fixed(weight.shape[0]);
                Ok(Fact::new(real_kind(x), dims))
            }
            Op::Upsample2x => {
                let x = inputs[0];
                check_image_like(x)?;
                let r = x.shape.rank();
                let mut dims = x.shape.0.clone();
                for d in &mut dims[r - 2..] {
                    *d = match *d {
                        Dim::Height(k) if k > 0 => Dim::Height(k - 1),
                        Dim::Width(k) if k > 0 => Dim::Width(k - 1),
                        Dim::Fixed(v) => Dim::Fixed(2 * v),
                        other => {
                            return Err(format!(
                                "cannot upsample axis {other} beyond the input resolution"
                            ))
                        }
                    };
                }
                Ok(Fact::new(real_kind(x), dims))
            }
            Op::MeanTime => {
                let x = inputs[0];
                expect_kind(x, &[ValueKind::RealSeq, ValueKind::Spikes])?;
                Ok(Fact::new(ValueKind::Real, x.shape.0[1..].to_vec()))
            }
            Op::Output => Ok(inputs[0].clone()),
        }
    }
}

fn expect_kind(x: &Fact, kinds: &[ValueKind]) -> Result<(), String> {
    if kinds.contains(&x.kind) {
        Ok(())
    } else {
        let want: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
        Err(format!("expects {} input, got {x}", want.join(" or ")))
    }
}

fn check_image_like(x: &Fact) -> Result<(), String> {
    match (x.kind.has_time(), x.shape.rank()) {
        (true, 5) | (false, 4) => Ok(()),
        _ => Err(format!("expects an image-like [T,]N,C,H,W input, got {x}")),
    }
}

fn channel_of(x: &Fact) -> Result<usize, String> {
    x.shape
        .channels()
        .ok_or_else(|| format!("channel axis of {x} is not fixed"))
}

/// Output size of a conv along one spatial axis. Symbolic axes support the "same" geometry
/// (stride 1, `k = 2p + 1`) and the halving one (stride 2, `k = 2p + 1`).
fn conv_dim(d: Dim, k: usize, s: usize, p: usize) -> Result<Dim, String> {
    if s == 0 || k == 0 {
        return Err(format!("kernel {k} / stride {s} must be positive"));
    }
    match d {
        Dim::Fixed(v) => {
            let padded = p
                .checked_mul(2)
                .and_then(|pp| pp.checked_add(v))
                .ok_or_else(|| format!("padding {p} is too large"))?;
            if padded < k {
                return Err(format!("kernel {k} larger than padded input {padded}"));
            }
            Ok(Dim::Fixed((padded - k) / s + 1))
        }
        Dim::Height(sh) | Dim::Width(sh) if k == 2 * p + 1 && (s == 1 || s == 2) => {
            let sh = if s == 2 { sh.saturating_add(1) } else { sh };
            Ok(if matches!(d, Dim::Height(_)) {
                Dim::Height(sh)
            } else {
                Dim::Width(sh)
            })
        }
        _ => Err(format!(
            "kernel {k}, stride {s}, padding {p} on symbolic axis {d} is not supported"
        )),
    }
}
