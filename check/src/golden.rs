//! Golden-output regression suites (feature `torch`): `record` and `check`.
//!
//! A suite lists cases — checkpoint, config, input, precision, engine (`event`, `interp`,
//! `sim` or `torch` = the libtorch reference) and optionally a simulator target. `record`
//! runs every case and writes one reviewable TOML file next to the suite
//! (`SUITE.golden.toml`, or the suite's `golden` key): per case the checkpoint's SHA-256, the
//! output's shape, SHA-256, per-channel means and an 8x8 average-pooled thumbnail, the spike
//! count of every LIF module, the op counts per module (artifact engines) and the simulator's
//! energy and cycles (when a target is named). `check` reruns and compares with the
//! tolerances **of the suite** (defaults per engine, [`Tolerance::default_for`], with the
//! case's `[case.tolerance]` overrides) — the tolerance recorded in the golden file is for the
//! reader only. A failing artifact case is localised: the first module whose recorded spike
//! count moved, and the artifact against the libtorch reference of the current checkpoint
//! ([`crate::verify`]), which tells a changed model from a broken compiler or engine.
//!
//! Paths in a suite are relative to the suite file; `${SPIKERC_SHARED}` expands to the shared
//! data directory (env var, default `../shared` next to the repository).

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spikerc_compiler::interp::Array;
use spikerc_compiler::passes::Precision;
use spikerc_models::{Checkpoint, HyperParams};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::assets::{builtin_image, BUILTIN_NAME};
use crate::engine::{self, EngineKind};
use crate::torch::Torch;

/// Golden file format tag.
pub const FORMAT: &str = "spikerc-golden/1";

/// A suite file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// Golden file, relative to the suite (default: `<suite stem>.golden.toml`).
    pub golden: Option<String>,
    #[serde(rename = "case", default)]
    pub cases: Vec<CaseSpec>,
}

/// One case of a suite.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSpec {
    pub name: String,
    pub checkpoint: String,
    /// Hyperparameters (meta.json schema); default: ESDNet defaults.
    pub config: Option<String>,
    /// Image or `.safetensors` input; default: the built-in Kodak crop.
    pub input: Option<String>,
    /// `f32` (default) or `f16`; ignored by the `torch` engine (always f32).
    #[serde(default = "default_precision")]
    pub precision: String,
    /// `event` (default), `interp` or `torch`.
    #[serde(default = "default_engine")]
    pub engine: String,
    /// Simulator target preset or machine file (needs the simulator).
    pub target: Option<String>,
    /// Overrides of the default tolerances.
    #[serde(default)]
    pub tolerance: TolSpec,
}

fn default_precision() -> String {
    "f32".into()
}
fn default_engine() -> String {
    "event".into()
}

/// Tolerance overrides in a suite.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TolSpec {
    pub output_abs: Option<f64>,
    pub output_hash: Option<bool>,
    pub spikes_rel: Option<f64>,
    pub ops_rel: Option<f64>,
    pub sim_rel: Option<f64>,
}

/// Resolved tolerances, stored with each recorded case.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Tolerance {
    /// Max abs difference of thumbnail values and channel means.
    pub output_abs: f64,
    /// Whether the output's SHA-256 must match (bit-exact engines).
    pub output_hash: bool,
    /// Relative tolerance of spike counts (0 = exact).
    pub spikes_rel: f64,
    /// Relative tolerance of op counts.
    pub ops_rel: f64,
    /// Relative tolerance of simulator energy and cycles.
    pub sim_rel: f64,
}

impl Tolerance {
    /// Artifact engines are deterministic and bit-identical to each other: exact hashes and
    /// counts. The libtorch reference depends on the machine's BLAS: 1e-4 and 0.01 %.
    pub fn default_for(engine: &str) -> Tolerance {
        if engine == "torch" {
            Tolerance {
                output_abs: 1e-4,
                output_hash: false,
                spikes_rel: 1e-4,
                ops_rel: 0.0,
                sim_rel: 0.0,
            }
        } else {
            Tolerance {
                output_abs: 1e-6,
                output_hash: true,
                spikes_rel: 0.0,
                ops_rel: 0.0,
                sim_rel: 1e-9,
            }
        }
    }

