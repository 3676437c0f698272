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
    Ok(Loaded {
        manifest,
        artifact,
        weights: blobs.remove("weights.bin").unwrap_or_default(),
        routes: blobs.remove("routes.bin").unwrap_or_default(),
    })
}
