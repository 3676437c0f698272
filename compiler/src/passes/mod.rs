//! Graph passes and the pass manager.
//!
//! Each pass is a named unit implementing [`Pass`]; [`PassManager`] runs a sequence and, when
//! asked (always in tests and debug builds), verifies the graph after every pass, naming the pass
//! that broke it. [`optimize`] is the standard pipeline used by `spikerc compile`:
//! `infer -> fold-bn -> dce -> infer [-> quantize-f16]`.

mod dce;
mod fold_bn;
mod infer;
mod quantize;

pub use dce::Dce;
pub use fold_bn::FoldBatchNorm;
pub use infer::InferFacts;
pub use quantize::{LayerQuantError, QuantReport, QuantizeF16};

use serde::{Deserialize, Serialize};

use crate::ir::Graph;
use crate::verify::{verify, VerifyError};

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("pass `{pass}`: {message}")]
    Failed { pass: &'static str, message: String },
    #[error("after pass `{pass}`: {source}")]
    Verify {
        pass: &'static str,
        source: VerifyError,
    },
}

/// A graph transformation. Returns how many nodes it changed (0 = no change).
pub trait Pass {
    fn name(&self) -> &'static str;
    fn run(&mut self, g: &mut Graph) -> Result<usize, String>;
}

/// One line of the pass log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PassRecord {
    pub pass: String,
    pub changed: usize,
    pub nodes_after: usize,
}

/// Runs passes in order, verifying after each when `verify_each` is set.
pub struct PassManager {
    pub verify_each: bool,
    pub log: Vec<PassRecord>,
}

impl Default for PassManager {
    fn default() -> Self {
        PassManager {
            verify_each: cfg!(any(test, debug_assertions)),
            log: Vec::new(),
        }
    }
}

impl PassManager {
    pub fn run(&mut self, g: &mut Graph, pass: &mut dyn Pass) -> Result<(), PassError> {
        let changed = pass.run(g).map_err(|message| PassError::Failed {
            pass: pass.name(),
            message,
        })?;
        if self.verify_each {
            verify(g).map_err(|source| PassError::Verify {
                pass: pass.name(),
                source,
            })?;
        }
        self.log.push(PassRecord {
            pass: pass.name().into(),
            changed,
            nodes_after: g.node_count(),
        });
        Ok(())
    }
}

/// Storage precision of an artifact's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Precision {
    #[default]
    F32,
    F16,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        })
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            other => Err(format!("unknown precision `{other}` (expected f32 or f16)")),
        }
    }
}

/// What the standard pipeline did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OptimizeReport {
    pub passes: Vec<PassRecord>,
    pub quantization: Option<QuantReport>,
}

/// The standard pipeline. `verify_each` forces verification after every pass (it is on by
/// default in debug and test builds); the graph is always verified once at the end.
pub fn optimize(
    g: &mut Graph,
    precision: Precision,
    verify_each: bool,
) -> Result<OptimizeReport, PassError> {
    let mut pm = PassManager {
        verify_each: verify_each || cfg!(debug_assertions),
        log: Vec::new(),
    };
    pm.run(g, &mut InferFacts)?;
    pm.run(g, &mut FoldBatchNorm)?;
    pm.run(g, &mut Dce)?;
    pm.run(g, &mut InferFacts)?;
    let mut quantization = None;
    if precision == Precision::F16 {
        let mut q = QuantizeF16::default();
        pm.run(g, &mut q)?;
        quantization = Some(q.report);
    }
    verify(g).map_err(|source| PassError::Verify {
        pass: "final",
        source,
    })?;
    Ok(OptimizeReport {
        passes: pm.log,
        quantization,
    })
}
