//! Graph passes and the pass manager.
//!
//! Each pass is a named unit implementing [`Pass`]; [`PassManager`] runs a sequence and, when
//! asked (always in tests and debug builds), verifies the graph after every pass, naming the pass
//! that broke it. [`optimize`] is the standard pipeline used by `spikerc compile`:
//! `infer -> fold-bn -> dce -> infer -> winograd [-> quantize-f16]`.

mod dce;
mod fold_bn;
mod infer;
mod quantize;
mod winograd;

pub use dce::Dce;
pub use fold_bn::FoldBatchNorm;
pub use infer::InferFacts;
pub use quantize::{LayerQuantError, QuantReport, QuantizeF16};
pub use winograd::ChooseWinograd;

use serde::{Deserialize, Serialize};

use crate::ir::Graph;
use crate::verify::{verify, Verified, VerifyError};

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("pass `{pass}`: {message}")]
    Failed { pass: &'static str, message: String },
    #[error("after pass `{pass}`")]
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

/// Storage precision of an artifact's parameters (`"f32"`/`"f16"` in JSON; artifacts store
/// the variant index, so the names do not touch the artifact format).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
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

/// The choices of the standard pipeline ([`optimize`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptimizeOptions {
    pub precision: Precision,
    /// Compute eligible real-valued 3x3 convolutions with Winograd F(2x2, 3x3) (the
    /// `winograd` pass); off, every convolution is direct.
    pub winograd: bool,
}

impl From<Precision> for OptimizeOptions {
    /// `precision` with the default choices (Winograd on).
    fn from(precision: Precision) -> Self {
        OptimizeOptions { precision, winograd: true }
    }
}

/// What the standard pipeline did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OptimizeReport {
    pub passes: Vec<PassRecord>,
    pub quantization: Option<QuantReport>,
}

/// Version of the compile report document (`spikerc compile --report`, Python
/// `Artifact.report`); bumped on any incompatible change of its fields.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

impl OptimizeReport {
    /// The compile report document: `schema_version`, `passes`, `quantization`.
    pub fn document(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("a report serializes");
        if let Some(m) = v.as_object_mut() {
            m.insert("schema_version".into(), REPORT_SCHEMA_VERSION.into());
        }
        v
    }
}

