//! Building the IR of a SpikerIR from a checkpoint, module by module, checking every key.

use std::collections::{BTreeMap, BTreeSet};

use spikerc_compiler::ir::{BatchNorm, BinaryOp, Conv2d, Lif, ReduceOp, Reset};
use spikerc_compiler::{Graph, NodeId, Op, Tensor};

use super::Architecture;
use crate::{Checkpoint, HyperParams, ImportError};

const BN_EPS: f32 = 1e-5;

/// The result of importing a checkpoint.
#[derive(Debug)]
pub struct Imported {
    pub graph: Graph,
    pub arch: Architecture,
    /// Named intermediate values: `decoder_level{l}` -> the node whose value is that level's
    /// decoder output (time-carrying, before averaging).
    pub taps: BTreeMap<String, NodeId>,
}

/// Imports a SpikerIR checkpoint: infers the architecture, checks hyperparameters and every
/// key's presence, dtype, shape and values, and builds the (unoptimized) IR.
pub fn import(ckpt: &Checkpoint, hp: &HyperParams) -> Result<Imported, ImportError> {
    hp.validate()?;
    let arch = Architecture::infer(ckpt)?;
    check_expected(&arch, hp)?;
    let mut b = Builder {
        source: Source::Checkpoint(ckpt),
        hp,
        used: BTreeSet::new(),
        g: Graph::new(),
    };
    let taps = b.network(&arch)?;
    b.check_unused(&arch)?;
    Ok(Imported {
        graph: b.g,
        arch,
        taps,
    })
}

/// Every state_dict tensor a SpikerIR of `arch` has, with its shape, in build order
/// (BatchNorm `num_batches_tracked` excluded). The same code path as [`import`] defines it,
/// so generators and importers cannot disagree.
pub fn expected_tensors(
    arch: &Architecture,
    hp: &HyperParams,
) -> Result<Vec<(String, Vec<usize>)>, ImportError> {
    hp.validate()?;
    let mut b = Builder {
        source: Source::Record(Vec::new()),
        hp,
        used: BTreeSet::new(),
        g: Graph::new(),
    };
    b.network(arch)?;
    match b.source {
        Source::Record(v) => Ok(v),
        Source::Checkpoint(_) => unreachable!(),
    }
}

impl Builder<'_> {
    /// Builds the whole network; returns the decoder taps.
    fn network(&mut self, arch: &Architecture) -> Result<BTreeMap<String, NodeId>, ImportError> {
        let b = self;
        let hp = b.hp;
        if arch.out_channels != arch.in_channels {
            return Err(ImportError::Architecture(format!(
            "output.0 produces {} channels but the image has {} (the global residual adds them)",
            arch.out_channels, arch.in_channels
        )));
        }
        let mut taps = BTreeMap::new();
        let img = b.g.add(
            "input",
            Op::Input {
                channels: arch.in_channels,
            },
            &[],
        )?;
        let rep = b.g.add(
            "input",
            Op::RepeatTime {
                steps: hp.time_steps,
            },
            &[img],
        )?;
        let mut x = b.conv(
            rep,
            "patch_embed.proj",
            [arch.dim, arch.in_channels, 3, 3],
            1,
            false,
        )?;
        let mut skips = Vec::new();
        for l in 1..=arch.levels {
            for i in 0..arch.en_blocks[l - 1] {
                x = b.block(x, &format!("encoder_level{l}.{i}"))?;
            }
            skips.push(x);
            if l < arch.levels {
                let p = format!("down{l}_{}.maxpool_conv", l + 1);
                let d = b.channels(x);
                let s = b.lif(x, &format!("{p}.0"))?;
                let c = b.conv(s, &format!("{p}.1"), [2 * d, d, 3, 3], 2, false)?;
                x = b.bn(c, &format!("{p}.2"))?;
            }
        }
        for l in (1..=arch.levels).rev() {
            if l < arch.levels {
                let p = format!("up{}_{l}", l + 1);
                let d = b.channels(x);
                let u = b.g.add(p.clone(), Op::Upsample2x, &[x])?;
                let s = b.lif(u, &format!("{p}.up.0"))?;
                let c = b.conv(s, &format!("{p}.up.1"), [d / 2, d, 3, 3], 1, false)?;
                let u = b.bn(c, &format!("{p}.up.2"))?;
                x = b.g.add(
                    format!("concat_level{l}"),
                    Op::Concat { axis: 2 },
                    &[u, skips[l - 1]],
                )?;
                if l > 1 {
                    let p = format!("reduce_chan_level{l}");
                    let d2 = b.channels(x);
                    let s = b.lif(x, &format!("{p}.0"))?;
                    let c = b.conv(s, &format!("{p}.1"), [d2 / 2, d2, 1, 1], 1, false)?;
                    x = b.bn(c, &format!("{p}.2"))?;
                }
            }
            for i in 0..arch.de_blocks[l - 1] {
                x = b.block(x, &format!("decoder_level{l}.{i}"))?;
            }
            taps.insert(format!("decoder_level{l}"), x);
        }
        let m = b.g.add("mean_time", Op::MeanTime, &[x])?;
        let r = b.refinement(m)?;
        let o = b.conv(
            r,
            "output.0",
            [arch.out_channels, b.channels(r), 3, 3],
            1,
            true,
        )?;
        let y =
            b.g.add("global_residual", Op::Binary(BinaryOp::Add), &[o, img])?;
        b.g.add("output", Op::Output, &[y])?;
        Ok(taps)
    }
}