    pub fn apply(mut self, s: &TolSpec) -> Tolerance {
        if let Some(v) = s.output_abs {
            self.output_abs = v;
        }
        if let Some(v) = s.output_hash {
            self.output_hash = v;
        }
        if let Some(v) = s.spikes_rel {
            self.spikes_rel = v;
        }
        if let Some(v) = s.ops_rel {
            self.ops_rel = v;
        }
        if let Some(v) = s.sim_rel {
            self.sim_rel = v;
        }
        self
    }
}

/// A golden file.
#[derive(Debug, Serialize, Deserialize)]
pub struct GoldenFile {
    pub format: String,
    pub cases: BTreeMap<String, Record>,
}

/// What one case produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub engine: String,
    pub precision: String,
    pub checkpoint_sha256: String,
    pub input: String,
    pub input_shape: Vec<usize>,
    pub tolerance: Tolerance,
    pub output: OutputRecord,
    pub spikes: BTreeMap<String, u64>,
    /// Per module `[ac, mac, neuron_updates]` (event engine only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<BTreeMap<String, [u64; 3]>>,
    /// Simulator results (cases with a target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sim: Option<SimRecord>,
}

/// The output, summarised.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutputRecord {
    pub shape: Vec<usize>,
    pub sha256: String,
    /// Mean per (image, channel).
    pub mean: Vec<f64>,
    /// Per (image, channel) an average-pooled grid of at most 8x8, row-major, rounded to
    /// 7 decimals (the SHA-256 covers the exact bits).
    pub thumbnail: Vec<Vec<f64>>,
}

/// Simulator totals.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimRecord {
    pub target: String,
    pub energy_pj: f64,
    pub cycles: u64,
}

