//! Hyperparameters that a state_dict does not carry.
//!
//! Read from a config file in the `meta.json` schema of the shared fixtures (unknown fields
//! ignored) and/or overridden by flags; defaults are ESDNet's: T = 4, v_threshold = 0.15,
//! tau = 2.0, decay_input = false, v_reset = 0.0 (hard reset; `null` means soft reset),
//! attention reductions 4 (time) and 16 (channel), refinement reduction 8.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

use crate::ImportError;

/// Largest number of time steps accepted (SpikerIR uses 4-8; more is a typo).
pub const MAX_TIME_STEPS: usize = 256;

/// Inference-time hyperparameters of a SpikerIR.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HyperParams {
    pub time_steps: usize,
    pub v_threshold: f32,
    pub tau: f32,
    pub decay_input: bool,
    /// `None` = soft reset (SpikingJelly `v_reset=None`).
    pub v_reset: Option<f32>,
    pub reduction_t: usize,
    pub reduction_c: usize,
    pub frb_reduction: usize,
    /// Architecture fields a config may state; checked against the checkpoint when present.
    #[serde(skip)]
    pub expect: ExpectedArch,
}

/// Architecture fields stated by a config file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExpectedArch {
    pub dim: Option<usize>,
    pub levels: Option<usize>,
    pub en_blocks: Option<Vec<usize>>,
    pub de_blocks: Option<Vec<usize>>,
}

impl Default for HyperParams {
    fn default() -> Self {
        HyperParams {
            time_steps: 4,
            v_threshold: 0.15,
            tau: 2.0,
            decay_input: false,
            v_reset: Some(0.0),
            reduction_t: 4,
            reduction_c: 16,
            frb_reduction: 8,
            expect: ExpectedArch::default(),
        }
    }
}

