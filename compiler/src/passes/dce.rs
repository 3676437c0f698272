//! Dead-node elimination: removes every node from which no output is reachable
//! (the image input always stays).

use super::Pass;
use crate::ir::{Graph, Op};

pub struct Dce;

impl Pass for Dce {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn run(&mut self, g: &mut Graph) -> Result<usize, String> {
        let mut live = vec![false; g.id_bound()];
        let mut stack = g.outputs();
        while let Some(n) = stack.pop() {
            if !live[n.index()] {
                live[n.index()] = true;
                stack.extend(g.inputs(n));
            }
        }
        let dead: Vec<_> = g
            .ids()
            .filter(|&i| !live[i.index()] && !matches!(g.node(i).op, Op::Input { .. }))
            .collect();
        for &d in &dead {
            g.remove(d);
        }
        Ok(dead.len())
    }
}
