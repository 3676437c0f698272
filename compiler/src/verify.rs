//! The IR verifier.
//!
//! Checks structure (one input, at least one output, no cycles, contiguous input ports, no
//! dangling values), types (every stored fact equals what its op infers from its inputs, so
//! LIFs produce spikes and event-driven convs consume them), parameters (every tensor holds
//! exactly the elements its shape says, all finite) and the bounds the kernels rely on
//! ([`limits`]: no zero-sized or absurdly large axis, kernel, stride, padding or time
//! steps, no repeated reduction axis, finite scalar attributes). A graph read from a file is
//! untrusted: everything an engine indexes with is checked here, so a crafted artifact is an
//! error, never an out-of-bounds access.
//! It runs after import and after every pass (see `passes::PassManager`); back ends take a
//! [`Verified`] graph, which can only be made by verifying.

use crate::ir::{Dim, Graph, NodeId, Op, Reset};

/// A verifier finding, naming the node by id, module path and op.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("IR verification failed at {id} `{name}` ({op}): {message}")]
pub struct VerifyError {
    pub id: String,
    pub name: String,
    pub op: String,
    pub message: String,
}

fn err(g: &Graph, id: NodeId, message: impl Into<String>) -> VerifyError {
    let n = g.node(id);
    VerifyError {
        id: id.to_string(),
        name: n.name.clone(),
        op: n.op.mnemonic().into(),
        message: message.into(),
    }
}

/// Bounds on sizes an engine allocates or loops over (generous for the SpikerIR family:
/// dim 48 at 4 levels uses 384 channels, 3x3 kernels, T <= 16).
pub mod limits {
    /// Largest fixed axis (channels, time steps, pooled sizes).
    pub const MAX_FIXED_DIM: usize = 1 << 16;
    /// Largest `k` of an `H/2^k` axis.
    pub const MAX_SHIFT: u8 = 16;
    /// Largest kernel side, stride and padding of a convolution.
    pub const MAX_KERNEL: usize = 31;
    /// Largest number of elements of one parameter tensor.
    pub const MAX_TENSOR_ELEMENTS: usize = 1 << 30;
}

/// The checks beyond typing: tensor storage, bounds and scalar attributes.
fn check_invariants(g: &Graph, id: NodeId) -> Result<(), VerifyError> {
    let node = g.node(id);
    for d in &node.fact.shape.0 {
        match *d {
            Dim::Fixed(v) if v == 0 || v > limits::MAX_FIXED_DIM => {
                return Err(err(g, id, format!("axis of size {v} (allowed 1..={})", limits::MAX_FIXED_DIM)))
            }
            Dim::Height(k) | Dim::Width(k) if k > limits::MAX_SHIFT => {
                return Err(err(g, id, format!("spatial axis divided by 2^{k} (at most 2^{})", limits::MAX_SHIFT)))
            }
            _ => {}
        }
    }
    for (role, t) in node.op.params() {
        let n = t
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= limits::MAX_TENSOR_ELEMENTS);
        match n {
            None => {
                return Err(err(g, id, format!("{role} shape {:?} is too large (at most {} elements)", t.shape, limits::MAX_TENSOR_ELEMENTS)))
            }
            Some(n) if n != t.len() => {
                return Err(err(g, id, format!("{role} shape {:?} needs {n} elements, the tensor holds {}", t.shape, t.len())))
            }
            _ => {}
        }
        if let Some(a) = t.shape.iter().position(|&d| d == 0) {
            return Err(err(g, id, format!("{role} shape {:?} has size 0 on axis {a}", t.shape)));
        }
    }
    let finite = |what: &str, v: f32| {
        if v.is_finite() {
            Ok(())
        } else {
            Err(err(g, id, format!("{what} {v} is not finite")))
        }
    };
    match &node.op {
        Op::Conv2d(c) => {
            let k = c.kernel();
            for (what, v) in [("kernel", k), ("stride", c.stride), ("padding", c.padding)] {
                if v.iter().any(|&x| x > limits::MAX_KERNEL) || (what != "padding" && v.contains(&0)) {
                    return Err(err(g, id, format!("{what} {v:?} outside {}..={}", usize::from(what != "padding"), limits::MAX_KERNEL)));
                }
            }
        }
        Op::BatchNorm(b) => {
            if !(b.eps.is_finite() && b.eps > 0.0) {
                return Err(err(g, id, format!("eps {} is not a positive finite number", b.eps)));
            }
        }
        Op::Lif(l) => {
            if let Reset::Hard { v_reset } = l.reset {
                finite("v_reset", v_reset)?;
            }
        }
        Op::Affine { scale, shift } => {
            finite("scale", *scale)?;
            finite("shift", *shift)?;
        }
        Op::Reduce { axes, .. } => {
            if axes.is_empty() {
                return Err(err(g, id, "reduces over no axis"));
            }
            let mut sorted = axes.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != axes.len() {
                return Err(err(g, id, format!("axes {axes:?} repeat an axis")));
            }
        }
        Op::Input { channels } if *channels == 0 || *channels > limits::MAX_FIXED_DIM => {
            return Err(err(g, id, format!("{channels} input channels")));
        }
        Op::RepeatTime { steps } if *steps > limits::MAX_FIXED_DIM => {
            return Err(err(g, id, format!("{steps} time steps")));
        }
        _ => {}
    }
    Ok(())
}

