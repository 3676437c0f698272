//! BatchNorm folding: `conv -> bn` becomes one conv with scaled weights and a new bias,
//! `w' = w * s`, `b' = (b - mean) * s + beta` with `s = gamma / sqrt(var + eps)`, computed
//! in f64 and rounded once to f32. Applies when the conv's only user is the BatchNorm.

use super::Pass;
use crate::ir::{Graph, Op};
use crate::tensor::Tensor;

pub struct FoldBatchNorm;

impl Pass for FoldBatchNorm {
    fn name(&self) -> &'static str {
        "fold-bn"
    }

    fn run(&mut self, g: &mut Graph) -> Result<usize, String> {
        let bns: Vec<_> = g
            .ids()
            .filter(|&i| matches!(g.node(i).op, Op::BatchNorm(_)))
            .collect();
        let mut folded = 0;
        for bn_id in bns {
            let ins = g.inputs(bn_id);
            let conv_id = ins[0];
            if !matches!(g.node(conv_id).op, Op::Conv2d(_)) || g.users(conv_id).len() != 1 {
                continue;
            }
            let Op::BatchNorm(bn) = g.node(bn_id).op.clone() else {
                unreachable!()
            };
            let bn_name = g.node(bn_id).name.clone();
            let conv_name = g.node(conv_id).name.clone();
            let Op::Conv2d(conv) = &mut g.node_mut(conv_id).op else {
                unreachable!()
            };
            let (gamma, beta, mean, var) = (
                bn.gamma.to_f32(),
                bn.beta.to_f32(),
                bn.running_mean.to_f32(),
                bn.running_var.to_f32(),
            );
            let co = conv.out_channels();
            let per_out = conv.weight.len() / co;
            let w = conv.weight.to_f32();
            let old_bias: Vec<f32> = conv
                .bias
                .as_ref()
                .map(|b| b.to_f32().into_owned())
                .unwrap_or(vec![0.0; co]);
            let mut new_w = Vec::with_capacity(w.len());
            let mut new_b = Vec::with_capacity(co);
            let keys = format!("`{bn_name}.weight`, `{bn_name}.running_var`");
            for o in 0..co {
                let s = gamma[o] as f64 / (var[o] as f64 + bn.eps as f64).sqrt();
                if !s.is_finite() {
                    return Err(format!(
                        "BatchNorm `{bn_name}` channel {o}: weight {} / sqrt(running_var {} + eps {}) is not finite (keys {keys})",
                        gamma[o], var[o], bn.eps
                    ));
                }
                let start = new_w.len();
                new_w.extend(
                    w[o * per_out..(o + 1) * per_out]
                        .iter()
                        .map(|&x| (x as f64 * s) as f32),
                );
                let b = ((old_bias[o] as f64 - mean[o] as f64) * s + beta[o] as f64) as f32;
                if !b.is_finite() || new_w[start..].iter().any(|v| !v.is_finite()) {
                    return Err(format!(
                        "BatchNorm `{bn_name}` channel {o}: folding it into `{conv_name}` overflows f32 (scale {s:e}; keys {keys}, `{bn_name}.running_mean`, `{bn_name}.bias`)"
                    ));
                }
                new_b.push(b);
            }
            conv.weight = Tensor::from_f32(conv.weight.shape.clone(), new_w);
            conv.bias = Some(Tensor::from_f32(vec![co], new_b));
            g.replace_uses(bn_id, conv_id);
            g.remove(bn_id);
            folded += 1;
        }
        Ok(folded)
    }
}
