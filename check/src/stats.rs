//! The run statistics document: what `spikerc run --stats FILE` writes and what the Python
//! package's `Artifact.run` returns as `stats`. Built here, once, from a run's counts, so the
//! CLI and the Python package cannot drift apart (field list in `docs/json.md`).
//!
//! Units are in the names (`wall_ms`); counts are integers; `threads` is the number of worker
//! threads the engine actually used (never the flag's `0` = all cores); `images` has one entry
//! per input file (a directory run: one per file, in name order) with that input's own totals.
//! [`merge`] joins the documents of `run DIR --shard K/N` runs (`spikerc run merge`) into the
//! document one run over the whole directory writes (its counts; times are summed).

use serde_json::{json, Map, Value};
use spikerc_models::shard::Shard;
use spikerc_runtime::OpCounts;
use std::collections::{BTreeMap, BTreeSet};

/// Version of the stats document; bumped on any incompatible change of its fields.
pub const STATS_SCHEMA_VERSION: u32 = 1;

/// How a run was executed.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    /// `"event"` (the runtime) or `"interp"` (the reference interpreter).
    pub engine: &'static str,
    /// f64 accumulation (interpreter only).
    pub wide: bool,
    /// Worker threads actually used (1 for the interpreter).
    pub threads: usize,
    /// The runtime's instruction set (`"avx512"`, `"avx2"`, `"baseline"`), `None` for the
    /// interpreter.
    pub simd: Option<&'static str>,
    /// The shard of a directory run (`--shard K/N`).
    pub shard: Option<Shard>,
}

/// The counts and time of one input (one file of a directory run, or one batch).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InputStats {
    /// File name (not path) of the input; `None` for an in-memory array.
    pub name: Option<String>,
    /// `[N, 3, H, W]` of the input as given (before any padding).
    pub shape: Vec<usize>,
    /// Spikes per LIF module.
    pub spikes: BTreeMap<String, u64>,
    /// Op counts per module.
    pub ops: BTreeMap<String, OpCounts>,
    /// Wall time of this input's run, milliseconds.
    pub wall_ms: f64,
}

/// One `ops` row.
fn row(c: &OpCounts) -> Value {
    json!({"spikes_in": c.spikes_in, "spikes_out": c.spikes_out, "ac": c.ac, "mac": c.mac,
           "neuron_updates": c.neuron_updates})
}

/// Sum of a module map.
fn total(ops: &BTreeMap<String, OpCounts>) -> OpCounts {
    let mut t = OpCounts::default();
    for c in ops.values() {
        t.add(c);
    }
    t
}

/// Output spikes per neuron update (0 when there were no updates).
fn firing_rate(t: &OpCounts) -> f64 {
    t.spikes_out as f64 / t.neuron_updates.max(1) as f64
}

/// `ops`: the total and every module that did any work.
pub fn ops_json(ops: &BTreeMap<String, OpCounts>) -> Value {
    let mut modules = Map::new();
    for (m, c) in ops {
        if *c != OpCounts::default() {
            modules.insert(m.clone(), row(c));
        }
    }
    json!({"total": row(&total(ops)), "modules": modules})
}

