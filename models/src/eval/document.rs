//! The `spikerc eval --json` document (also what the Python package's `spikerc.evaluate`
//! returns) and the merge of shard documents (`spikerc eval merge`).
//!
//! A merge checks that the documents are shards of one evaluation (same model, engine,
//! precision, data and task; every shard `K/N` once) and re-summarises the union of their
//! images in name order — the order one unsharded run scores them in — so the means are the
//! same bits as the unsharded run's.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use super::{summarize, Report};
use crate::shard::Shard;

/// Version of the eval document; bumped on any incompatible change of its fields.
pub const EVAL_SCHEMA_VERSION: u32 = 1;

/// What the metrics are, written into every document.
pub const METRICS: &str = "PSNR and SSIM on 8-bit RGB (output clamped to [0,1], x255, rounded); SSIM: 11x11 Gaussian sigma 1.5, K1 0.01, K2 0.03, valid windows, mean over R,G,B";

/// One evaluation (or one shard of it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalDocument {
    pub schema_version: u32,
    /// The model or artifact path as given.
    pub model: String,
    /// `runtime`, `interp` or `torch`.
    pub engine: String,
    /// `f32` or `f16`.
    pub precision: String,
    /// The test folder as given.
    pub data: String,
    /// The shard this document holds (`null`: every image).
    pub shard: Option<Shard>,
    /// Task, per-image scores and means.
    #[serde(flatten)]
    pub report: Report,
    pub metrics: String,
    /// Wall time of the evaluation, milliseconds (a merge: the sum over the shards).
    pub wall_ms: f64,
}

impl EvalDocument {
    /// A document of `report` with the current schema version and metric definitions.
    pub fn new(model: String, engine: String, precision: String, data: String, shard: Option<Shard>, report: Report, wall_ms: f64) -> Self {
        EvalDocument { schema_version: EVAL_SCHEMA_VERSION, model, engine, precision, data, shard, report, metrics: METRICS.into(), wall_ms }
    }

    /// Parses a document, `source` naming it in errors.
    pub fn parse(text: &str, source: &str) -> Result<EvalDocument, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("{source}: not JSON: {e}"))?;
        match v.get("schema_version").and_then(|s| s.as_u64()) {
            Some(n) if n == u64::from(EVAL_SCHEMA_VERSION) => {}
            Some(n) => return Err(format!("{source}: schema_version {n}, this spikerc reads {EVAL_SCHEMA_VERSION} (re-run the evaluation)")),
            None => return Err(format!("{source}: no schema_version: not a `spikerc eval --json` document")),
        }
        serde_json::from_value(v).map_err(|e| format!("{source}: not a `spikerc eval --json` document: {e}"))
    }
}