fn graph_err(message: impl Into<String>) -> VerifyError {
    VerifyError {
        id: "-".into(),
        name: "<graph>".into(),
        op: "-".into(),
        message: message.into(),
    }
}

/// Verifies a graph.
pub fn verify(g: &Graph) -> Result<(), VerifyError> {
    let order = g
        .topo_order()
        .ok_or_else(|| graph_err("the graph has a cycle"))?;
    let inputs: Vec<NodeId> = g
        .ids()
        .filter(|&i| matches!(g.node(i).op, Op::Input { .. }))
        .collect();
    if inputs.len() != 1 {
        return Err(graph_err(format!(
            "expected exactly 1 input node, found {}",
            inputs.len()
        )));
    }
    if g.outputs().is_empty() {
        return Err(graph_err("the graph has no output"));
    }
    for id in order {
        let node = g.node(id);
        if node.name.is_empty() {
            return Err(err(g, id, "node has no source module path"));
        }
        check_invariants(g, id)?;
        let ports = g.input_ports(id);
        if ports.iter().enumerate().any(|(i, &p)| p as usize != i) {
            return Err(err(
                g,
                id,
                format!("input ports {ports:?} are not 0..{}", ports.len()),
            ));
        }
        let ins = g.inputs(id);
        let facts: Vec<_> = ins.iter().map(|&i| &g.node(i).fact).collect();
        let fact = node.op.infer(&facts).map_err(|m| err(g, id, m))?;
        if fact != node.fact {
            return Err(err(
                g,
                id,
                format!("stored fact {} differs from inferred {}", node.fact, fact),
            ));
        }
        let users = g.users(id);
        match node.op {
            Op::Output if !users.is_empty() => return Err(err(g, id, "an output has users")),
            Op::Output => {}
            _ if users.is_empty() => {
                return Err(err(g, id, "dangling value: the node has no users"))
            }
            _ => {}
        }
        for (role, t) in node.op.params() {
            if let Some(i) = t.to_f32().iter().position(|v| !v.is_finite()) {
                return Err(err(g, id, format!("{role} element {i} is not finite")));
            }
        }
    }
    Ok(())
}

/// A graph that passed the verifier. Back ends and engines take this, never a bare [`Graph`].
#[derive(Clone, Debug)]
pub struct Verified(Graph);

impl Verified {
    pub fn new(g: Graph) -> Result<Verified, VerifyError> {
        verify(&g)?;
        Ok(Verified(g))
    }
    pub fn graph(&self) -> &Graph {
        &self.0
    }
    pub fn into_inner(self) -> Graph {
        self.0
    }
}

impl std::ops::Deref for Verified {
    type Target = Graph;
    fn deref(&self) -> &Graph {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Conv2d, ValueKind};
    use crate::test_graphs::small;

    #[test]
    fn accepts_a_well_formed_graph() {
        verify(&small()).unwrap();
    }

    #[test]
    fn rejects_a_stored_fact_that_disagrees_with_the_op() {
        let mut g = small();
        let id = g.find("lif1").unwrap();
        g.node_mut(id).fact.kind = ValueKind::RealSeq;
        let e = verify(&g).unwrap_err();
        assert_eq!(e.name, "lif1");
        assert!(e.message.starts_with("stored fact real_t<f32>"), "{e}");
    }

    #[test]
    fn rejects_an_event_driven_conv_on_real_input() {
        let mut g = small();
        let id = g.find("stem").unwrap();
        if let Op::Conv2d(Conv2d { event_driven, .. }) = &mut g.node_mut(id).op {
            *event_driven = true;
        }
        let e = verify(&g).unwrap_err();
        assert_eq!(e.to_string(), format!("IR verification failed at {id} `stem` (conv2d.ac): is event-driven (AC-costed) but its input is real_t"));
    }

    #[test]
    fn rejects_winograd_on_a_conv_it_cannot_compute() {
        let mut g = small();
        crate::passes::Pass::run(&mut crate::passes::InferFacts, &mut g).unwrap();
        let id = g.find("down").unwrap();
        if let Op::Conv2d(c) = &mut g.node_mut(id).op {
            c.algorithm = crate::ir::ConvAlgorithm::Winograd2x2;
        }
        let e = verify(&g).unwrap_err();
        assert_eq!(e.to_string(), format!("IR verification failed at {id} `down` (conv2d.ac): is marked Winograd F(2x2,3x3) but is event-driven with kernel [3, 3], stride [2, 2], padding [1, 1] (needs a real-valued 3x3 conv, stride 1, padding 1)"));
    }

    #[test]
    fn rejects_graphs_without_output_or_with_dangling_values() {
        let mut g = small();
        let out = g.outputs()[0];
        g.remove(out);
        assert!(verify(&g).unwrap_err().message.contains("no output"));
        let mut g = small();
        let x = g.input().unwrap();
        g.add("dangling", Op::Relu, &[x]).unwrap();
        assert_eq!(verify(&g).unwrap_err().message, "dangling value: the node has no users");
    }

    #[test]
    fn rejects_non_finite_parameters() {
        let mut g = small();
        let id = g.find("head").unwrap();
        if let Op::Conv2d(c) = &mut g.node_mut(id).op {
            let mut w = c.weight.to_f32().into_owned();
            w[5] = f32::NAN;
            c.weight = crate::Tensor::from_f32(c.weight.shape.clone(), w);
        }
        assert_eq!(verify(&g).unwrap_err().message, "weight element 5 is not finite");
    }
}