fn check_expected(arch: &Architecture, hp: &HyperParams) -> Result<(), ImportError> {
    let e = &hp.expect;
    let mismatch = |what: &str, cfg: String, found: String| {
        Err(ImportError::Architecture(format!(
            "config says {what} = {cfg}, the checkpoint has {found}"
        )))
    };
    if let Some(d) = e.dim.filter(|&d| d != arch.dim) {
        return mismatch("dim", d.to_string(), arch.dim.to_string());
    }
    if let Some(l) = e.levels.filter(|&l| l != arch.levels) {
        return mismatch("levels", l.to_string(), arch.levels.to_string());
    }
    if let Some(v) = e.en_blocks.as_ref().filter(|v| **v != arch.en_blocks) {
        return mismatch(
            "en_blocks",
            format!("{v:?}"),
            format!("{:?}", arch.en_blocks),
        );
    }
    if let Some(v) = e.de_blocks.as_ref().filter(|v| **v != arch.de_blocks) {
        return mismatch(
            "de_blocks",
            format!("{v:?}"),
            format!("{:?}", arch.de_blocks),
        );
    }
    Ok(())
}

/// Where parameter tensors come from: a checkpoint, or nowhere (record the keys and shapes,
/// use zeros).
enum Source<'a> {
    Checkpoint(&'a Checkpoint),
    Record(Vec<(String, Vec<usize>)>),
}

struct Builder<'a> {
    source: Source<'a>,
    hp: &'a HyperParams,
    used: BTreeSet<String>,
    g: Graph,
}

