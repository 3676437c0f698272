//! The building blocks of the libtorch SpikerIR, one struct per PyTorch module, each holding
//! shallow clones of its [`VarStore`](tch::nn::VarStore) variables (so loading weights into
//! the store, moving it to a device or casting it is seen by the layers).
//!
//! Time-carrying values are `[T, N, C, H, W]`; stateless layers (conv, BN) run on the
//! `[T*N, C, H, W]` view, exactly as SpikingJelly's multi-step wrappers do (so train-mode BN
//! takes its batch statistics over T, N, H and W).

use tch::{nn, Kind, Tensor};

use crate::HyperParams;

/// PyTorch's default initialisation bound for conv weights and biases: `1/sqrt(fan_in)`
/// (`kaiming_uniform_(a=sqrt(5))` gives the same bound).
fn default_init(fan_in: i64) -> nn::Init {
    let b = 1.0 / (fan_in.max(1) as f64).sqrt();
    nn::Init::Uniform { lo: -b, up: b }
}

/// Merges `[T, N, ...]` into `[T*N, ...]`.
fn merge_tn(x: &Tensor) -> (Tensor, i64, i64) {
    let s = x.size();
    (x.flatten(0, 1), s[0], s[1])
}

/// Splits `[T*N, ...]` back into `[T, N, ...]`.
fn split_tn(x: &Tensor, t: i64, n: i64) -> Tensor {
    let mut s = x.size();
    s[0] = n;
    s.insert(0, t);
    x.reshape(s.as_slice())
}

/// A 2-D convolution with square kernel, "same" padding `k/2` and optional bias.
#[derive(Debug)]
pub struct Conv {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    stride: i64,
    pad: i64,
}

impl Conv {
    pub(crate) fn new(
        p: &nn::Path,
        out: usize,
        inp: usize,
        k: usize,
        stride: usize,
        bias: bool,
    ) -> Conv {
        let (o, i, k) = (out as i64, inp as i64, k as i64);
        let init = default_init(i * k * k);
        let weight = p.var("weight", &[o, i, k, k], init);
        let bias = bias.then(|| p.var("bias", &[o], init));
        Conv {
            weight,
            bias,
            stride: stride as i64,
            pad: k / 2,
        }
    }

    /// On `[B, C, H, W]`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(
            &self.weight,
            self.bias.as_ref(),
            [self.stride; 2],
            [self.pad; 2],
            [1, 1],
            1,
        )
    }

    /// On `[T, N, C, H, W]`, per time step.
    pub fn forward_seq(&self, x: &Tensor) -> Tensor {
        let (m, t, n) = merge_tn(x);
        split_tn(&self.forward(&m), t, n)
    }
}

/// `BatchNorm2d` (eps 1e-5, momentum 0.1) with its running statistics and
/// `num_batches_tracked`, on `[T, N, C, H, W]`.
#[derive(Debug)]
pub struct Bn {
    pub weight: Tensor,
    pub bias: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub num_batches_tracked: Tensor,
}

impl Bn {
    pub const EPS: f64 = 1e-5;
    pub const MOMENTUM: f64 = 0.1;

    pub(crate) fn new(p: &nn::Path, c: usize) -> Bn {
        let c = c as i64;
        Bn {
            weight: p.var("weight", &[c], nn::Init::Const(1.0)),
            bias: p.var("bias", &[c], nn::Init::Const(0.0)),
            running_mean: p.zeros_no_train("running_mean", &[c]),
            running_var: p.ones_no_train("running_var", &[c]),
            num_batches_tracked: p.add(
                "num_batches_tracked",
                Tensor::zeros([], (Kind::Int64, p.device())),
                false,
            ),
        }
    }

    /// Eval mode: running statistics. Train mode: batch statistics over T, N, H, W, and the
    /// running statistics updated in place (unbiased variance, momentum 0.1).
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        let (m, t, n) = merge_tn(x);
        if train {
            let mut nbt = self.num_batches_tracked.shallow_clone();
            tch::no_grad(|| {
                let _ = nbt.g_add_scalar_(1);
            });
        }
        let y = m.batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            Self::MOMENTUM,
            Self::EPS,
            false,
        );
        split_tn(&y, t, n)
    }
}