/// The standard pipeline. `verify_each` forces verification after every pass (it is on by
/// default in debug and test builds); the result is always verified once at the end, which is
/// how the [`Verified`] graph it returns is made.
pub fn optimize(mut g: Graph, opts: impl Into<OptimizeOptions>, verify_each: bool) -> Result<(Verified, OptimizeReport), PassError> {
    let opts = opts.into();
    let mut pm = PassManager { verify_each: verify_each || cfg!(debug_assertions), log: Vec::new() };
    pm.run(&mut g, &mut InferFacts)?;
    pm.run(&mut g, &mut FoldBatchNorm)?;
    pm.run(&mut g, &mut Dce)?;
    pm.run(&mut g, &mut InferFacts)?;
    let min_channels = if opts.winograd { ChooseWinograd::default().min_channels } else { usize::MAX };
    pm.run(&mut g, &mut ChooseWinograd { min_channels })?;
    let mut quantization = None;
    if opts.precision == Precision::F16 {
        let mut q = QuantizeF16::default();
        pm.run(&mut g, &mut q)?;
        quantization = Some(q.report);
    }
    let verified = Verified::new(g).map_err(|source| PassError::Verify { pass: "final", source })?;
    Ok((verified, OptimizeReport { passes: pm.log, quantization }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::{run, Execution};
    use crate::ir::{CostClass, Op};
    use crate::test_graphs::{input, small};
    use crate::verify::Verified;

    fn exec(g: &Graph) -> Execution {
        run(&Verified::new(g.clone()).unwrap(), &input(2, 8, 12)).unwrap()
    }

    fn max_diff(a: &Execution, b: &Execution) -> f32 {
        a.outputs[0].data.iter().zip(&b.outputs[0].data).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    #[test]
    fn infer_marks_spike_input_convs_event_driven() {
        let mut g = small();
        let changed = InferFacts.run(&mut g).unwrap();
        assert_eq!(changed, 2, "the two convs after LIFs");
        let ac: Vec<_> = g.ids().filter(|&i| g.node(i).op.cost_class() == CostClass::Accumulate).map(|i| g.node(i).name.clone()).collect();
        assert_eq!(ac, ["down", "mix"]);
        assert_eq!(InferFacts.run(&mut g).unwrap(), 0, "a fixed point");
        verify(&g).unwrap();
    }

    #[test]
    fn fold_bn_removes_batchnorms_and_preserves_results() {
        let g0 = small();
        let mut g = g0.clone();
        assert_eq!(FoldBatchNorm.run(&mut g).unwrap(), 2);
        verify(&g).unwrap();
        assert!(g.ids().all(|i| !matches!(g.node(i).op, Op::BatchNorm(_))));
        let (a, b) = (exec(&g0), exec(&g));
        assert!(max_diff(&a, &b) < 1e-5, "diff {}", max_diff(&a, &b));
        assert_eq!(a.spikes, b.spikes);
        assert!(a.spikes.values().all(|&s| s > 0), "both LIF layers fire: {:?}", a.spikes);
    }

    #[test]
    fn fold_bn_skips_convs_with_other_users() {
        let mut g = small();
        let conv = g.find("stem").unwrap();
        // Give the stem conv a second user: it must not be folded.
        let extra = g.add("probe", Op::Relu, &[conv]).unwrap();
        g.add("probe.out", Op::Output, &[extra]).unwrap();
        assert_eq!(FoldBatchNorm.run(&mut g).unwrap(), 1);
        verify(&g).unwrap();
        assert!(g.find("stem.bn").is_some());
    }

    #[test]
    fn dce_removes_nodes_that_reach_no_output() {
        let mut g = small();
        let conv = g.find("mix").unwrap();
        let dead = g.add("dead", Op::Relu, &[conv]).unwrap();
        let dead2 = g.add("dead2", Op::Sigmoid, &[dead]).unwrap();
        assert!(verify(&g).is_err(), "dangling values are rejected");
        assert_eq!(Dce.run(&mut g).unwrap(), 2);
        assert!(!g.contains(dead) && !g.contains(dead2));
        verify(&g).unwrap();
        assert_eq!(Dce.run(&mut g).unwrap(), 0);
    }

    #[test]
    fn quantize_rounds_params_and_reports_errors() {
        let mut g = small();
        FoldBatchNorm.run(&mut g).unwrap();
        let mut q = QuantizeF16::default();
        q.run(&mut g).unwrap();
        verify(&g).unwrap();
        for i in g.ids() {
            for (_, t) in g.node(i).op.params() {
                assert_eq!(t.dtype(), crate::ir::DType::F16, "{}", g.node(i).name);
            }
        }
        let r = &q.report;
        assert_eq!(r.layers.len(), 4);
        for l in &r.layers {
            assert!(l.max_abs_error > 0.0 && l.max_abs_error < 1e-3, "{l:?}");
            assert!(l.rel_error > 0.0 && l.rel_error < 1e-3, "{l:?}");
        }
        assert_eq!(r.max_abs_error, r.layers.iter().map(|l| l.max_abs_error).fold(0.0, f64::max));
        let Op::Lif(l) = g.node(g.find("lif1").unwrap()).op else { panic!() };
        assert_eq!(l.v_threshold, half::f16::from_f32(0.15).to_f32());
    }

    #[test]
    fn optimize_pipeline_logs_every_pass_and_keeps_semantics() {
        let g0 = small();
        let (g, rep) = optimize(g0.clone(), Precision::F32, true).unwrap();
        let names: Vec<_> = rep.passes.iter().map(|p| p.pass.as_str()).collect();
        assert_eq!(names, ["infer", "fold-bn", "dce", "infer", "winograd"]);
        assert!(rep.quantization.is_none());
        let (a, b) = (exec(&g0), exec(&g));
        assert!(max_diff(&a, &b) < 1e-5);
        assert_eq!(a.spikes, b.spikes);
    }

    #[test]
    fn winograd_marks_wide_real_3x3_convs_and_keeps_results_within_rounding() {
        let mut g = small();
        InferFacts.run(&mut g).unwrap();
        let direct = g.to_text();
        assert_eq!(ChooseWinograd::default().run(&mut g).unwrap(), 0, "4 channels: below the default 16");
        let mut w = g.clone();
        assert_eq!(ChooseWinograd { min_channels: 1 }.run(&mut w).unwrap(), 2);
        verify(&w).unwrap();
        let marked: Vec<_> = w
            .ids()
            .filter(|&i| matches!(&w.node(i).op, Op::Conv2d(c) if c.algorithm == crate::ir::ConvAlgorithm::Winograd2x2))
            .map(|i| w.node(i).name.clone())
            .collect();
        assert_eq!(marked, ["stem", "head"], "real-valued 3x3 stride-1 convs only (not the event-driven ones)");
        assert!(w.to_text().contains("winograd2x2"));
        let (a, b) = (exec(&g), exec(&w));
        assert_ne!(a.outputs[0].data, b.outputs[0].data, "Winograd rounds differently");
        assert!(max_diff(&a, &b) < 1e-5, "diff {}", max_diff(&a, &b));
        assert_eq!(a.spikes, b.spikes);
        assert_eq!(ChooseWinograd { min_channels: usize::MAX }.run(&mut w).unwrap(), 2, "off: back to direct");
        assert_eq!(w.to_text(), direct);
    }

    #[test]
    fn pass_manager_names_the_pass_that_breaks_the_graph() {
        struct Breaker;
        impl Pass for Breaker {
            fn name(&self) -> &'static str {
                "breaker"
            }
            fn run(&mut self, g: &mut Graph) -> Result<usize, String> {
                let id = g.find("lif1").unwrap();
                g.node_mut(id).fact.kind = crate::ir::ValueKind::RealSeq;
                Ok(1)
            }
        }
        let mut g = small();
        let mut pm = PassManager { verify_each: true, log: vec![] };
        let e = pm.run(&mut g, &mut Breaker).unwrap_err();
        assert_eq!(e.to_string(), "after pass `breaker`");
        let cause = std::error::Error::source(&e).unwrap().to_string();
        assert!(cause.starts_with("IR verification failed at"), "{cause}");
        assert!(cause.contains("`lif1` (lif)"), "{cause}");
    }
}