fn load_suite(path: &Path) -> anyhow::Result<(Suite, PathBuf)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let suite: Suite = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a valid suite: {}", path.display(), e.message()))?;
    if suite.cases.is_empty() {
        bail!("{}: the suite has no [[case]]", path.display());
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in &suite.cases {
        if !seen.insert(&c.name) {
            bail!("{}: case name `{}` appears twice", path.display(), c.name);
        }
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let golden = match &suite.golden {
        Some(g) => dir.join(g),
        None => {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            dir.join(format!("{stem}.golden.toml"))
        }
    };
    Ok((suite, golden))
}

/// `${SPIKERC_SHARED}` expanded, relative paths taken from the suite's directory.
fn resolve(suite: &Path, p: &str) -> PathBuf {
    let shared = std::env::var("SPIKERC_SHARED").unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared")
            .display()
            .to_string()
    });
    let p = p.replace("${SPIKERC_SHARED}", &shared);
    let p = PathBuf::from(p);
    if p.is_absolute() {
        p
    } else {
        suite.parent().unwrap_or(Path::new(".")).join(p)
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn round(v: f64, scale: f64) -> f64 {
    (v * scale).round() / scale
}

/// Summarises an `[N, C, H, W]` output.
pub fn summarise(out: &Array) -> OutputRecord {
    let bytes: Vec<u8> = out.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let (n, c, h, w) = (out.shape[0], out.shape[1], out.shape[2], out.shape[3]);
    let (th, tw) = (h.min(8), w.min(8));
    let mut mean = Vec::with_capacity(n * c);
    let mut thumbnail = Vec::with_capacity(n * c);
    for plane in out.data.chunks_exact(h * w) {
        let mut grid = Vec::with_capacity(th * tw);
        mean.push(round(
            plane.iter().map(|&v| v as f64).sum::<f64>() / (h * w) as f64,
            1e9,
        ));
        for i in 0..th {
            let (y0, y1) = (i * h / th, (i + 1) * h / th);
            for j in 0..tw {
                let (x0, x1) = (j * w / tw, (j + 1) * w / tw);
                let mut s = 0f64;
                for y in y0..y1 {
                    for x in x0..x1 {
                        s += plane[y * w + x] as f64;
                    }
                }
                grid.push(round(s / ((y1 - y0) * (x1 - x0)) as f64, 1e7));
            }
        }
        thumbnail.push(grid);
    }
    OutputRecord {
        shape: out.shape.clone(),
        sha256: sha256_hex(&bytes),
        mean,
        thumbnail,
    }
}

/// Reads an input file (image or `.safetensors`) as `[N, C, H, W]`; the CLI passes its
/// reader so that every command reads inputs the same way.
pub type ReadInput<'a> = &'a dyn Fn(&Path) -> anyhow::Result<Array>;

/// Everything a case needs, loaded.
struct Loaded {
    precision: Precision,
    ckpt_path: PathBuf,
    ckpt_bytes: Vec<u8>,
    ckpt: Checkpoint,
    hp: HyperParams,
    input: Array,
    input_label: String,
}

fn load_case(suite: &Path, c: &CaseSpec, read: ReadInput) -> anyhow::Result<Loaded> {
    let ctx = || format!("case `{}`", c.name);
    let precision: Precision = c.precision.parse().map_err(|e| anyhow::anyhow!("{e}")).with_context(ctx)?;
    let ckpt_path = resolve(suite, &c.checkpoint);
    let ckpt_bytes = std::fs::read(&ckpt_path)
        .with_context(|| format!("{}: cannot read", ckpt_path.display()))
        .with_context(ctx)?;
    let hp = match &c.config {
        Some(p) => HyperParams::from_file(&resolve(suite, p)).with_context(ctx)?,
        None => HyperParams::default(),
    };
    let ckpt = Checkpoint::load(&ckpt_path).with_context(ctx)?;
    let (input, input_label) = match &c.input {
        Some(p) => (read(&resolve(suite, p)).with_context(ctx)?, p.clone()),
        None => (builtin_image()?, BUILTIN_NAME.to_string()),
    };
    if input.shape.len() != 4 {
        bail!("case `{}`: input has shape {:?}, expected [N, 3, H, W]", c.name, input.shape);
    }
    Ok(Loaded { precision, ckpt_path, ckpt_bytes, ckpt, hp, input, input_label })
}

fn compile(l: &Loaded) -> anyhow::Result<spikerc_compiler::Artifact> {
    let name = l.ckpt_path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(spikerc_models::compile(&l.ckpt, &l.hp, l.precision, &name)?)
}

fn scratch_dir(c: &CaseSpec) -> PathBuf {
    std::env::temp_dir().join(format!(
        "spikerc-golden-{}-{}",
        std::process::id(),
        c.name.replace(|ch: char| !ch.is_ascii_alphanumeric(), "_")
    ))
}

/// Runs one case.
pub fn run_case(suite: &Path, c: &CaseSpec, read: ReadInput) -> anyhow::Result<Record> {
    let ctx = || format!("case `{}`", c.name);
    let l = load_case(suite, c, read)?;
    let kind: EngineKind = c
        .engine
        .parse()
        .map_err(|e: String| anyhow::anyhow!("case `{}`: {}", c.name, e))?;
    let (run, sim) = if kind == EngineKind::Torch {
        if c.target.is_some() {
            bail!("case `{}`: a target needs an artifact engine (event, interp or sim), not torch", c.name);
        }
        let t = Torch::new(&l.ckpt, &l.hp).with_context(ctx)?;
        (engine::run(&t, &l.input, None, &engine::nothing).with_context(ctx)?, None)
    } else {
        let art = compile(&l).with_context(ctx)?;
        let scratch = scratch_dir(c);
        let e = engine::artifact_engine(kind, &art, 0, false, c.target.as_deref(), Some(scratch.clone()))?;
        let run = engine::run(e.as_ref(), &l.input, None, &engine::nothing).with_context(ctx);
        let sim = match &c.target {
            None => None,
            Some(t) => {
                let sim = engine::Simulator { artifact: &art, target: t.clone(), scratch: scratch.clone() };
                let padded = l.input.pad_reflect_to_multiple(art.graph.spatial_divisor());
                let r = sim.simulate(&padded).with_context(ctx);
                let _ = std::fs::remove_dir_all(&scratch);
                let r = r?;
                Some(SimRecord { target: t.clone(), energy_pj: r.report.energy_pj, cycles: r.report.latency_cycles })
            }
        };
        let _ = std::fs::remove_dir_all(&scratch);
        (run?, sim)
    };
    let ops = (kind != EngineKind::Torch).then(|| {
        run.ops
            .iter()
            .filter(|(_, o)| **o != spikerc_runtime::OpCounts::default())
            .map(|(k, o)| (k.clone(), [o.ac, o.mac, o.neuron_updates]))
            .collect()
    });
    Ok(Record {
        engine: c.engine.clone(),
        precision: if kind == EngineKind::Torch { "f32".into() } else { l.precision.to_string() },
        checkpoint_sha256: sha256_hex(&l.ckpt_bytes),
        input: l.input_label.clone(),
        input_shape: l.input.shape.clone(),
        tolerance: Tolerance::default_for(&c.engine).apply(&c.tolerance),
        output: summarise(run.output()?),
        spikes: run.spikes,
        ops,
        sim,
    })
}

/// Runs every case of the suite; returns the golden file's path and text (the caller writes
/// it) and the number of cases. `progress` gets one line per case.
pub fn record(suite: &Path, read: ReadInput, progress: &mut dyn FnMut(&str)) -> anyhow::Result<(PathBuf, String, usize)> {
    let (s, golden) = load_suite(suite)?;
    let mut cases = BTreeMap::new();
    for c in &s.cases {
        let t = std::time::Instant::now();
        let r = run_case(suite, c, read)?;
        progress(&format!(
            "recorded {:<28} {:>6} {:>3}  {} spikes  ({:.1} s)",
            c.name,
            r.engine,
            r.precision,
            r.spikes.values().sum::<u64>(),
            t.elapsed().as_secs_f64()
        ));
        cases.insert(c.name.clone(), r);
    }
    let file = GoldenFile { format: FORMAT.into(), cases };
    let text = format!(
        "# Golden outputs of {} — written by `spikerc golden record`; review changes like code.\n{}",
        suite.display(),
        toml::to_string(&file)?
    );
    Ok((golden, text, file.cases.len()))
}

/// One field that moved.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    pub field: String,
    pub expected: String,
    pub got: String,
    pub tolerance: String,
}