/// What stands in the place of every spiking neuron.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Neuron {
    /// The LIF neuron of `spikerir-model.md` (multi-step, hard or soft reset).
    #[default]
    Lif,
    /// `ReLU` (an ANN twin of the same U-Net, e.g. an H-KD teacher run with T = 1).
    Relu,
}

/// One LIF layer's activity in a forward pass.
#[derive(Debug)]
pub struct LifStat {
    /// Module path (`encoder_level1.0.residual.0`).
    pub name: String,
    /// Total spikes over all T and images: a 0-dim f64 tensor on the model's device
    /// (detached; read it with `f64::try_from`).
    pub spikes: Tensor,
    /// Neuron updates: elements per step times T.
    pub neurons: u64,
}

/// One LIF layer's tensors in a forward pass (recorded for the modules a caller observes).
#[derive(Debug)]
pub struct LifTensors {
    /// Module path.
    pub name: String,
    /// The input current `X`, `[T, ...]`.
    pub input: Tensor,
    /// The membrane potential before the threshold, `H`, `[T, ...]`.
    pub membrane: Tensor,
    /// The spikes `S`, `[T, ...]`.
    pub spikes: Tensor,
}

/// Forward-pass state: the spike statistics collected so far, and the tensors of the LIF
/// modules `observe` selects.
#[derive(Default)]
pub(crate) struct Trace<'a> {
    pub stats: Vec<LifStat>,
    pub observe: Option<&'a dyn Fn(&str) -> bool>,
    pub observed: Vec<LifTensors>,
}

impl std::fmt::Debug for Trace<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace")
            .field("stats", &self.stats)
            .field("observed", &self.observed)
            .finish()
    }
}

/// Surrogate gradient steepness (sigmoid surrogate, `alpha = 4`).
pub const SURROGATE_ALPHA: f64 = 4.0;

/// A LIF (or ReLU) layer with its module path.
#[derive(Debug)]
pub struct Lif {
    pub name: String,
    neuron: Neuron,
    tau: f64,
    v_threshold: f64,
    /// `None`: soft reset.
    v_reset: Option<f64>,
    decay_input: bool,
}

impl Lif {
    pub(crate) fn new(name: String, hp: &HyperParams, neuron: Neuron) -> Lif {
        Lif {
            name,
            neuron,
            tau: hp.tau as f64,
            v_threshold: hp.v_threshold as f64,
            v_reset: hp.v_reset.map(f64::from),
            decay_input: hp.decay_input,
        }
    }

    /// Multi-step LIF over the leading T axis of `x` (`[T, ...]`), membrane starting at
    /// `v_reset` (0 for soft reset). The Heaviside is exact in the forward pass; when `x`
    /// requires a gradient its backward is the sigmoid surrogate
    /// `alpha * sig(alpha u) * (1 - sig(alpha u))`, `u = H - v_threshold`, via
    /// `heaviside(u) + (sig(alpha u) - sig(alpha u).detach())`. The reset is not detached
    /// (SpikingJelly's `detach_reset=False`).
    pub(crate) fn forward(&self, x: &Tensor, trace: &mut Trace<'_>) -> Tensor {
        if self.neuron == Neuron::Relu {
            return x.relu();
        }
        let steps = x.size()[0];
        let vr = self.v_reset.unwrap_or(0.0);
        let grad = x.requires_grad();
        let mut v: Option<Tensor> = None;
        let mut out = Vec::with_capacity(steps as usize);
        let keep = trace.observe.is_some_and(|f| f(&self.name));
        let mut membranes = Vec::new();
        for t in 0..steps {
            let xt = x.get(t);
            // Same expressions (and f32 rounding order) as the interpreter.
            let h = match &v {
                None => {
                    // V = v_reset: the decay term is exactly 0.
                    if self.decay_input {
                        (&xt - 0.0) / self.tau + vr
                    } else {
                        &xt + vr
                    }
                }
                Some(v) => {
                    if self.decay_input {
                        v + (&xt - (v - vr)) / self.tau
                    } else {
                        v - (v - vr) / self.tau + &xt
                    }
                }
            };
            if keep {
                membranes.push(h.detach().shallow_clone());
            }
            let u = &h - self.v_threshold;
            let heav = h.ge(self.v_threshold).to_kind(h.kind());
            let s = if grad {
                let sg = (&u * SURROGATE_ALPHA).sigmoid();
                &heav + (&sg - sg.detach())
            } else {
                heav
            };
            let next = match self.v_reset {
                Some(vr) => &h * (1.0 - &s) + &s * vr,
                None => &h - &s * self.v_threshold,
            };
            v = Some(next);
            out.push(s);
        }
        let s = Tensor::stack(&out, 0);
        if keep {
            trace.observed.push(LifTensors {
                name: self.name.clone(),
                input: x.detach().shallow_clone(),
                membrane: Tensor::stack(&membranes, 0),
                spikes: s.detach().shallow_clone(),
            });
        }
        trace.stats.push(LifStat {
            name: self.name.clone(),
            spikes: s.detach().sum(Kind::Double),
            neurons: s.numel() as u64,
        });
        s
    }
}

