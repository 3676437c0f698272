//! Convolution algorithm selection: marks the real-valued 3x3, stride-1, padding-1
//! convolutions with at least [`ChooseWinograd::min_channels`] input and output channels as
//! [`ConvAlgorithm::Winograd2x2`] (2.25x fewer multiplies, see [`crate::winograd`]).
//!
//! Narrow convolutions (the 3-channel image embedding, the 3-channel output, attention
//! squeezes) stay direct: their transforms would cost more than the multiplies they save.
//! Event-driven convolutions are never marked: their spike-accumulate path already does work
//! only where spikes are, and Winograd's transformed inputs are no longer binary.

use super::Pass;
use crate::ir::{ConvAlgorithm, Graph, Op};

pub struct ChooseWinograd {
    /// Smallest input and output channel count worth transforming.
    pub min_channels: usize,
}

impl Default for ChooseWinograd {
    fn default() -> Self {
        ChooseWinograd { min_channels: 16 }
    }
}

impl Pass for ChooseWinograd {
    fn name(&self) -> &'static str {
        "winograd"
    }

    fn run(&mut self, g: &mut Graph) -> Result<usize, String> {
        let ids: Vec<_> = g.ids().collect();
        let mut changed = 0;
        for id in ids {
            if let Op::Conv2d(c) = &mut g.node_mut(id).op {
                let want = if c.winograd_eligible()
                    && c.in_channels() >= self.min_channels
                    && c.out_channels() >= self.min_channels
                {
                    ConvAlgorithm::Winograd2x2
                } else {
                    ConvAlgorithm::Direct
                };
                if c.algorithm != want {
                    c.algorithm = want;
                    changed += 1;
                }
            }
        }
        Ok(changed)
    }
}
