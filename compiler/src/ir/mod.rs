//! The spike-event IR.
//!
//! Design notes:
//! * A [`Graph`] is a dataflow DAG of [`Node`]s. Each node has one output value, described by
//!   its [`Fact`]; every edge from it carries that fact to a consumer's input port.
//! * Nodes are referred to by [`NodeId`]; `petgraph` is an implementation detail of this module.
//!   Ids stay valid when other nodes are removed (a `StableGraph` inside).
//! * Every node keeps `name`, the PyTorch module path it came from (e.g.
//!   `encoder_level2.0.residual.3`); ops expanded from one module (the attention, the
//!   refinement block) share their module's prefix, so cost stays attributable.
//! * Parameters live inline in their op; there is no global parameter table.

mod fact;
mod op;
mod print;

pub use fact::{DType, Dim, Fact, Shape, ValueKind};
pub use op::{BatchNorm, BinaryOp, Conv2d, ConvAlgorithm, CostClass, Lif, Op, ReduceOp, Reset};

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences, NodeIndexable};
use petgraph::Direction;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Typed handle of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(u32);

impl NodeId {
    fn ix(self) -> NodeIndex {
        NodeIndex::new(self.0 as usize)
    }
    fn from_ix(ix: NodeIndex) -> NodeId {
        NodeId(ix.index() as u32)
    }
    /// Dense index, for side tables.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// One operation with its source module path and output fact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub fact: Fact,
}

/// Errors raised while building or editing a graph.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum IrError {
    #[error("{name} ({op}): {message}")]
    Type {
        name: String,
        op: &'static str,
        message: String,
    },
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
}

/// One node of a graph in its serialized form ([`Graph::to_records`]): nodes are listed in
/// a topological order and refer to their inputs by position in that list, so the form does
/// not depend on the in-memory graph library (its node indices, holes or edge layout).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub op: Op,
    pub fact: Fact,
    /// Positions (in the record list) of the inputs, in port order; each is smaller than this
    /// record's own position.
    pub inputs: Vec<u32>,
}