fn within_rel(exp: f64, got: f64, rel: f64) -> bool {
    (exp - got).abs() <= rel * exp.abs()
}

/// Every field of `got` that differs from `exp` beyond tolerance `t` (the suite's).
pub fn diff(exp: &Record, got: &Record, t: &Tolerance) -> Vec<Mismatch> {
    let mut v = Vec::new();
    let mut push = |field: String, e: String, g: String, tol: String| {
        v.push(Mismatch {
            field,
            expected: e,
            got: g,
            tolerance: tol,
        })
    };
    for (field, e, g) in [
        ("engine", &exp.engine, &got.engine),
        ("precision", &exp.precision, &got.precision),
        (
            "checkpoint_sha256",
            &exp.checkpoint_sha256,
            &got.checkpoint_sha256,
        ),
        ("input", &exp.input, &got.input),
    ] {
        if e != g {
            let short = |v: &String| v.chars().take(24).collect::<String>();
            push(field.into(), short(e), short(g), "exact".into());
        }
    }
    if exp.input_shape != got.input_shape {
        push(
            "input_shape".into(),
            format!("{:?}", exp.input_shape),
            format!("{:?}", got.input_shape),
            "exact".into(),
        );
    }
    if exp.output.shape != got.output.shape {
        push(
            "output.shape".into(),
            format!("{:?}", exp.output.shape),
            format!("{:?}", got.output.shape),
            "exact".into(),
        );
    } else {
        if t.output_hash && exp.output.sha256 != got.output.sha256 {
            push(
                "output.sha256".into(),
                exp.output.sha256[..16].to_string(),
                got.output.sha256[..16].to_string(),
                "bit-exact".into(),
            );
        }
        for (name, e, g) in [
            ("output.mean", &exp.output.mean, &got.output.mean),
            (
                "output.thumbnail",
                &exp.output
                    .thumbnail
                    .iter()
                    .flatten()
                    .map(|&x| x as f64)
                    .collect(),
                &got.output
                    .thumbnail
                    .iter()
                    .flatten()
                    .map(|&x| x as f64)
                    .collect(),
            ),
        ] {
            let worst = e
                .iter()
                .zip(g.iter())
                .enumerate()
                .map(|(i, (a, b))| (i, (a - b).abs(), *a, *b))
                .fold(None, |m: Option<(usize, f64, f64, f64)>, x| match m {
                    Some(m) if m.1 >= x.1 => Some(m),
                    _ => Some(x),
                });
            if let Some((i, d, a, b)) = worst.filter(|w| !(w.1 <= t.output_abs)) {
                push(
                    format!("{name}[{i}]"),
                    format!("{a:.7}"),
                    format!("{b:.7} (diff {d:.2e})"),
                    format!("abs {:.0e}", t.output_abs),
                );
            }
        }
    }
    let rel = |r: f64| {
        if r == 0.0 {
            "exact".to_string()
        } else {
            format!("rel {r:.0e}")
        }
    };
    let mut keys: Vec<&String> = exp.spikes.keys().chain(got.spikes.keys()).collect();
    keys.sort_by_key(|k| module_rank(k));
    keys.dedup();
    for k in keys {
        match (exp.spikes.get(k), got.spikes.get(k)) {
            (Some(&e), Some(&g)) if within_rel(e as f64, g as f64, t.spikes_rel) => {}
            (e, g) => push(
                format!("spikes.{k}"),
                e.map_or("(none)".into(), |v| v.to_string()),
                g.map_or("(none)".into(), |v| v.to_string()),
                rel(t.spikes_rel),
            ),
        }
    }
    match (&exp.ops, &got.ops) {
        (Some(e), Some(g)) => {
            let mut keys: Vec<&String> = e.keys().chain(g.keys()).collect();
            keys.sort_by_key(|k| module_rank(k));
            keys.dedup();
            for k in keys {
                let (a, b) = (e.get(k), g.get(k));
                for (i, what) in ["ac", "mac", "neuron_updates"].iter().enumerate() {
                    let (x, y) = (a.map(|v| v[i]), b.map(|v| v[i]));
                    let ok = match (x, y) {
                        (Some(x), Some(y)) => within_rel(x as f64, y as f64, t.ops_rel),
                        _ => false,
                    };
                    if !ok {
                        push(
                            format!("ops.{k}.{what}"),
                            x.map_or("(none)".into(), |v| v.to_string()),
                            y.map_or("(none)".into(), |v| v.to_string()),
                            rel(t.ops_rel),
                        );
                    }
                }
            }
        }
        (None, None) => {}
        (e, g) => push(
            "ops".into(),
            if e.is_some() { "recorded" } else { "(none)" }.into(),
            if g.is_some() { "recorded" } else { "(none)" }.into(),
            "exact".into(),
        ),
    }
    match (&exp.sim, &got.sim) {
        (Some(e), Some(g)) => {
            if !within_rel(e.energy_pj, g.energy_pj, t.sim_rel) {
                push(
                    "sim.energy_pj".into(),
                    format!("{:.6e}", e.energy_pj),
                    format!("{:.6e}", g.energy_pj),
                    rel(t.sim_rel),
                );
            }
            if !within_rel(e.cycles as f64, g.cycles as f64, t.sim_rel) {
                push(
                    "sim.cycles".into(),
                    e.cycles.to_string(),
                    g.cycles.to_string(),
                    rel(t.sim_rel),
                );
            }
        }
        (None, None) => {}
        (e, g) => push(
            "sim".into(),
            if e.is_some() { "recorded" } else { "(none)" }.into(),
            if g.is_some() { "recorded" } else { "(none)" }.into(),
            "exact".into(),
        ),
    }
    v
}