/// `LIF -> Conv -> BN`: the spike-driven stages (`down*.maxpool_conv`, `up*.up`,
/// `reduce_chan_level*`).
#[derive(Debug)]
pub struct LifConvBn {
    pub lif: Lif,
    pub conv: Conv,
    pub bn: Bn,
}

impl LifConvBn {
    /// `p` = the sequence's path; children `0` (LIF), `1` (conv), `2` (BN).
    pub(crate) fn new(
        p: &nn::Path,
        name: &str,
        hp: &HyperParams,
        neuron: Neuron,
        (out, inp, k, stride): (usize, usize, usize, usize),
    ) -> LifConvBn {
        LifConvBn {
            lif: Lif::new(format!("{name}.0"), hp, neuron),
            conv: Conv::new(&(p / "1"), out, inp, k, stride, false),
            bn: Bn::new(&(p / "2"), out),
        }
    }

    pub(crate) fn forward_t(&self, x: &Tensor, train: bool, trace: &mut Trace<'_>) -> Tensor {
        let s = self.lif.forward(x, trace);
        self.bn.forward_t(&self.conv.forward_seq(&s), train)
    }
}

/// SpikingJelly `MultiDimensionalAttention`: time, channel, spatial gates, then ReLU.
#[derive(Debug)]
pub struct Attention {
    /// `ta.sharedMLP.0.weight` `[T/rt, T, 1, 1, 1]`, `.2.weight` `[T, T/rt, 1, 1, 1]`.
    pub ta: (Tensor, Tensor),
    /// `ca.sharedMLP.0.weight` `[C/rc, C, 1, 1, 1]`, `.2.weight` `[C, C/rc, 1, 1, 1]`.
    pub ca: (Tensor, Tensor),
    /// `sa.conv` 2 -> 1, 3x3.
    pub sa: Conv,
}

fn mlp_pair(p: &nn::Path, n: usize, hidden: usize) -> (Tensor, Tensor) {
    let (n, h) = (n as i64, hidden as i64);
    let m = p / "sharedMLP";
    (
        (&m / "0").var("weight", &[h, n, 1, 1, 1], default_init(n)),
        (&m / "2").var("weight", &[n, h, 1, 1, 1], default_init(h)),
    )
}

/// `sigmoid(mlp(avg) + mlp(max))` where `avg`, `max` are `[N, n]`; returns `[N, n]`.
fn gate(w: &(Tensor, Tensor), avg: &Tensor, max: &Tensor) -> Tensor {
    let w0 = w.0.flatten(1, -1); // [h, n]
    let w2 = w.1.flatten(1, -1); // [n, h]
    let mlp = |v: &Tensor| v.matmul(&w0.tr()).relu().matmul(&w2.tr());
    (mlp(avg) + mlp(max)).sigmoid()
}

impl Attention {
    pub(crate) fn new(p: &nn::Path, t: usize, c: usize, hp: &HyperParams) -> Attention {
        Attention {
            ta: mlp_pair(&(p / "ta"), t, t / hp.reduction_t),
            ca: mlp_pair(&(p / "ca"), c, c / hp.reduction_c),
            sa: Conv::new(&(p / "sa" / "conv"), 1, 2, 3, 1, false),
        }
    }

