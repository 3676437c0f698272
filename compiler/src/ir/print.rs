//! The textual form of the IR (`spikerc inspect --ir`), stable enough for snapshot tests.
//!
//! One line per node in topological order:
//! `%7 = conv2d.ac %6 : real_t<f32>[4, N, 16, H, W]  k3x3 s1 p1 16->16 bias f32  # encoder_level1.0.residual.1`

use std::fmt::{self, Write};

use super::op::{ConvAlgorithm, Op, Reset};
use super::Graph;

impl Graph {
    /// Renders the graph as text.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let order = match self.topo_order() {
            Some(o) => o,
            None => return "<cyclic graph>\n".into(),
        };
        for id in order {
            let node = self.node(id);
            let ins: Vec<String> = self.inputs(id).iter().map(|i| i.to_string()).collect();
            let _ = write!(s, "{id} = {}", node.op.mnemonic());
            if !ins.is_empty() {
                let _ = write!(s, " {}", ins.join(", "));
            }
            let _ = write!(s, " : {}", node.fact);
            let attrs = attributes(&node.op);
            if !attrs.is_empty() {
                let _ = write!(s, "  {attrs}");
            }
            let _ = writeln!(s, "  # {}", node.name);
        }
        s
    }
}

impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

fn attributes(op: &Op) -> String {
    match op {
        Op::Input { channels } => format!("channels={channels}"),
        Op::RepeatTime { steps } => format!("T={steps}"),
        Op::Conv2d(c) => {
            let [kh, kw] = c.kernel();
            let mut s = format!(
                "k{kh}x{kw} s{} p{} {}->{} w:{}",
                c.stride[0],
                c.padding[0],
                c.in_channels(),
                c.out_channels(),
                c.weight.dtype()
            );
            if let Some(b) = &c.bias {
                let _ = write!(s, " b:{}", b.dtype());
            }
            if c.algorithm == ConvAlgorithm::Winograd2x2 {
                s.push_str(" winograd2x2");
            }
            s
        }
        Op::BatchNorm(b) => format!("eps={:e} {}", b.eps, b.gamma.dtype()),
        Op::Lif(l) => {
            let reset = match l.reset {
                Reset::Hard { v_reset } => format!("hard({v_reset})"),
                Reset::Soft => "soft".into(),
            };
            format!(
                "tau={} vth={} reset={reset} decay_input={}",
                l.tau, l.v_threshold, l.decay_input
            )
        }
        Op::Affine { scale, shift } => format!("scale={scale} shift={shift}"),
        Op::Concat { axis } => format!("axis={axis}"),
        Op::Reduce { axes, .. } => format!("axes={axes:?}"),
        Op::AxisLinear { axis, weight } => {
            format!(
                "axis={axis} {}->{} w:{}",
                weight.shape[1],
                weight.shape[0],
                weight.dtype()
            )
        }
        _ => String::new(),
    }
}