/// Merges shard documents (`(source name, document)`) into the document of the whole
/// evaluation.
pub fn merge(docs: &[(String, EvalDocument)]) -> Result<EvalDocument, String> {
    let Some((first_src, first)) = docs.first() else {
        return Err("merge needs at least one document".into());
    };
    let same = |what: &str, a: String, b: String, src: &str| {
        if a == b {
            Ok(())
        } else {
            Err(format!("{src}: {what} is {b}, but {first_src} has {a}: not shards of one evaluation"))
        }
    };
    let mut seen_shards = BTreeSet::new();
    let mut names = BTreeSet::new();
    let mut images = vec![];
    let mut wall_ms = 0.0;
    let count = first.shard.map(|s| s.count);
    for (src, d) in docs {
        same("the model", first.model.clone(), d.model.clone(), src)?;
        same("the engine", first.engine.clone(), d.engine.clone(), src)?;
        same("the precision", first.precision.clone(), d.precision.clone(), src)?;
        same("the data", first.data.clone(), d.data.clone(), src)?;
        same("the task", format!("{:?}", first.report.task), format!("{:?}", d.report.task), src)?;
        let shard = d.shard.ok_or_else(|| format!("{src}: holds every image (no shard): nothing to merge it with"))?;
        if Some(shard.count) != count {
            return Err(format!("{src}: shard {shard}, but {first_src} is one of {} shards", count.unwrap_or(0)));
        }
        if !seen_shards.insert(shard.index) {
            return Err(format!("{src}: shard {shard} is given twice"));
        }
        for im in &d.report.images {
            if !names.insert(im.name.clone()) {
                return Err(format!("{src}: image {} is in two shards", im.name));
            }
        }
        images.extend(d.report.images.iter().cloned());
        wall_ms += d.wall_ms;
    }
    let n = count.unwrap_or(0);
    let missing: Vec<String> = (1..=n).filter(|k| !seen_shards.contains(k)).map(|k| format!("{k}/{n}")).collect();
    if !missing.is_empty() {
        let (noun, verb) = if missing.len() == 1 { ("shard", "is") } else { ("shards", "are") };
        return Err(format!("{noun} {} {verb} missing (merge needs all {n})", missing.join(", ")));
    }
    images.sort_by(|a, b| a.name.cmp(&b.name));
    let report = summarize(first.report.task, images);
    Ok(EvalDocument { shard: None, report, wall_ms, ..first.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{ImageScore, Task};

    fn score(name: &str, psnr: f64) -> ImageScore {
        ImageScore { name: name.into(), height: 4, width: 4, input_psnr: psnr - 5.0, psnr, ssim: 0.5 }
    }

    fn doc(shard: Option<Shard>, images: Vec<ImageScore>) -> EvalDocument {
        let task = Task::Denoise { sigma: 25.0, seed: 0 };
        EvalDocument::new("m.spk".into(), "runtime".into(), "f16".into(), "data".into(), shard, summarize(task, images), 1.0)
    }

    #[test]
    fn merged_shards_equal_the_whole_run_and_round_trip() {
        let all: Vec<ImageScore> = (0..7).map(|i| score(&format!("{i}.png"), 20.0 + 0.37 * i as f64)).collect();
        let whole = doc(None, all.clone());
        let parts: Vec<(String, EvalDocument)> = (1..=3)
            .map(|k| {
                let s = Shard { index: k, count: 3 };
                let text = serde_json::to_string(&doc(Some(s), s.select(all.clone(), |i| i.name.clone()))).unwrap();
                (format!("s{k}.json"), EvalDocument::parse(&text, "x").unwrap())
            })
            .rev()
            .collect();
        let merged = merge(&parts).unwrap();
        assert_eq!(merged.report, whole.report, "same images and the same mean bits");
        assert_eq!(merged.wall_ms, 3.0);
        assert_eq!(merged.shard, None);
    }

    #[test]
    fn refuses_what_is_not_one_evaluation() {
        let s = |k| Some(Shard { index: k, count: 2 });
        let a = ("a.json".to_string(), doc(s(1), vec![score("x.png", 20.0)]));
        let e = merge(&[a.clone()]).unwrap_err();
        assert_eq!(e, "shard 2/2 is missing (merge needs all 2)");
        let e = merge(&[a.clone(), ("b.json".into(), doc(s(1), vec![]))]).unwrap_err();
        assert_eq!(e, "b.json: shard 1/2 is given twice");
        let mut other = doc(s(2), vec![]);
        other.precision = "f32".into();
        let e = merge(&[a.clone(), ("c.json".into(), other)]).unwrap_err();
        assert_eq!(e, "c.json: the precision is f32, but a.json has f16: not shards of one evaluation");
        let e = merge(&[a, ("d.json".into(), doc(s(2), vec![score("x.png", 1.0)]))]).unwrap_err();
        assert_eq!(e, "d.json: image x.png is in two shards");
        let e = EvalDocument::parse("{\"schema_version\": 7}", "old.json").unwrap_err();
        assert_eq!(e, "old.json: schema_version 7, this spikerc reads 1 (re-run the evaluation)");
    }
}
