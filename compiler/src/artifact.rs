//! The compiled artifact: one versioned, checksummed file holding the optimized IR and its
//! weights.
//!
//! Layout (little endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic `SPIKERC\0` |
//! | 4 | format version (u32) |
//! | 8 | payload length (u64) |
//! | 4 | CRC-32 of the payload |
//! | n | payload: bincode of [`ArtifactBody`] |
//!
//! Serialization is deterministic (no hash maps, no timestamps, no absolute paths), so
//! compiling the same checkpoint twice gives byte-identical files.

use serde::{Deserialize, Serialize};
use std::path::Path;

use crate::ir::Graph;
use crate::passes::{OptimizeReport, Precision};
use crate::verify::{Verified, VerifyError};

pub const MAGIC: &[u8; 8] = b"SPIKERC\0";
/// 2: convolutions carry their algorithm ([`crate::ir::ConvAlgorithm`]).
pub const FORMAT_VERSION: u32 = 2;
const HEADER_LEN: usize = 8 + 4 + 8 + 4;

/// Descriptive metadata stored with the graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArtifactMeta {
    /// Model family and architecture summary, e.g. `spikerir L=3 dim=16 en=[2,1,1] de=[1,1,2]`.
    pub model: String,
    /// File name (not path) of the checkpoint it was compiled from.
    pub source: String,
    pub precision: Precision,
    pub time_steps: usize,
    /// spikerc version that wrote it.
    pub producer: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct ArtifactBody {
    meta: ArtifactMeta,
    report: OptimizeReport,
    graph: Graph,
}

/// A loaded (and verified) artifact.
#[derive(Clone, Debug)]
pub struct Artifact {
    pub meta: ArtifactMeta,
    pub report: OptimizeReport,
    pub graph: Verified,
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("{path}: cannot read")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a spikerc artifact (magic bytes {found:02x?}, expected {MAGIC:02x?}); checkpoints must first be compiled with `spikerc compile`")]
    Magic { path: String, found: Vec<u8> },
    #[error("{path}: artifact format version {found} is newer than this spikerc supports ({FORMAT_VERSION}); upgrade spikerc")]
    NewerVersion { path: String, found: u32 },
    #[error("{path}: artifact format version {found} is not supported (this spikerc reads version {FORMAT_VERSION})")]
    OldVersion { path: String, found: u32 },
    #[error("{path}: truncated artifact: {found} bytes, header says {expected}")]
    Truncated {
        path: String,
        found: usize,
        expected: usize,
    },
    #[error("{path}: checksum mismatch (stored {stored:08x}, computed {computed:08x}): the file is corrupt")]
    Checksum {
        path: String,
        stored: u32,
        computed: u32,
    },
    #[error("{path}: undecodable payload: {message}")]
    Decode { path: String, message: String },
    #[error("{path}")]
    Invalid { path: String, source: VerifyError },
}

impl Artifact {
    pub fn new(meta: ArtifactMeta, report: OptimizeReport, graph: Verified) -> Artifact {
        Artifact {
            meta,
            report,
            graph,
        }
    }

    /// Serializes to bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = ArtifactBody {
            meta: self.meta.clone(),
            report: self.report.clone(),
            graph: self.graph.graph().clone(),
        };
        let payload = bincode::serialize(&body).expect("in-memory serialization cannot fail");
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    /// Parses bytes; `path` is only used in messages.
    pub fn from_bytes(bytes: &[u8], path: &str) -> Result<Artifact, ArtifactError> {
        let p = || path.to_string();
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err(ArtifactError::Magic {
                path: p(),
                found: bytes[..bytes.len().min(8)].to_vec(),
            });
        }
        if bytes.len() < HEADER_LEN {
            return Err(ArtifactError::Truncated {
                path: p(),
                found: bytes.len(),
                expected: HEADER_LEN,
            });
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
        if version > FORMAT_VERSION {
            return Err(ArtifactError::NewerVersion {
                path: p(),
                found: version,
            });
        }
        if version < FORMAT_VERSION {
            return Err(ArtifactError::OldVersion {
                path: p(),
                found: version,
            });
        }
        let len = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
        let stored = u32::from_le_bytes(bytes[20..24].try_into().unwrap());
        let expected = HEADER_LEN.saturating_add(len);
        if bytes.len() != expected {
            return Err(ArtifactError::Truncated {
                path: p(),
                found: bytes.len(),
                expected,
            });
        }
        let payload = &bytes[HEADER_LEN..];
        let computed = crc32fast::hash(payload);
        if computed != stored {
            return Err(ArtifactError::Checksum {
                path: p(),
                stored,
                computed,
            });
        }
        let body: ArtifactBody =
            bincode::deserialize(payload).map_err(|e| ArtifactError::Decode {
                path: p(),
                message: e.to_string(),
            })?;
        let graph = Verified::new(body.graph)
            .map_err(|source| ArtifactError::Invalid { path: p(), source })?;
        Ok(Artifact {
            meta: body.meta,
            report: body.report,
            graph,
        })
    }

    /// Reads and verifies an artifact file.
    pub fn load(path: &Path) -> Result<Artifact, ArtifactError> {
        let bytes = std::fs::read(path).map_err(|source| ArtifactError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Artifact::from_bytes(&bytes, &path.display().to_string())
    }

    /// True when the bytes start like an artifact (for format sniffing).
    pub fn sniff(bytes: &[u8]) -> bool {
        bytes.len() >= 8 && &bytes[..8] == MAGIC
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passes::optimize;
    use crate::test_graphs::small;

    fn artifact() -> Artifact {
        let (g, report) = optimize(small(), Precision::F16, true).unwrap();
        let meta = ArtifactMeta {
            model: "small".into(),
            source: "small.safetensors".into(),
            precision: Precision::F16,
            time_steps: 2,
            producer: "test".into(),
        };
        Artifact::new(meta, report, g)
    }

    #[test]
    fn round_trips_and_is_deterministic() {
        let a = artifact();
        let bytes = a.to_bytes();
        assert_eq!(bytes, artifact().to_bytes());
        let b = Artifact::from_bytes(&bytes, "a.spk").unwrap();
        assert_eq!(b.meta, a.meta);
        assert_eq!(b.graph.to_text(), a.graph.to_text());
        assert_eq!(b.to_bytes(), bytes);
    }

    #[test]
    fn rejects_corruption_with_clear_errors() {
        let bytes = artifact().to_bytes();
        let msg = |b: &[u8]| Artifact::from_bytes(b, "a.spk").unwrap_err().to_string();
        assert!(msg(b"hello world, not an artifact").starts_with("a.spk: not a spikerc artifact"));
        let mut newer = bytes.clone();
        newer[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        assert_eq!(msg(&newer), format!("a.spk: artifact format version {} is newer than this spikerc supports ({FORMAT_VERSION}); upgrade spikerc", FORMAT_VERSION + 1));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x55;
        assert!(msg(&flipped).contains("checksum mismatch"), "{}", msg(&flipped));
        let cut = &bytes[..bytes.len() - 100];
        assert_eq!(msg(cut), format!("a.spk: truncated artifact: {} bytes, header says {}", cut.len(), bytes.len()));
        assert!(msg(&bytes[..10]).starts_with("a.spk: truncated artifact: 10 bytes"));
    }
}