    /// On `z` = `[T, N, C, H, W]`.
    pub fn forward(&self, z: &Tensor) -> Tensor {
        let s = z.size();
        let (t, n, c) = (s[0], s[1], s[2]);
        // Time: pool over C, H, W -> [T, N] -> MLP over T.
        let avg = z.mean_dim(&[2i64, 3, 4][..], false, Kind::Float).tr();
        let max = z.amax([2i64, 3, 4], false).tr();
        let a_t = gate(&self.ta, &avg, &max).tr().reshape([t, n, 1, 1, 1]);
        let z = a_t * z;
        // Channel: pool over T, H, W -> [N, C] -> MLP over C.
        let avg = z.mean_dim(&[0i64, 3, 4][..], false, Kind::Float);
        let max = z.amax([0i64, 3, 4], false);
        let a_c = gate(&self.ca, &avg, &max).reshape([1, n, c, 1, 1]);
        let z = a_c * z;
        // Spatial: mean and max over (T, C) -> [N, 2, H, W] -> conv -> sigmoid.
        let m = z.mean_dim(&[0i64, 2][..], false, Kind::Float);
        let mx = z.amax([0i64, 2], false);
        let cat = Tensor::stack(&[m, mx], 1);
        let a_s = self.sa.forward(&cat).sigmoid().unsqueeze(0); // [1, N, 1, H, W]
        (a_s * z).relu()
    }
}

/// `Spiking_Residual_Block`: `attn(residual(x) + shortcut(x)) + x`.
#[derive(Debug)]
pub struct Block {
    pub res0: Lif,
    pub res1: Conv,
    pub res2: Bn,
    pub res3: Lif,
    pub res4: Conv,
    pub res5: Bn,
    pub sc0: Conv,
    pub sc1: Bn,
    pub attn: Attention,
}

impl Block {
    pub(crate) fn new(
        p: &nn::Path,
        name: &str,
        d: usize,
        hp: &HyperParams,
        neuron: Neuron,
    ) -> Block {
        let r = p / "residual";
        let s = p / "shortcut";
        Block {
            res0: Lif::new(format!("{name}.residual.0"), hp, neuron),
            res1: Conv::new(&(&r / "1"), d, d, 3, 1, false),
            res2: Bn::new(&(&r / "2"), d),
            res3: Lif::new(format!("{name}.residual.3"), hp, neuron),
            res4: Conv::new(&(&r / "4"), d, d, 3, 1, false),
            res5: Bn::new(&(&r / "5"), d),
            sc0: Conv::new(&(&s / "0"), d, d, 3, 1, false),
            sc1: Bn::new(&(&s / "1"), d),
            attn: Attention::new(&(p / "attn"), hp.time_steps, d, hp),
        }
    }

    pub(crate) fn forward_t(&self, x: &Tensor, train: bool, trace: &mut Trace<'_>) -> Tensor {
        let r = self.res0.forward(x, trace);
        let r = self.res2.forward_t(&self.res1.forward_seq(&r), train);
        let r = self.res3.forward(&r, trace);
        let r = self.res5.forward_t(&self.res4.forward_seq(&r), train);
        let sc = self.sc1.forward_t(&self.sc0.forward_seq(x), train);
        self.attn.forward(&(r + sc)) + x
    }
}

/// The feature refinement block (plain ANN on `[N, C, H, W]`).
#[derive(Debug)]
pub struct Refinement {
    pub ca1: Conv,
    pub ca3: Conv,
    pub sa0: Conv,
    pub sa1: Conv,
    pub sa3: Conv,
}

impl Refinement {
    pub(crate) fn new(p: &nn::Path, c: usize, reduction: usize) -> Refinement {
        let h = c / reduction;
        let ca = p / "ca";
        let sa = p / "sa";
        Refinement {
            ca1: Conv::new(&(&ca / "1"), h, c, 1, 1, true),
            ca3: Conv::new(&(&ca / "3"), c, h, 1, 1, true),
            sa0: Conv::new(&(&sa / "0"), c, c, 3, 1, true),
            sa1: Conv::new(&(&sa / "1"), h, c, 3, 1, true),
            sa3: Conv::new(&(&sa / "3"), c, h, 3, 1, true),
        }
    }

    /// `(1 - sa(x)) * ca(x) + sa(x) * x`.
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let pooled = x.mean_dim(&[2i64, 3][..], true, Kind::Float);
        let a = self
            .ca3
            .forward(&self.ca1.forward(&pooled).relu())
            .sigmoid();
        let t = self.sa1.forward(&self.sa0.forward(x)).relu();
        let t = self.sa3.forward(&t).sigmoid();
        (1.0 - &t) * a + &t * x
    }
}