/// The dataflow graph.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    g: StableDiGraph<Node, u32>,
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Adds a node consuming `inputs` (in port order), inferring its output fact.
    pub fn add(
        &mut self,
        name: impl Into<String>,
        op: Op,
        inputs: &[NodeId],
    ) -> Result<NodeId, IrError> {
        let name = name.into();
        let facts: Vec<&Fact> = inputs
            .iter()
            .map(|&i| {
                self.g
                    .node_weight(i.ix())
                    .map(|n| &n.fact)
                    .ok_or(IrError::UnknownNode(i))
            })
            .collect::<Result<_, _>>()?;
        let fact = op.infer(&facts).map_err(|message| IrError::Type {
            name: name.clone(),
            op: op.mnemonic(),
            message,
        })?;
        let id = NodeId::from_ix(self.g.add_node(Node { name, op, fact }));
        for (port, &i) in inputs.iter().enumerate() {
            self.g.add_edge(i.ix(), id.ix(), port as u32);
        }
        Ok(id)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id.ix()]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id.ix()]
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.g.contains_node(id.ix())
    }

    pub fn node_count(&self) -> usize {
        self.g.node_count()
    }

    /// Upper bound of node indices, for side tables indexed by [`NodeId::index`].
    pub fn id_bound(&self) -> usize {
        self.g.node_bound()
    }

    /// All node ids in index order.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.g.node_indices().map(NodeId::from_ix)
    }

    /// Inputs of a node, in port order.
    pub fn inputs(&self, id: NodeId) -> Vec<NodeId> {
        let mut v: Vec<(u32, NodeId)> = self
            .g
            .edges_directed(id.ix(), Direction::Incoming)
            .map(|e| (*e.weight(), NodeId::from_ix(e.source())))
            .collect();
        v.sort();
        v.into_iter().map(|(_, n)| n).collect()
    }

    /// Port numbers of the incoming edges, sorted (for the verifier).
    pub fn input_ports(&self, id: NodeId) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .g
            .edges_directed(id.ix(), Direction::Incoming)
            .map(|e| *e.weight())
            .collect();
        v.sort();
        v
    }

    /// Consumers of a node's output with the port they read it on, sorted.
    pub fn users(&self, id: NodeId) -> Vec<(NodeId, u32)> {
        let mut v: Vec<(NodeId, u32)> = self
            .g
            .edges_directed(id.ix(), Direction::Outgoing)
            .map(|e| (NodeId::from_ix(e.target()), *e.weight()))
            .collect();
        v.sort();
        v
    }

    /// Redirects every use of `old` to `new`.
    pub fn replace_uses(&mut self, old: NodeId, new: NodeId) {
        for (user, port) in self.users(old) {
            let e = self.g.find_edge(old.ix(), user.ix()).expect("edge exists");
            self.g.remove_edge(e);
            self.g.add_edge(new.ix(), user.ix(), port);
        }
    }

    /// Removes a node and its edges.
    pub fn remove(&mut self, id: NodeId) -> Option<Node> {
        self.g.remove_node(id.ix())
    }

    /// The single image input.
    pub fn input(&self) -> Option<NodeId> {
        self.ids()
            .find(|&i| matches!(self.node(i).op, Op::Input { .. }))
    }

    /// Output nodes in index order.
    pub fn outputs(&self) -> Vec<NodeId> {
        self.ids()
            .filter(|&i| matches!(self.node(i).op, Op::Output))
            .collect()
    }

    pub fn is_cyclic(&self) -> bool {
        petgraph::algo::is_cyclic_directed(&self.g)
    }

    /// A topological order, deterministic: among ready nodes the smallest index goes first,
    /// so a graph built in program order is listed in program order. `None` on a cycle.
    pub fn topo_order(&self) -> Option<Vec<NodeId>> {
        let mut indeg = vec![0usize; self.id_bound()];
        for e in self.g.edge_references() {
            indeg[e.target().index()] += 1;
        }
        let mut ready: BinaryHeap<Reverse<NodeId>> = self
            .ids()
            .filter(|i| indeg[i.index()] == 0)
            .map(Reverse)
            .collect();
        let mut order = Vec::with_capacity(self.node_count());
        while let Some(Reverse(n)) = ready.pop() {
            order.push(n);
            for e in self.g.edges_directed(n.ix(), Direction::Outgoing) {
                let t = e.target().index();
                indeg[t] -= 1;
                if indeg[t] == 0 {
                    ready.push(Reverse(NodeId::from_ix(e.target())));
                }
            }
        }
        (order.len() == self.node_count()).then_some(order)
    }

    /// The graph as records in its deterministic topological order (`None` on a cycle).
    pub fn to_records(&self) -> Option<Vec<NodeRecord>> {
        let order = self.topo_order()?;
        let mut pos = vec![u32::MAX; self.id_bound()];
        for (i, id) in order.iter().enumerate() {
            pos[id.index()] = i as u32;
        }
        Some(
            order
                .iter()
                .map(|&id| {
                    let n = self.node(id);
                    NodeRecord {
                        name: n.name.clone(),
                        op: n.op.clone(),
                        fact: n.fact.clone(),
                        inputs: self.inputs(id).iter().map(|i| pos[i.index()]).collect(),
                    }
                })
                .collect(),
        )
    }

    /// Rebuilds a graph from records, keeping each record's stored fact (the verifier then
    /// checks it against the op). Fails naming the record whose input is not an earlier record.
    pub fn from_records(records: Vec<NodeRecord>) -> Result<Graph, String> {
        let mut g = Graph::new();
        let mut ids = Vec::with_capacity(records.len());
        for (i, r) in records.into_iter().enumerate() {
            if let Some(&bad) = r.inputs.iter().find(|&&j| j as usize >= i) {
                return Err(format!(
                    "node {i} `{}` reads node {bad}, which is not an earlier node",
                    r.name
                ));
            }
            let id = NodeId::from_ix(g.g.add_node(Node {
                name: r.name,
                op: r.op,
                fact: r.fact,
            }));
            for (port, &j) in r.inputs.iter().enumerate() {
                g.g.add_edge(ids[j as usize], id.ix(), port as u32);
            }
            ids.push(id.ix());
        }
        Ok(g)
    }

    /// The divisor every image side must be a multiple of (`2^k` for the deepest `H/2^k`).
    pub fn spatial_divisor(&self) -> usize {
        1usize
            << self
                .ids()
                .map(|i| self.node(i).fact.shape.max_shift())
                .max()
                .unwrap_or(0)
    }

    /// Number of time steps of the spiking part (the largest fixed time axis), 1 if none.
    pub fn time_steps(&self) -> usize {
        self.ids()
            .filter_map(|i| match self.node(i).op {
                Op::RepeatTime { steps } => Some(steps),
                _ => None,
            })
            .max()
            .unwrap_or(1)
    }

    /// Total number of parameter elements.
    pub fn param_count(&self) -> usize {
        self.ids()
            .map(|i| {
                self.node(i)
                    .op
                    .params()
                    .iter()
                    .map(|(_, t)| t.len())
                    .sum::<usize>()
            })
            .sum()
    }

    /// The first node (in index order) with this module path.
    pub fn find(&self, name: &str) -> Option<NodeId> {
        self.ids().find(|&i| self.node(i).name == name)
    }
}
