//! Output and spike-count comparison of a run against a reference, against stated
//! tolerances (the pass/fail rule `verify` applies before it localises a divergence).

use serde::Serialize;
use spikerc_compiler::interp::Array;
use spikerc_compiler::passes::Precision;
use std::collections::BTreeMap;

/// Pass/fail limits of a comparison.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Tolerances {
    /// Max abs output difference, always applied.
    pub max_abs_diff: Option<f64>,
    /// Max abs output difference applied when every LIF module's spike count is equal (no
    /// spike flipped, so the outputs may differ by f32 rounding only).
    pub max_abs_diff_spike_exact: Option<f64>,
    /// Minimum PSNR (dB, peak 1.0) of the artifact output against the reference.
    pub min_psnr: Option<f64>,
    /// Minimum spike-count agreement `1 - |a-b|/max(a,b)` of every LIF module.
    pub min_spike_agreement: f64,
}

impl Tolerances {
    /// f32: libtorch and the artifact accumulate in different orders, so a membrane potential
    /// within rounding distance of the threshold can flip a spike, and on untrained (chaotic)
    /// networks one flip spreads. The rule: spike-exact runs must agree within 1e-4; runs with
    /// flips must keep every module's count within 0.5 % and the output above 35 dB.
    /// f16: every weight is rounded; random-weight fixtures land at 31-36 dB and >= 98.9 %
    /// per module, so the default asks for 28 dB and 97 %.
    pub fn default_for(p: Precision) -> Tolerances {
        match p {
            Precision::F32 => Tolerances {
                max_abs_diff: None,
                max_abs_diff_spike_exact: Some(1e-4),
                min_psnr: Some(35.0),
                min_spike_agreement: 0.995,
            },
            Precision::F16 => Tolerances {
                max_abs_diff: None,
                max_abs_diff_spike_exact: None,
                min_psnr: Some(28.0),
                min_spike_agreement: 0.97,
            },
        }
    }
}

/// One LIF module's spike counts side by side.
#[derive(Clone, Debug, Serialize)]
pub struct SpikeRow {
    pub module: String,
    pub reference: u64,
    pub artifact: u64,
    pub agreement: f64,
}

/// The comparison of an artifact run against the reference.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub max_abs_diff: f64,
    pub mean_abs_diff: f64,
    /// PSNR (dB, peak 1.0) of the artifact output against the reference output; `None` if
    /// they are identical.
    pub psnr: Option<f64>,
    pub spikes: Vec<SpikeRow>,
    pub reference_total: u64,
    pub artifact_total: u64,
    /// Every LIF module emitted the same number of spikes in both runs.
    pub spike_exact: bool,
    /// Failed checks, human readable; empty = pass.
    pub failures: Vec<String>,
}

/// `1 - |a - b| / max(a, b)`, 1 when both are 0.
pub fn agreement(a: u64, b: u64) -> f64 {
    let m = a.max(b);
    if m == 0 {
        1.0
    } else {
        1.0 - a.abs_diff(b) as f64 / m as f64
    }
}

/// PSNR in dB of `b` against `a` with peak 1.0; `None` when equal.
pub fn psnr(a: &Array, b: &Array) -> Option<f64> {
    let mse = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.data.len().max(1) as f64;
    (mse > 0.0).then(|| -10.0 * mse.log10())
}

/// Compares outputs and spike counts; fills `failures` from `tol`.
pub fn compare(
    reference: (&Array, &BTreeMap<String, u64>),
    artifact: (&Array, &BTreeMap<String, u64>),
    tol: &Tolerances,
) -> Comparison {
    let (ro, rs) = reference;
    let (ao, as_) = artifact;
    let mut failures = Vec::new();
    let (max_abs, mean_abs) = if ro.shape == ao.shape {
        let d: Vec<f64> = ro
            .data
            .iter()
            .zip(&ao.data)
            .map(|(x, y)| (x - y).abs() as f64)
            .collect();
        (
            d.iter().cloned().fold(0.0, f64::max),
            d.iter().sum::<f64>() / d.len().max(1) as f64,
        )
    } else {
        failures.push(format!(
            "output shape: reference {:?}, artifact {:?}",
            ro.shape, ao.shape
        ));
        (f64::INFINITY, f64::INFINITY)
    };
    let psnr = if ro.shape == ao.shape {
        psnr(ro, ao)
    } else {
        Some(0.0)
    };
    let spike_exact = rs == as_;
    if let Some(m) = tol
        .max_abs_diff
        .filter(|&m| max_abs.is_nan() || max_abs > m)
    {
        failures.push(format!("output max abs diff {max_abs:.3e} > {m:.0e}"));
    } else if let Some(m) = tol
        .max_abs_diff_spike_exact
        .filter(|&m| spike_exact && (max_abs.is_nan() || max_abs > m))
    {
        failures.push(format!(
            "output max abs diff {max_abs:.3e} > {m:.0e} although every spike count is equal"
        ));
    }
    if let (Some(m), Some(p)) = (tol.min_psnr, psnr) {
        if p < m {
            failures.push(format!("output PSNR {p:.2} dB < {m} dB"));
        }
    }
    let mut spikes = Vec::new();
    let modules: std::collections::BTreeSet<&String> = rs.keys().chain(as_.keys()).collect();
    for m in modules {
        match (rs.get(m), as_.get(m)) {
            (Some(&r), Some(&a)) => {
                let ag = agreement(r, a);
                if ag < tol.min_spike_agreement {
                    failures.push(format!(
                        "spikes of `{m}`: reference {r}, artifact {a} (agreement {:.4}% < {:.4}%)",
                        ag * 100.0,
                        tol.min_spike_agreement * 100.0
                    ));
                }
                spikes.push(SpikeRow {
                    module: m.clone(),
                    reference: r,
                    artifact: a,
                    agreement: ag,
                });
            }
            (Some(_), None) => failures.push(format!("LIF module `{m}` missing in the artifact")),
            (None, _) => failures.push(format!("LIF module `{m}` is not in the reference")),
        }
    }
    Comparison {
        max_abs_diff: max_abs,
        mean_abs_diff: mean_abs,
        psnr,
        reference_total: rs.values().sum(),
        artifact_total: as_.values().sum(),
        spike_exact,
        spikes,
        failures,
    }
}

