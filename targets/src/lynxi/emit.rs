//! The deployment directory: `manifest.json` (human-readable), `weights.bin` (each core's
//! weights, f16 little endian, 64-byte aligned regions), `routes.bin` (each core's routing
//! table: per route `u32 edge, u32 slice, u16 source core, u16 n, n x u16 destination core`)
//! and `model.spk` (the artifact the simulator executes). The manifest records every file's
//! size and CRC-32; loading checks them.
//!
//! Writing is all or nothing: the files go to a sibling temporary directory that is renamed
//! into place. An existing directory is replaced only if it is empty or a previous
//! deployment (has a `manifest.json`).

use std::path::{Path, PathBuf};

use spikerc_compiler::{Artifact, ArtifactError};

use super::{Deployment, Manifest, FORMAT, FORMAT_VERSION};

/// Why a deployment directory could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
    #[error("{path}: not a spikerc deployment ({message})")]
    NotDeployment { path: String, message: String },
    #[error("{path}: {file} is damaged: {found} bytes with CRC-32 {found_crc}, the manifest says {bytes} bytes with CRC-32 {crc}")]
    Damaged {
        path: String,
        file: String,
        found: u64,
        found_crc: String,
        bytes: u64,
        crc: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}

/// A deployment read back from disk.
#[derive(Debug)]
pub struct Loaded {
    pub manifest: Manifest,
    pub artifact: Artifact,
    pub weights: Vec<u8>,
    pub routes: Vec<u8>,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> LoadError {
    LoadError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

impl Deployment {
    /// The manifest as pretty JSON (with a trailing newline).
    pub fn manifest_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(&self.manifest).expect("serializable");
        s.push('\n');
        s
    }

    /// Writes the directory atomically.
    pub fn write_dir(&self, dir: &Path) -> Result<(), LoadError> {
        if dir.exists() {
            if !dir.is_dir() {
                return Err(io_err(dir, "exists and is not a directory"));
            }
            let empty = std::fs::read_dir(dir)
                .map_err(|e| io_err(dir, e))?
                .next()
                .is_none();
            if !empty && !dir.join("manifest.json").is_file() {
                return Err(io_err(
                    dir,
                    "exists, is not empty and is not a spikerc deployment; refusing to replace it",
                ));
            }
        }
        let name = dir
            .file_name()
            .ok_or_else(|| io_err(dir, "has no directory name"))?;
        let parent = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp: PathBuf = parent.join(format!(
            ".{}.tmp{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&tmp);
        let result = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(&tmp)?;
            std::fs::write(tmp.join("manifest.json"), self.manifest_json())?;
            std::fs::write(tmp.join("weights.bin"), &self.weights)?;
            std::fs::write(tmp.join("routes.bin"), &self.routes)?;
            std::fs::write(tmp.join("model.spk"), &self.artifact)?;
            if dir.exists() {
                std::fs::remove_dir_all(dir)?;
            }
            std::fs::rename(&tmp, dir)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(io_err(dir, e));
        }
        Ok(())
    }
}

impl Loaded {
    /// A freshly compiled deployment as the simulator takes it, without a trip through a
    /// directory: the same manifest (every field survives its JSON form exactly, so this
    /// simulates like the directory written from `dep` and read back) and the artifact
    /// decoded from the bytes that would be `model.spk`.
    pub fn from_deployment(dep: &Deployment) -> Result<Loaded, LoadError> {
        let artifact = Artifact::from_bytes(&dep.artifact, "model.spk")?;
        Ok(Loaded {
            manifest: dep.manifest.clone(),
            artifact,
            weights: dep.weights.clone(),
            routes: dep.routes.clone(),
        })
    }
}

/// Reads and checks a deployment directory.
pub fn load_dir(dir: &Path) -> Result<Loaded, LoadError> {
    let p = dir.display().to_string();
    let mpath = dir.join("manifest.json");
    let text = std::fs::read_to_string(&mpath).map_err(|e| LoadError::NotDeployment {
        path: p.clone(),
        message: format!("cannot read manifest.json: {e}"),
    })?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| LoadError::NotDeployment {
        path: p.clone(),
        message: format!("manifest.json: {e}"),
    })?;
    if manifest.format != FORMAT || manifest.version != FORMAT_VERSION {
        return Err(LoadError::NotDeployment {
            path: p,
            message: format!(
                "manifest format {} v{}, this spikerc reads {FORMAT} v{FORMAT_VERSION}",
                manifest.format, manifest.version
            ),
        });
    }
    let mut blobs = std::collections::BTreeMap::new();
    for f in &manifest.files {
        let fp = dir.join(&f.name);
        let bytes = std::fs::read(&fp).map_err(|e| io_err(&fp, e))?;
        let crc = format!("{:08x}", crc32fast::hash(&bytes));
        if bytes.len() as u64 != f.bytes || crc != f.crc32 {
            return Err(LoadError::Damaged {
                path: p,
                file: f.name.clone(),
                found: bytes.len() as u64,
                found_crc: crc,
                bytes: f.bytes,
                crc: f.crc32.clone(),
            });
        }
        blobs.insert(f.name.clone(), bytes);
    }
    let art_bytes = blobs
        .remove("model.spk")
        .ok_or_else(|| LoadError::NotDeployment {
            path: p.clone(),
            message: "the manifest lists no model.spk".into(),
        })?;
    let artifact = Artifact::from_bytes(&art_bytes, &dir.join("model.spk").display().to_string())?;
    let weights = blobs.remove("weights.bin").unwrap_or_default();
    let routes = blobs.remove("routes.bin").unwrap_or_default();
    super::validate::validate_loaded(
        &manifest,
        &artifact.graph,
        weights.len() as u64,
        routes.len() as u64,
    )
    .map_err(|message| LoadError::Invalid {
        path: mpath.display().to_string(),
        message,
    })?;
    Ok(Loaded {
        manifest,
        artifact,
        weights,
        routes,
    })
}

/// Emit: the per-core memory maps, the weight and route blobs and the manifest.
#[allow(clippy::too_many_arguments)]
pub(super) fn assemble(
    art: &spikerc_compiler::Artifact,
    machine: &crate::machine::Machine,
    opts: &super::Options,
    sched: crate::schedule::Schedule,
    infos: &std::collections::BTreeMap<spikerc_compiler::NodeId, crate::layers::NodeInfo>,
    drafts: &[super::LayerDraft],
    layers: Vec<super::Layer>,
    stages: Vec<super::Stage>,
    slices: Vec<super::Slice>,
    edges: Vec<super::Edge>,
    routes: Vec<Vec<super::Route>>,
    state_regions: Vec<Vec<super::Region>>,
    working: Vec<u64>,
    live: Vec<Vec<(u64, u64, usize, usize)>>,
    min_work: f64,
    [[hops, hops_serpentine], [byte_hops, byte_hops_serpentine]]: [[f64; 2]; 2],
) -> Deployment {
    use super::*;
    use std::collections::BTreeSet;
    let g = &art.graph;
    let ncores = machine.cores();
    let cap = machine.core.weight_sram_bytes;
    let state_cap = machine.core.state_sram_bytes;
    let mut weights_blob: Vec<u8> = Vec::new();
    let mut routes_blob: Vec<u8> = Vec::new();
    let mut cores: Vec<CoreMap> = Vec::new();
    let mut by_core: Vec<Vec<usize>> = vec![vec![]; ncores];
    for s in &slices {
        by_core[s.core].push(s.id);
    }
    for c in 0..ncores {
        let (x, y) = machine.position(c);
        let wstart = weights_blob.len() as u64;
        let mut memory = Vec::new();
        let mut off = 0u64;
        for &si in &by_core[c] {
            let s = &slices[si];
            let d = &drafts[s.layer];
            let mut seen_params: BTreeSet<(String, &'static str)> = BTreeSet::new();
            for id in &d.nodes {
                let node = g.node(*id);
                let co = crate::layers::channels_of(&infos[id].shape);
                for (role, t) in node.op.params() {
                    if !seen_params.insert((node.name.clone(), role)) {
                        continue;
                    }
                    let split = splits_with(co, d.channels, infos[id].shape.len(), t);
                    if !split && s.channels[0] != 0 {
                        continue;
                    }
                    let bytes = param_bytes(t, if split { Some(s.channels) } else { None });
                    if bytes.is_empty() {
                        continue;
                    }
                    let rows = if s.rows[0] == 0 && s.rows[1] == d.rows().max(1) {
                        String::new()
                    } else {
                        format!(" (row band [{}, {}))", s.rows[0], s.rows[1])
                    };
                    memory.push(Region {
                        sram: "weight".into(),
                        offset: off,
                        bytes: bytes.len() as u64,
                        what: if split {
                            format!(
                                "{} {role} [{}, {}){rows}",
                                node.name, s.channels[0], s.channels[1]
                            )
                        } else {
                            format!("{} {role}{rows}", node.name)
                        },
                    });
                    weights_blob.extend_from_slice(&bytes);
                    off += bytes.len() as u64;
                }
            }
            // Every slice starts aligned.
            let padded = off.div_ceil(ALIGN) * ALIGN;
            weights_blob.resize(weights_blob.len() + (padded - off) as usize, 0);
            off = padded;
        }
        let weight_used = off;
        for &si in &by_core[c] {
            let s = &slices[si];
            memory.push(Region {
                sram: "state".into(),
                offset: 0,
                bytes: s.working_bytes,
                what: format!(
                    "work {} [{}, {}) rows [{}, {}) tile {}x{} (time-shared)",
                    layers[s.layer].name,
                    s.channels[0],
                    s.channels[1],
                    s.rows[0],
                    s.rows[1],
                    s.tile[0],
                    s.tile[1]
                ),
            });
        }
        memory.extend(state_regions[c].iter().cloned());
        let state_used = live[c]
            .iter()
            .map(|r| r.0 + r.1)
            .max()
            .unwrap_or(working[c])
            .max(working[c]);
        let rstart = routes_blob.len() as u64;
        for r in &routes[c] {
            routes_blob.extend_from_slice(&(r.edge as u32).to_le_bytes());
            routes_blob.extend_from_slice(&(r.slice as u32).to_le_bytes());
            routes_blob.extend_from_slice(&(c as u16).to_le_bytes());
            routes_blob.extend_from_slice(&(r.dests.len() as u16).to_le_bytes());
            for &d in &r.dests {
                routes_blob.extend_from_slice(&(d as u16).to_le_bytes());
            }
        }
        cores.push(CoreMap {
            id: c,
            chip: machine.chip_of(c),
            x,
            y,
            slices: by_core[c].clone(),
            weight_used,
            state_used: state_used.min(state_cap),
            memory,
            routes: routes[c].clone(),
            weights_blob: [wstart, weights_blob.len() as u64],
            routes_blob: [rstart, routes_blob.len() as u64],
        });
    }
    let artifact = art.to_bytes();
    let weight_total: u64 = slices.iter().map(|s| s.weight_bytes).sum();
    let summary = Summary {
        cores_total: ncores,
        cores_used: by_core.iter().filter(|v| !v.is_empty()).count(),
        layers: layers.len(),
        slices: slices.len(),
        weight_bytes: weight_total,
        weight_sram_fill: weight_total as f64 / (cap as f64 * ncores as f64),
        edges_sram: edges.iter().filter(|e| e.staging == "sram").count(),
        edges_dram: edges
            .iter()
            .filter(|e| e.staging == "dram" || e.staging == "split")
            .count(),
        dram_staging_bytes: {
            let mut seen = BTreeSet::new();
            edges
                .iter()
                .filter(|e| seen.insert(e.node))
                .map(|e| e.dram_bytes)
                .sum()
        },
        min_slice_work_cycles: min_work,
        chips: machine.card.chips,
        stages: stages.len(),
        hops_per_spike: hops,
        hops_per_spike_serpentine: hops_serpentine,
        hops_per_byte: byte_hops,
        hops_per_byte_serpentine: byte_hops_serpentine,
    };
    let input_node = g.input().expect("verified");
    let files = vec![
        file_entry("model.spk", &artifact),
        file_entry("weights.bin", &weights_blob),
        file_entry("routes.bin", &routes_blob),
    ];
    let [h, w] = opts.input_size;
    let manifest = Manifest {
        format: FORMAT.into(),
        version: FORMAT_VERSION,
        model: ModelInfo {
            model: art.meta.model.clone(),
            source: art.meta.source.clone(),
            precision: art.meta.precision.to_string(),
            time_steps: g.time_steps(),
            input_size: [h, w],
            input: TensorInfo {
                name: g.node(input_node).name.clone(),
                shape: infos[&input_node].shape.clone(),
            },
            outputs: g
                .outputs()
                .iter()
                .map(|o| TensorInfo {
                    name: g.node(*o).name.clone(),
                    shape: infos[o].shape.clone(),
                })
                .collect(),
            preset: opts.preset.clone(),
            schedule: sched,
        },
        machine: machine.clone(),
        summary,
        layers,
        stages,
        slices,
        edges,
        cores,
        files,
    };
    Deployment {
        manifest,
        weights: weights_blob,
        routes: routes_blob,
        artifact,
    }
}

#[cfg(test)]
mod tests {
    /// Floats the manifest carries (route fractions, machine figures, summary ratios) must
    /// read back as the very f64 they were written from; 17-significant-digit decimals are
    /// the ones a fast, not correctly rounded parser gets wrong.
    #[test]
    fn manifest_floats_survive_their_json_form() {
        let mut values = vec![1.0 / 11.0, 1.0 / 3.0, 1.0 / 6.0, 2.0 / 3.0, 0.1, 162.5, 1e-300, 5e-324];
        let mut x = 0x3fb5_5555_5555_5555u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if f.is_finite() {
                values.push(f);
            }
        }
        // Shares p/q of rows and channels, as read_fraction makes them.
        for q in 1..200u32 {
            for p in 1..q {
                values.push(p as f64 / q as f64);
            }
        }
        for v in values {
            let back: f64 = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{v:e} did not survive JSON");
        }
    }
}