/// Sort key putting SpikerIR module paths in execution order (encoder levels down, then the
/// decoder levels up), so the first line of a diff is where a run first diverged.
pub fn module_rank(name: &str) -> (u8, usize, usize, String) {
    let first = name.split('.').next().unwrap_or("");
    let num = |s: &str| s.parse::<usize>().unwrap_or(0);
    let second = name.split('.').nth(1).map(num).unwrap_or(0);
    let rest = name.to_string();
    if first == "patch_embed" {
        (0, 0, 0, rest)
    } else if let Some(l) = first.strip_prefix("encoder_level") {
        (1, num(l), second, rest)
    } else if let Some(l) = first.strip_prefix("down") {
        (1, num(l.split('_').next().unwrap_or("")), usize::MAX, rest)
    } else if let Some(l) = first.strip_prefix("up") {
        let l = num(l.split('_').nth(1).unwrap_or(""));
        (2, usize::MAX - l, 0, rest)
    } else if let Some(l) = first.strip_prefix("reduce_chan_level") {
        (2, usize::MAX - num(l), 1, rest)
    } else if let Some(l) = first.strip_prefix("decoder_level") {
        (2, usize::MAX - num(l), 2 + second, rest)
    } else {
        (3, 0, 0, rest)
    }
}

/// Lines printed per failing case before eliding.
const MAX_LINES: usize = 12;