impl HyperParams {
    /// Reads a `meta.json`-style file on top of the defaults.
    pub fn from_file(path: &Path) -> Result<HyperParams, ImportError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ImportError::Io {
            path: p.clone(),
            source,
        })?;
        let v: Value = serde_json::from_str(&text).map_err(|e| ImportError::Config {
            path: p.clone(),
            reason: e.to_string(),
        })?;
        HyperParams::from_json(&v).map_err(|reason| ImportError::Config { path: p, reason })
    }

    /// Applies the fields of a JSON object on top of the defaults.
    pub fn from_json(v: &Value) -> Result<HyperParams, String> {
        let obj = v.as_object().ok_or("expected a JSON object")?;
        let mut hp = HyperParams::default();
        let uint = |k: &str, x: &Value| {
            x.as_u64()
                .map(|u| u as usize)
                .ok_or(format!("`{k}` must be a non-negative integer, found {x}"))
        };
        let num = |k: &str, x: &Value| {
            x.as_f64()
                .map(|f| f as f32)
                .ok_or(format!("`{k}` must be a number, found {x}"))
        };
        let list = |k: &str, x: &Value| -> Result<Vec<usize>, String> {
            x.as_array()
                .ok_or(format!("`{k}` must be a list of integers, found {x}"))?
                .iter()
                .map(|e| uint(k, e))
                .collect()
        };
        for (k, x) in obj {
            match k.as_str() {
                "time_steps" => hp.time_steps = uint(k, x)?,
                "v_threshold" => hp.v_threshold = num(k, x)?,
                "tau" => hp.tau = num(k, x)?,
                "decay_input" => {
                    hp.decay_input = x
                        .as_bool()
                        .ok_or(format!("`decay_input` must be true or false, found {x}"))?
                }
                "v_reset" => hp.v_reset = if x.is_null() { None } else { Some(num(k, x)?) },
                "mda" => {
                    let m = x.as_object().ok_or(format!(
                        "`mda` must be an object like {{\"reduction_t\": 4, \"reduction_c\": 16}}, found {x}"
                    ))?;
                    for (mk, r) in m {
                        match mk.as_str() {
                            "reduction_t" => hp.reduction_t = uint("mda.reduction_t", r)?,
                            "reduction_c" => hp.reduction_c = uint("mda.reduction_c", r)?,
                            _ => {}
                        }
                    }
                }
                "frb_reduction" => hp.frb_reduction = uint(k, x)?,
                "dim" => hp.expect.dim = Some(uint(k, x)?),
                "levels" => hp.expect.levels = Some(uint(k, x)?),
                "en_blocks" => hp.expect.en_blocks = Some(list(k, x)?),
                "de_blocks" => hp.expect.de_blocks = Some(list(k, x)?),
                _ => {}
            }
        }
        Ok(hp)
    }

    /// Rejects values no SpikerIR can run with.
    pub fn validate(&self) -> Result<(), ImportError> {
        let bad = |name, value: String, reason: &str| {
            Err(ImportError::BadHyperParam {
                name,
                value,
                reason: reason.into(),
            })
        };
        if self.time_steps == 0 {
            return bad("time_steps", "0".into(), "at least one time step is needed");
        }
        if self.time_steps > MAX_TIME_STEPS {
            return bad(
                "time_steps",
                self.time_steps.to_string(),
                &format!("at most {MAX_TIME_STEPS} time steps are supported"),
            );
        }
        for (name, r) in [("reduction_t", self.reduction_t), ("reduction_c", self.reduction_c), ("frb_reduction", self.frb_reduction)] {
            if r > MAX_TIME_STEPS {
                return bad(name, r.to_string(), &format!("a reduction above {MAX_TIME_STEPS} leaves no hidden units"));
            }
        }
        if self.reduction_t == 0 || self.reduction_c == 0 || self.frb_reduction == 0 {
            return bad(
                "reduction",
                format!(
                    "t={} c={} frb={}",
                    self.reduction_t, self.reduction_c, self.frb_reduction
                ),
                "reductions must be positive",
            );
        }
        if self.time_steps < self.reduction_t {
            return bad(
                "time_steps",
                self.time_steps.to_string(),
                &format!("smaller than the time-attention reduction_t {} (the attention MLP would have 0 hidden units)", self.reduction_t),
            );
        }
        if !(self.tau.is_finite() && self.tau >= 1.0) {
            return bad(
                "tau",
                self.tau.to_string(),
                "the LIF time constant must be finite and >= 1",
            );
        }
        if !self.v_threshold.is_finite() {
            return bad(
                "v_threshold",
                self.v_threshold.to_string(),
                "must be finite",
            );
        }
        if let Some(r) = self.v_reset {
            if !r.is_finite() {
                return bad(
                    "v_reset",
                    r.to_string(),
                    "must be finite (or null for soft reset)",
                );
            }
            if self.v_threshold <= r {
                return bad(
                    "v_threshold",
                    self.v_threshold.to_string(),
                    &format!("must be above v_reset {r}"),
                );
            }
        }
        Ok(())
    }
}

/// Hyperparameters given beside a config file (CLI flags, Python keywords): each one that is
/// set overrides the config's value. The one place both front ends resolve them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    pub time_steps: Option<usize>,
    pub v_threshold: Option<f32>,
    pub tau: Option<f32>,
    pub v_reset: Option<f32>,
    /// Soft reset (`v_reset = None`); wins over `v_reset`.
    pub soft_reset: bool,
    pub decay_input: Option<bool>,
}

/// Version of the `meta.json` files spikerc writes (`gen-model`, `train`); reading ignores it
/// (the fixtures' files have none) like every other field it does not use.
pub const META_SCHEMA_VERSION: u32 = 1;

impl Overrides {
    /// The config file's hyperparameters (or the defaults) with these overrides applied.
    pub fn resolve(&self, config: Option<&Path>) -> Result<HyperParams, ImportError> {
        let mut hp = match config {
            Some(p) => HyperParams::from_file(p)?,
            None => HyperParams::default(),
        };
        if let Some(t) = self.time_steps {
            hp.time_steps = t;
        }
        if let Some(v) = self.v_threshold {
            hp.v_threshold = v;
        }
        if let Some(v) = self.tau {
            hp.tau = v;
        }
        if let Some(v) = self.v_reset {
            hp.v_reset = Some(v);
        }
        if self.soft_reset {
            hp.v_reset = None;
        }
        if let Some(d) = self.decay_input {
            hp.decay_input = d;
        }
        Ok(hp)
    }
}