/// The stats document of a run over `inputs` (in the order they ran), `wall_ms` the whole
/// run's wall time. Spikes and ops are summed over the inputs.
pub fn document(info: &RunInfo, inputs: &[InputStats], wall_ms: f64) -> Value {
    let mut spikes: BTreeMap<String, u64> = BTreeMap::new();
    let mut ops: BTreeMap<String, OpCounts> = BTreeMap::new();
    for i in inputs {
        for (k, v) in &i.spikes {
            *spikes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &i.ops {
            ops.entry(k.clone()).or_default().add(v);
        }
    }
    let images: Vec<Value> = inputs
        .iter()
        .map(|i| {
            let t = total(&i.ops);
            json!({
                "name": i.name,
                "shape": i.shape,
                "spikes": i.spikes.values().sum::<u64>(),
                "firing_rate": firing_rate(&t),
                "ops": row(&t),
                "wall_ms": i.wall_ms,
            })
        })
        .collect();
    let t = total(&ops);
    json!({
        "schema_version": STATS_SCHEMA_VERSION,
        "engine": info.engine,
        "wide": info.wide,
        "threads": info.threads,
        "simd": info.simd,
        "shard": info.shard,
        "input_shapes": inputs.iter().map(|i| i.shape.clone()).collect::<Vec<_>>(),
        "spikes": spikes,
        "firing_rate": firing_rate(&t),
        "ops": ops_json(&ops),
        "images": images,
        "wall_ms": wall_ms,
    })
}

/// The counts of a stats document's per-module maps, read back.
fn read_doc(src: &str, v: &Value) -> Result<(BTreeMap<String, u64>, BTreeMap<String, OpCounts>), String> {
    let bad = |what: &str| format!("{src}: not a `spikerc run --stats` document ({what})");
    match v.get("schema_version").and_then(Value::as_u64) {
        Some(n) if n == u64::from(STATS_SCHEMA_VERSION) => {}
        Some(n) => return Err(format!("{src}: schema_version {n}, this spikerc reads {STATS_SCHEMA_VERSION} (re-run)")),
        None => return Err(bad("no schema_version")),
    }
    let spikes = v["spikes"].as_object().ok_or_else(|| bad("no `spikes`"))?;
    let spikes = spikes.iter().map(|(k, n)| Ok((k.clone(), n.as_u64().ok_or_else(|| bad("a spike count is not an integer"))?))).collect::<Result<_, String>>()?;
    let modules = v["ops"]["modules"].as_object().ok_or_else(|| bad("no `ops.modules`"))?;
    let mut ops = BTreeMap::new();
    for (k, r) in modules {
        let f = |name: &str| r[name].as_u64().ok_or_else(|| bad(&format!("ops.modules.{k}.{name} is not an integer")));
        ops.insert(k.clone(), OpCounts { spikes_in: f("spikes_in")?, spikes_out: f("spikes_out")?, ac: f("ac")?, mac: f("mac")?, neuron_updates: f("neuron_updates")? });
    }
    Ok((spikes, ops))
}

/// Merges the stats documents (`(source name, document)`) of the shards of one directory run:
/// every shard `K/N` once, same engine; counts summed, `images` in name order, `wall_ms`
/// summed, `threads` the most any shard used.
pub fn merge(docs: &[(String, Value)]) -> Result<Value, String> {
    let Some((first_src, first)) = docs.first() else {
        return Err("merge needs at least one document".into());
    };
    let mut spikes: BTreeMap<String, u64> = BTreeMap::new();
    let mut ops: BTreeMap<String, OpCounts> = BTreeMap::new();
    let mut images: Vec<Value> = vec![];
    let mut seen = BTreeSet::new();
    let (mut wall_ms, mut threads) = (0.0, 0);
    let count = first["shard"]["count"].as_u64();
    for (src, d) in docs {
        let (s, o) = read_doc(src, d)?;
        for key in ["engine", "wide", "simd"] {
            if d[key] != first[key] {
                return Err(format!("{src}: {key} is {}, but {first_src} has {}: not shards of one run", d[key], first[key]));
            }
        }
        let shard: Shard = serde_json::from_value(d["shard"].clone())
            .map_err(|_| format!("{src}: holds a whole run (no shard): nothing to merge it with"))?;
        if Some(shard.count as u64) != count {
            return Err(format!("{src}: shard {shard}, but {first_src} is one of {} shards", count.unwrap_or(0)));
        }
        if !seen.insert(shard.index) {
            return Err(format!("{src}: shard {shard} is given twice"));
        }
        for (k, v) in s {
            *spikes.entry(k).or_default() += v;
        }
        for (k, v) in o {
            ops.entry(k).or_default().add(&v);
        }
        images.extend(d["images"].as_array().cloned().unwrap_or_default());
        wall_ms += d["wall_ms"].as_f64().unwrap_or(0.0);
        threads = threads.max(d["threads"].as_u64().unwrap_or(0));
    }
    let n = count.unwrap_or(0) as usize;
    let missing: Vec<String> = (1..=n).filter(|k| !seen.contains(k)).map(|k| format!("{k}/{n}")).collect();
    if !missing.is_empty() {
        let (noun, verb) = if missing.len() == 1 { ("shard", "is") } else { ("shards", "are") };
        return Err(format!("{noun} {} {verb} missing (merge needs all {n})", missing.join(", ")));
    }
    images.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let t = total(&ops);
    Ok(json!({
        "schema_version": STATS_SCHEMA_VERSION,
        "engine": first["engine"],
        "wide": first["wide"],
        "threads": threads,
        "simd": first["simd"],
        "shard": null,
        "input_shapes": images.iter().map(|i| i["shape"].clone()).collect::<Vec<_>>(),
        "spikes": spikes,
        "firing_rate": firing_rate(&t),
        "ops": ops_json(&ops),
        "images": images,
        "wall_ms": wall_ms,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, spikes: u64, updates: u64) -> InputStats {
        let c = OpCounts { spikes_out: spikes, neuron_updates: updates, ..Default::default() };
        InputStats {
            name: Some(name.into()),
            shape: vec![1, 3, 8, 8],
            spikes: BTreeMap::from([("lif".to_string(), spikes)]),
            ops: BTreeMap::from([("lif".to_string(), c), ("idle".to_string(), OpCounts::default())]),
            wall_ms: 2.0,
        }
    }

    #[test]
    fn sums_the_inputs_and_keeps_one_entry_each() {
        let info = RunInfo { engine: "event", wide: false, threads: 2, simd: Some("avx2"), shard: None };
        let d = document(&info, &[input("a.png", 3, 10), input("b.png", 5, 10)], 4.5);
        assert_eq!(d["schema_version"], STATS_SCHEMA_VERSION);
        assert_eq!(d["threads"], 2);
        assert_eq!(d["spikes"]["lif"], 8);
        assert_eq!(d["ops"]["total"]["spikes_out"], 8);
        assert_eq!(d["firing_rate"], 0.4);
        assert!(d["ops"]["modules"].get("idle").is_none(), "modules without work are left out");
        let names: Vec<_> = d["images"].as_array().unwrap().iter().map(|i| i["name"].clone()).collect();
        assert_eq!(names, [json!("a.png"), json!("b.png")]);
        assert_eq!(d["images"][1]["spikes"], 5);
        assert_eq!(d["images"][1]["firing_rate"], 0.5);
        assert_eq!(d["input_shapes"], json!([[1, 3, 8, 8], [1, 3, 8, 8]]));
    }

    #[test]
    fn merged_shards_equal_the_whole_run() {
        let files = [input("a.png", 3, 10), input("b.png", 5, 10), input("c.png", 1, 10)];
        let info = |shard| RunInfo { engine: "event", wide: false, threads: 2, simd: None, shard };
        let whole = document(&info(None), &files, 3.0);
        let parts: Vec<(String, Value)> = (1..=2)
            .map(|k| {
                let s = Shard { index: k, count: 2 };
                let mine = s.select(files.to_vec(), |i| i.name.clone().unwrap());
                (format!("s{k}.json"), document(&info(Some(s)), &mine, 1.5))
            })
            .rev()
            .collect();
        let merged = merge(&parts).unwrap();
        for key in ["spikes", "ops", "images", "input_shapes", "firing_rate", "shard", "threads", "wall_ms"] {
            assert_eq!(merged[key], whole[key], "{key}");
        }
        assert_eq!(merge(&parts[..1]).unwrap_err(), "shard 1/2 is missing (merge needs all 2)");
        let e = merge(&[("w.json".into(), whole)]).unwrap_err();
        assert_eq!(e, "w.json: holds a whole run (no shard): nothing to merge it with");
    }
}