/// Reruns every case (or those whose name contains `only`) and compares with the golden file
/// under the suite's tolerances; `out` gets the report lines. Fails when any case differs.
pub fn check(suite: &Path, only: Option<&str>, read: ReadInput, out: &mut dyn FnMut(&str)) -> anyhow::Result<()> {
    check_shard(suite, only, None, read, out)
}

/// [`check`] of shard `K/N` of the (selected) cases: every N-th by name
/// (`spikerc_models::shard`), for spreading a suite over the tasks of a job array.
pub fn check_shard(suite: &Path, only: Option<&str>, shard: Option<spikerc_models::shard::Shard>, read: ReadInput, out: &mut dyn FnMut(&str)) -> anyhow::Result<()> {
    let (s, golden_path) = load_suite(suite)?;
    let text = std::fs::read_to_string(&golden_path).with_context(|| {
        format!(
            "{}: cannot read the golden file (run `spikerc golden record {}` first)",
            golden_path.display(),
            suite.display()
        )
    })?;
    let golden: GoldenFile = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "{}: not a golden file: {}",
            golden_path.display(),
            e.message()
        )
    })?;
    if golden.format != FORMAT {
        bail!(
            "{}: format `{}`, this spikerc reads `{FORMAT}`",
            golden_path.display(),
            golden.format
        );
    }
    let mut failed_cases = 0;
    let mut failed_fields = 0;
    let mut ran = 0;
    let selected: Vec<&CaseSpec> = s.cases.iter().filter(|c| only.map_or(true, |o| c.name.contains(o))).collect();
    for c in spikerc_models::shard::select(shard, selected, |c| c.name.clone()) {
        ran += 1;
        let Some(exp) = golden.cases.get(&c.name) else {
            out(&format!("FAIL {}: not in the golden file (record it)", c.name));
            failed_cases += 1;
            failed_fields += 1;
            continue;
        };
        let t = std::time::Instant::now();
        let got = match run_case(suite, c, read) {
            Ok(r) => r,
            Err(e) => {
                out(&format!("FAIL {}: {e:#}", c.name));
                failed_cases += 1;
                failed_fields += 1;
                continue;
            }
        };
        let tol = Tolerance::default_for(&c.engine).apply(&c.tolerance);
        let d = diff(exp, &got, &tol);
        if d.is_empty() {
            out(&format!(
                "ok   {:<28} {:>6} {:>3}  ({:.1} s)",
                c.name,
                got.engine,
                got.precision,
                t.elapsed().as_secs_f64()
            ));
            continue;
        }
        failed_cases += 1;
        failed_fields += d.len();
        out(&format!("FAIL {}: {} field(s) differ", c.name, d.len()));
        out(&format!(
            "     {:<44} {:>24} {:>28}  tolerance",
            "field", "expected", "got"
        ));
        for m in d.iter().take(MAX_LINES) {
            out(&format!(
                "     {:<44} {:>24} {:>28}  {}",
                m.field, m.expected, m.got, m.tolerance
            ));
        }
        if d.len() > MAX_LINES {
            out(&format!("     ... and {} more", d.len() - MAX_LINES));
        }
        for line in localise(suite, c, exp, &got, read) {
            out(&format!("     {line}"));
        }
    }
    let stale: Vec<&String> = golden
        .cases
        .keys()
        .filter(|k| only.is_none() && !s.cases.iter().any(|c| &&c.name == k))
        .collect();
    for k in &stale {
        out(&format!("note: golden case `{k}` is no longer in the suite"));
    }
    if let (0, Some(sh)) = (ran, shard) {
        bail!("--shard {sh}: no cases in this shard (the suite selects fewer cases than shards)");
    }
    if ran == 0 {
        bail!("no case matches `{}`", only.unwrap_or(""));
    }
    if failed_cases > 0 {
        bail!(
            "golden check FAILED: {failed_cases} of {ran} case(s), {failed_fields} field(s) differ from {}",
            golden_path.display()
        );
    }
    out(&format!(
        "golden check passed: {ran} case(s) match {}",
        golden_path.display()
    ));
    Ok(())
}

