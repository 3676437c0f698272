//! Mapping layers: how the nodes of a verified graph group into the units the back end places
//! on cores, and the static facts (shapes at the deployed input size, weights, work) of each.
//!
//! A layer is one source module as a chip would run it: a convolution, a LIF population, a
//! block's residual additions, or an expanded module whose primitives share a prefix (all of
//! `encoder_level1.0.attn.*` is one attention layer, all of `refinement.*` one refinement
//! layer), so primitives stay fused on their cores and only module outputs travel. The image
//! input, its repetition over time and the graph outputs are host-side (DRAM) and belong to no
//! layer.

use std::collections::BTreeMap;

use spikerc_compiler::ir::{BinaryOp, CostClass};
use spikerc_compiler::{NodeId, Op, ValueKind, Verified};

/// The mapping layer a node belongs to, `None` for host-side nodes.
pub fn layer_key(g: &Verified, id: NodeId) -> Option<String> {
    let n = g.node(id);
    if matches!(n.op, Op::Input { .. } | Op::RepeatTime { .. } | Op::Output) {
        return None;
    }
    let name = &n.name;
    if let Some(i) = name.find(".attn") {
        let end = i + ".attn".len();
        if name.len() == end || name.as_bytes()[end] == b'.' {
            return Some(name[..end].to_string());
        }
    }
    if name == "refinement" || name.starts_with("refinement.") {
        return Some("refinement".to_string());
    }
    Some(name.clone())
}

/// Static facts of one node at a fixed input size.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub id: NodeId,
    pub name: String,
    pub mnemonic: &'static str,
    /// Output shape at the deployed size.
    pub shape: Vec<usize>,
    /// Time extent of the output (T for per-step values, 1 after a time reduction or without time).
    pub steps: usize,
    pub kind: ValueKind,
    /// Parameter bytes as stored.
    pub weight_bytes: u64,
    /// Bytes of one stored parameter element (2 for f16, 4 for f32; 0 without parameters).
    pub param_elem_bytes: u64,
    /// Dense multiply-accumulates over the whole run (convs either way; axis_linear, mul and
    /// upsampling as the runtime counts them).
    pub dense: u64,
    /// MACs the node really performs (0 for event-driven convs, which perform ACs).
    pub mac: u64,
    pub neuron_updates: u64,
    /// Other elementwise operations (adds, affine, activations, reductions, BatchNorm).
    pub vector_ops: u64,
    /// Input elements (sum over inputs), for memory traffic.
    pub input_elems: u64,
    /// Output channels of a convolution (for AC counting).
    pub conv_out_channels: usize,
}

impl NodeInfo {
    pub fn out_elems(&self) -> u64 {
        self.shape.iter().product::<usize>() as u64
    }
}

/// Bytes of `elems` values of a kind: spikes are bits, real values f32.
pub fn value_bytes(kind: ValueKind, elems: u64) -> u64 {
    match kind {
        ValueKind::Spikes => elems.div_ceil(8),
        _ => elems * 4,
    }
}

/// Resolves every node of `g` for a batch of `n` images of `h x w`.
pub fn node_infos(g: &Verified, n: usize, h: usize, w: usize) -> BTreeMap<NodeId, NodeInfo> {
    let t = g.time_steps();
    let mut out = BTreeMap::new();
    for id in g.topo_order().expect("verified graphs are acyclic") {
        let node = g.node(id);
        let shape = node
            .fact
            .shape
            .resolve(n, h, w)
            .expect("size checked by the caller");
        let elems = shape.iter().product::<usize>() as u64;
        let steps = if node.fact.kind.has_time() && shape[0] == t {
            t
        } else {
            1
        };
        let ins = g.inputs(id);
        let input_elems: u64 = ins
            .iter()
            .map(|&i| {
                g.node(i)
                    .fact
                    .shape
                    .resolve(n, h, w)
                    .expect("size checked")
                    .iter()
                    .product::<usize>() as u64
            })
            .sum();
        let params = node.op.params();
        let weight_bytes: u64 = params.iter().map(|(_, t)| t.byte_len() as u64).sum();
        let param_elem_bytes = params
            .first()
            .map(|(_, t)| t.dtype().size_of() as u64)
            .unwrap_or(0);
        let (mut dense, mut mac, mut neuron_updates, mut vector_ops, mut co) = (0, 0, 0, 0, 0);
        match &node.op {
            Op::Conv2d(c) => {
                let [kh, kw] = c.kernel();
                dense = elems * (c.in_channels() * kh * kw) as u64;
                if !c.event_driven {
                    mac = dense;
                }
                co = c.out_channels();
            }
            Op::AxisLinear { axis, .. } => {
                let n_in = g.node(ins[0]).fact.shape.0[*axis].fixed().unwrap_or(1) as u64;
                dense = elems * n_in;
                mac = dense;
            }
            Op::Binary(BinaryOp::Mul) => {
                dense = elems;
                mac = elems;
            }
            Op::Upsample2x => {
                dense = 4 * elems;
                mac = dense;
            }
            Op::Lif(_) => neuron_updates = elems,
            Op::Reduce { .. } | Op::MeanTime => vector_ops = input_elems,
            Op::Binary(BinaryOp::Add)
            | Op::Affine { .. }
            | Op::Relu
            | Op::Sigmoid
            | Op::BatchNorm(_) => vector_ops = elems,
            _ => {}
        }
        debug_assert!(
            node.op.cost_class() != CostClass::MultiplyAccumulate || mac > 0 || elems == 0
        );
        out.insert(
            id,
            NodeInfo {
                id,
                name: node.name.clone(),
                mnemonic: node.op.mnemonic(),
                shape,
                steps,
                kind: node.fact.kind,
                weight_bytes,
                param_elem_bytes,
                dense,
                mac,
                neuron_updates,
                vector_ops,
                input_elems,
                conv_out_channels: co,
            },
        );
    }
    out
}

/// The channel count of a shape (axis 2 of rank 5, axis 1 of rank 4), 1 otherwise.
pub fn channels_of(shape: &[usize]) -> usize {
    match shape.len() {
        5 => shape[2],
        4 => shape[1],
        _ => 1,
    }
}