impl Builder<'_> {
    fn channels(&self, x: NodeId) -> usize {
        self.g
            .node(x)
            .fact
            .shape
            .channels()
            .expect("image-like values have fixed channels")
    }

    /// Takes a floating tensor of exactly `shape`, checking dtype and finiteness.
    fn take(
        &mut self,
        key: &str,
        shape: &[usize],
        note: impl FnOnce() -> String,
    ) -> Result<Tensor, ImportError> {
        let ckpt = match &mut self.source {
            Source::Checkpoint(c) => *c,
            Source::Record(v) => {
                v.push((key.to_string(), shape.to_vec()));
                let fill = if key.ends_with("running_var") {
                    1.0
                } else {
                    0.0
                };
                return Ok(Tensor::from_f32(
                    shape.to_vec(),
                    vec![fill; shape.iter().product()],
                ));
            }
        };
        let t = ckpt
            .tensors
            .get(key)
            .ok_or_else(|| ImportError::MissingKey {
                key: key.into(),
                expected: shape.to_vec(),
            })?;
        let data = t.data.as_ref().ok_or_else(|| ImportError::WrongDType {
            key: key.into(),
            found: t.dtype.clone(),
        })?;
        if t.shape != shape {
            return Err(ImportError::WrongShape {
                key: key.into(),
                expected: shape.to_vec(),
                found: t.shape.clone(),
                note: note(),
            });
        }
        if let Some((index, &value)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(ImportError::NonFinite {
                key: key.into(),
                index,
                value,
            });
        }
        self.used.insert(key.into());
        Ok(Tensor::from_f32(shape.to_vec(), data.clone()))
    }

    fn conv(
        &mut self,
        x: NodeId,
        name: &str,
        shape: [usize; 4],
        stride: usize,
        bias: bool,
    ) -> Result<NodeId, ImportError> {
        let weight = self.take(&format!("{name}.weight"), &shape, String::new)?;
        let bias = if bias {
            Some(self.take(&format!("{name}.bias"), &[shape[0]], String::new)?)
        } else {
            None
        };
        let pad = shape[2] / 2;
        let op = Op::Conv2d(Conv2d {
            weight,
            bias,
            stride: [stride; 2],
            padding: [pad; 2],
            event_driven: false,
            algorithm: Default::default(),
        });
        Ok(self.g.add(name, op, &[x])?)
    }

    fn bn(&mut self, x: NodeId, name: &str) -> Result<NodeId, ImportError> {
        let c = [self.channels(x)];
        let mut t = |s: &str| self.take(&format!("{name}.{s}"), &c, String::new);
        let op = Op::BatchNorm(BatchNorm {
            gamma: t("weight")?,
            beta: t("bias")?,
            running_mean: t("running_mean")?,
            running_var: t("running_var")?,
            eps: BN_EPS,
        });
        if let Op::BatchNorm(b) = &op {
            if let Some((index, &value)) = b
                .running_var
                .to_f32()
                .iter()
                .enumerate()
                .find(|(_, &v)| v < 0.0)
            {
                let key = format!("{name}.running_var");
                return Err(ImportError::InvalidValue {
                    key,
                    index,
                    value,
                    reason: "a variance cannot be negative",
                });
            }
        }
        Ok(self.g.add(name, op, &[x])?)
    }

    fn lif(&mut self, x: NodeId, name: &str) -> Result<NodeId, ImportError> {
        let reset = match self.hp.v_reset {
            Some(v_reset) => Reset::Hard { v_reset },
            None => Reset::Soft,
        };
        let op = Op::Lif(Lif {
            tau: self.hp.tau,
            v_threshold: self.hp.v_threshold,
            reset,
            decay_input: self.hp.decay_input,
        });
        Ok(self.g.add(name, op, &[x])?)
    }

    /// `Spiking_Residual_Block`: `attn(residual(x) + shortcut(x)) + x`.
    fn block(&mut self, x: NodeId, p: &str) -> Result<NodeId, ImportError> {
        let d = self.channels(x);
        let s = self.lif(x, &format!("{p}.residual.0"))?;
        let c = self.conv(s, &format!("{p}.residual.1"), [d, d, 3, 3], 1, false)?;
        let r = self.bn(c, &format!("{p}.residual.2"))?;
        let s = self.lif(r, &format!("{p}.residual.3"))?;
        let c = self.conv(s, &format!("{p}.residual.4"), [d, d, 3, 3], 1, false)?;
        let r = self.bn(c, &format!("{p}.residual.5"))?;
        let c = self.conv(x, &format!("{p}.shortcut.0"), [d, d, 3, 3], 1, false)?;
        let sc = self.bn(c, &format!("{p}.shortcut.1"))?;
        let sum = self.g.add(p, Op::Binary(BinaryOp::Add), &[r, sc])?;
        let a = self.attention(sum, &format!("{p}.attn"))?;
        Ok(self.g.add(p, Op::Binary(BinaryOp::Add), &[a, x])?)
    }

    /// One shared two-layer MLP (1x1 Conv3d, ReLU, 1x1 Conv3d) mixing `axis`, applied to the
    /// average- and max-pooled `z`, summed, then sigmoid.
    fn pooled_gate(
        &mut self,
        z: NodeId,
        p: &str,
        axes: &[usize],
        axis: usize,
        n: usize,
        hidden: usize,
        hname: &str,
    ) -> Result<NodeId, ImportError> {
        let note = format!(" ({hname} = {n})");
        let w0 = self.take(
            &format!("{p}.sharedMLP.0.weight"),
            &[hidden, n, 1, 1, 1],
            || note.clone(),
        )?;
        let w2 = self.take(
            &format!("{p}.sharedMLP.2.weight"),
            &[n, hidden, 1, 1, 1],
            || note.clone(),
        )?;
        let w0 = Tensor::from_f32(vec![hidden, n], w0.to_f32().into_owned());
        let w2 = Tensor::from_f32(vec![n, hidden], w2.to_f32().into_owned());
        let mut branch = Vec::new();
        for op in [ReduceOp::Mean, ReduceOp::Max] {
            let pooled = self.g.add(
                p,
                Op::Reduce {
                    op,
                    axes: axes.to_vec(),
                },
                &[z],
            )?;
            let h = self.g.add(
                format!("{p}.sharedMLP.0"),
                Op::AxisLinear {
                    axis,
                    weight: w0.clone(),
                },
                &[pooled],
            )?;
            let h = self.g.add(format!("{p}.sharedMLP.1"), Op::Relu, &[h])?;
            branch.push(self.g.add(
                format!("{p}.sharedMLP.2"),
                Op::AxisLinear {
                    axis,
                    weight: w2.clone(),
                },
                &[h],
            )?);
        }
        let s = self.g.add(p, Op::Binary(BinaryOp::Add), &branch)?;
        Ok(self.g.add(p, Op::Sigmoid, &[s])?)
    }

    /// Multi-dimensional attention: time, channel, spatial gates in that order, then ReLU.
    fn attention(&mut self, z: NodeId, p: &str) -> Result<NodeId, ImportError> {
        let (t, c) = (self.hp.time_steps, self.channels(z));
        let ht = t / self.hp.reduction_t;
        let hc = c / self.hp.reduction_c;
        if hc == 0 {
            return Err(ImportError::BadHyperParam {
                name: "mda.reduction_c",
                value: self.hp.reduction_c.to_string(),
                reason: format!("larger than the {c} channels of `{p}` (the channel MLP would have 0 hidden units)"),
            });
        }
        let p_ta = format!("{p}.ta");
        let a_t = self.pooled_gate(z, &p_ta, &[2, 3, 4], 0, t, ht, "time steps T")?;
        let z = self.g.add(p_ta, Op::Binary(BinaryOp::Mul), &[a_t, z])?;
        let p_ca = format!("{p}.ca");
        let a_c = self.pooled_gate(z, &p_ca, &[0, 3, 4], 2, c, hc, "channels C")?;
        let z = self.g.add(p_ca, Op::Binary(BinaryOp::Mul), &[a_c, z])?;
        let p_sa = format!("{p}.sa");
        let m = self.g.add(
            p_sa.clone(),
            Op::Reduce {
                op: ReduceOp::Mean,
                axes: vec![0, 2],
            },
            &[z],
        )?;
        let mx = self.g.add(
            p_sa.clone(),
            Op::Reduce {
                op: ReduceOp::Max,
                axes: vec![0, 2],
            },
            &[z],
        )?;
        let cat = self.g.add(p_sa.clone(), Op::Concat { axis: 2 }, &[m, mx])?;
        let conv = self.conv(cat, &format!("{p_sa}.conv"), [1, 2, 3, 3], 1, false)?;
        let a_s = self.g.add(p_sa.clone(), Op::Sigmoid, &[conv])?;
        let z = self.g.add(p_sa, Op::Binary(BinaryOp::Mul), &[a_s, z])?;
        Ok(self.g.add(p, Op::Relu, &[z])?)
    }

    /// Feature refinement block on `[N, C, H, W]`: `(1 - sa(x)) * ca(x) + sa(x) * x`.
    fn refinement(&mut self, x: NodeId) -> Result<NodeId, ImportError> {
        let c = self.channels(x);
        let h = c / self.hp.frb_reduction;
        if h == 0 {
            return Err(ImportError::BadHyperParam {
                name: "frb_reduction",
                value: self.hp.frb_reduction.to_string(),
                reason: format!("larger than the {c} channels of `refinement`"),
            });
        }
        let pool = self.g.add(
            "refinement.ca.0",
            Op::Reduce {
                op: ReduceOp::Mean,
                axes: vec![2, 3],
            },
            &[x],
        )?;
        let a = self.conv(pool, "refinement.ca.1", [h, c, 1, 1], 1, true)?;
        let a = self.g.add("refinement.ca.2", Op::Relu, &[a])?;
        let a = self.conv(a, "refinement.ca.3", [c, h, 1, 1], 1, true)?;
        let a = self.g.add("refinement.ca.4", Op::Sigmoid, &[a])?;
        let t = self.conv(x, "refinement.sa.0", [c, c, 3, 3], 1, true)?;
        let t = self.conv(t, "refinement.sa.1", [h, c, 3, 3], 1, true)?;
        let t = self.g.add("refinement.sa.2", Op::Relu, &[t])?;
        let t = self.conv(t, "refinement.sa.3", [c, h, 3, 3], 1, true)?;
        let t = self.g.add("refinement.sa.4", Op::Sigmoid, &[t])?;
        let one_minus_t = self.g.add(
            "refinement",
            Op::Affine {
                scale: -1.0,
                shift: 1.0,
            },
            &[t],
        )?;
        let ga = self
            .g
            .add("refinement", Op::Binary(BinaryOp::Mul), &[one_minus_t, a])?;
        let gx = self
            .g
            .add("refinement", Op::Binary(BinaryOp::Mul), &[t, x])?;
        Ok(self
            .g
            .add("refinement", Op::Binary(BinaryOp::Add), &[ga, gx])?)
    }

    /// Every checkpoint key must have been used, except `num_batches_tracked`.
    fn check_unused(&self, arch: &Architecture) -> Result<(), ImportError> {
        let Source::Checkpoint(ckpt) = self.source else {
            return Ok(());
        };
        for (key, t) in &ckpt.tensors {
            if key.ends_with("num_batches_tracked") || self.used.contains(key) {
                continue;
            }
            return Err(ImportError::UnexpectedKey {
                key: key.clone(),
                shape: t.shape.clone(),
                arch: arch.summary(),
            });
        }
        Ok(())
    }
}
