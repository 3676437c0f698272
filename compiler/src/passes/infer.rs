//! Shape/kind inference: recomputes every fact from the op rules in topological order and
//! marks convolutions whose input is spikes as event-driven (AC-costed).

use super::Pass;
use crate::ir::{Graph, Op, ValueKind};

pub struct InferFacts;

impl Pass for InferFacts {
    fn name(&self) -> &'static str {
        "infer"
    }

    fn run(&mut self, g: &mut Graph) -> Result<usize, String> {
        let order = g.topo_order().ok_or("the graph has a cycle")?;
        let mut changed = 0;
        for id in order {
            let ins = g.inputs(id);
            let spikes_in = ins.len() == 1 && g.node(ins[0]).fact.kind == ValueKind::Spikes;
            if let Op::Conv2d(c) = &mut g.node_mut(id).op {
                if c.event_driven != spikes_in {
                    c.event_driven = spikes_in;
                    changed += 1;
                }
            }
            let fact = {
                let facts: Vec<_> = ins.iter().map(|&i| &g.node(i).fact).collect();
                let n = g.node(id);
                n.op.infer(&facts)
                    .map_err(|m| format!("{} ({}): {m}", n.name, n.op.mnemonic()))?
            };
            let node = g.node_mut(id);
            if node.fact != fact {
                node.fact = fact;
                changed += 1;
            }
        }
        Ok(changed)
    }
}