/// Localisation of a failing case: the first LIF module (execution order) whose spike count
/// moved from the record, and — for artifact engines — the artifact against the libtorch
/// reference of the current checkpoint with the layer-wise check ([`crate::verify`]).
fn localise(suite: &Path, c: &CaseSpec, exp: &Record, got: &Record, read: ReadInput) -> Vec<String> {
    let mut v = Vec::new();
    let mut moved: Vec<&String> = exp
        .spikes
        .keys()
        .chain(got.spikes.keys())
        .filter(|k| exp.spikes.get(*k) != got.spikes.get(*k))
        .collect();
    moved.sort_by_key(|k| module_rank(k));
    match moved.first() {
        Some(k) => v.push(format!(
            "localisation: first LIF module whose spike count moved: {k} ({} -> {})",
            exp.spikes.get(*k).map_or("(none)".into(), |x| x.to_string()),
            got.spikes.get(*k).map_or("(none)".into(), |x| x.to_string())
        )),
        None => v.push("localisation: every LIF module's spike count is as recorded".into()),
    }
    if c.engine == "torch" {
        v.push("the torch case is the reference itself: nothing to localise it against".into());
        return v;
    }
    let verified = (|| -> anyhow::Result<crate::verify::Verification> {
        let l = load_case(suite, c, read)?;
        let art = compile(&l)?;
        let t = Torch::new(&l.ckpt, &l.hp)?;
        let engine = if c.engine == "interp" { EngineKind::Interp } else { EngineKind::Event };
        crate::verify::verify(
            &t,
            &art,
            &l.input,
            &crate::verify::Options {
                engine,
                wide: false,
                layerwise: true,
                tolerances: crate::compare::Tolerances::default_for(l.precision),
            },
        )
    })();
    match verified {
        Ok(ver) => {
            v.push(format!(
                "artifact vs libtorch of the current checkpoint: verdict {} — {}",
                ver.verdict.name(),
                if ver.verdict == crate::verify::Verdict::Mismatch {
                    "the artifact no longer computes its checkpoint: a compiler or engine regression"
                } else {
                    "the artifact still computes its checkpoint: the model, input or reference changed"
                }
            ));
            v.extend(crate::verify::explain(&ver).lines().map(str::to_string));
        }
        Err(e) => v.push(format!("localisation against libtorch failed: {e:#}")),
    }
    v
}

#[cfg(test)]
mod tests;
