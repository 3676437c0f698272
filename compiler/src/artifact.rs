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
//! | n | payload (below) |
//!
//! The payload is our own record layout, independent of the in-memory graph library: the
//! fields of [`ArtifactMeta`], the optimizer report, then the graph as a list of
//! [`NodeRecord`]s in topological order, each naming its inputs by their position in the list
//! (see `ARCHITECTURE.md`, "Artifact format", for the byte-level encoding: bincode 1 fixed-int
//! little-endian of these structs — `u64` lengths before strings, lists and tensors, `u32`
//! enum tags in declaration order, IEEE floats). Any change to these structs bumps
//! [`FORMAT_VERSION`]. Decoding is bounded by the payload length (a length field can never
//! make the reader allocate more than the file holds) and the decoded graph is verified.
//!
//! Serialization is deterministic (no hash maps, no timestamps, no absolute paths), so
//! compiling the same checkpoint twice gives byte-identical files.

use serde::{Deserialize, Serialize};
use std::path::Path;

use bincode::Options;

use crate::ir::{Graph, NodeRecord};
use crate::passes::{OptimizeReport, Precision};
use crate::verify::{Verified, VerifyError};

pub const MAGIC: &[u8; 8] = b"SPIKERC\0";
/// 2: convolutions carry their algorithm ([`crate::ir::ConvAlgorithm`]).
/// 3: the graph is stored as spikerc's own [`NodeRecord`] list (was the graph library's
/// internal serialization).
pub const FORMAT_VERSION: u32 = 3;
const HEADER_LEN: usize = 8 + 4 + 8 + 4;

/// Largest artifact file accepted (4 GiB: a billion f32 parameters).
pub const MAX_ARTIFACT_BYTES: u64 = 4 << 30;

/// A payload decoding failure in words (bincode's own messages can be empty, e.g. an I/O
/// error at the end of the input).
fn decode_message(e: &bincode::Error) -> String {
    match e.as_ref() {
        bincode::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the payload ends in the middle of a record (corrupt or hand-made file)".into()
        }
        bincode::ErrorKind::SizeLimit => {
            "a length field announces more data than the payload holds (corrupt or hand-made file)".into()
        }
        bincode::ErrorKind::Io(io) => format!("read error inside the payload: {io}"),
        other => format!("malformed payload: {other}"),
    }
}

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
    graph: Vec<NodeRecord>,
}

/// The payload codec: bincode 1, fixed-width little-endian integers, bounded by `limit` bytes,
/// no trailing bytes.
fn codec(limit: u64) -> impl bincode::Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(limit)
        .reject_trailing_bytes()
}

/// Whether `found` is the magic with at most two bytes changed (a damaged artifact rather
/// than some other file).
pub fn near_magic(found: &[u8]) -> bool {
    found.len() == MAGIC.len() && found.iter().zip(MAGIC).filter(|(a, b)| a != b).count() <= 2
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
    #[error("{path}: artifact format version {found} is older than this spikerc reads ({FORMAT_VERSION}); recompile the checkpoint with `spikerc compile`")]
    OldVersion { path: String, found: u32 },
    #[error("{path}: damaged artifact header: magic bytes {found:02x?} differ from {MAGIC:02x?} in {differ} byte(s); the file is corrupt, recompile it with `spikerc compile`")]
    DamagedMagic {
        path: String,
        found: Vec<u8>,
        differ: usize,
    },
    #[error("{path}: {found} bytes is longer than the {expected} bytes its header announces (trailing data); the file is corrupt")]
    Trailing {
        path: String,
        found: usize,
        expected: usize,
    },
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
    /// Packages a verified graph. Its nodes are renumbered densely in topological order —
    /// the numbering a saved and reloaded artifact has — so an artifact prints, runs and
    /// serializes the same before and after a round trip through a file.
    pub fn new(meta: ArtifactMeta, report: OptimizeReport, graph: Verified) -> Artifact {
        let records = graph.to_records().expect("a verified graph is acyclic");
        let graph = Graph::from_records(records)
            .ok()
            .and_then(|g| Verified::new(g).ok())
            .expect("renumbering a verified graph keeps it valid");
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
            graph: self
                .graph
                .to_records()
                .expect("a verified graph is acyclic"),
        };
        let payload = codec(u64::MAX)
            .serialize(&body)
            .expect("in-memory serialization cannot fail");
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
        if bytes.len() >= 8 && near_magic(&bytes[..8]) && &bytes[..8] != MAGIC {
            return Err(ArtifactError::DamagedMagic {
                path: p(),
                found: bytes[..8].to_vec(),
                differ: bytes[..8].iter().zip(MAGIC).filter(|(a, b)| a != b).count(),
            });
        }
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
        let len = u64::from_le_bytes(bytes[12..20].try_into().unwrap());
        let stored = u32::from_le_bytes(bytes[20..24].try_into().unwrap());
        let expected = usize::try_from(len)
            .unwrap_or(usize::MAX)
            .saturating_add(HEADER_LEN);
        if bytes.len() > expected {
            return Err(ArtifactError::Trailing {
                path: p(),
                found: bytes.len(),
                expected,
            });
        }
        if bytes.len() < expected {
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
            codec(len)
                .deserialize(payload)
                .map_err(|e| ArtifactError::Decode {
                    path: p(),
                    message: decode_message(&e),
                })?;
        let graph = Graph::from_records(body.graph).map_err(|message| ArtifactError::Decode {
            path: p(),
            message,
        })?;
        let graph = Verified::new(graph)
            .map_err(|source| ArtifactError::Invalid { path: p(), source })?;
        Ok(Artifact {
            meta: body.meta,
            report: body.report,
            graph,
        })
    }

    /// Reads and verifies an artifact file.
    ///
    /// Files larger than [`MAX_ARTIFACT_BYTES`] are refused before reading.
    pub fn load(path: &Path) -> Result<Artifact, ArtifactError> {
        if let Ok(md) = std::fs::metadata(path) {
            if md.len() > MAX_ARTIFACT_BYTES {
                return Err(ArtifactError::Decode {
                    path: path.display().to_string(),
                    message: format!(
                        "{} bytes is larger than any artifact spikerc writes (limit {MAX_ARTIFACT_BYTES} bytes)",
                        md.len()
                    ),
                });
            }
        }
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

    /// Re-encodes an artifact after `edit` changed its records, with a valid header and CRC:
    /// what a hostile user can craft.
    fn crafted(edit: impl FnOnce(&mut Vec<NodeRecord>)) -> Vec<u8> {
        let a = artifact();
        let mut body = ArtifactBody {
            meta: a.meta.clone(),
            report: a.report.clone(),
            graph: a.graph.to_records().unwrap(),
        };
        edit(&mut body.graph);
        let payload = codec(u64::MAX).serialize(&body).unwrap();
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    #[test]
    fn a_crafted_tensor_shorter_than_its_shape_is_refused() {
        let bytes = crafted(|recs| {
            let r = recs.iter_mut().find(|r| matches!(r.op, crate::Op::Conv2d(_))).unwrap();
            if let crate::Op::Conv2d(c) = &mut r.op {
                let mut w = c.weight.to_f32().into_owned();
                w.pop();
                c.weight.data = crate::tensor::TensorData::F32(w);
            }
        });
        let e = Artifact::from_bytes(&bytes, "a.spk").unwrap_err();
        let msg = format!("{e}: {}", std::error::Error::source(&e).unwrap());
        assert!(msg.contains("needs") && msg.contains("the tensor holds"), "{msg}");
    }

    #[test]
    fn crafted_structure_is_refused_not_indexed() {
        let forward = crafted(|recs| recs[1].inputs = vec![5]);
        let e = Artifact::from_bytes(&forward, "a.spk").unwrap_err().to_string();
        assert!(e.contains("reads node 5, which is not an earlier node"), "{e}");
        let deep = crafted(|recs| {
            recs[0].fact.shape.0[2] = crate::Dim::Height(200);
        });
        let e = Artifact::from_bytes(&deep, "a.spk").unwrap_err();
        assert!(std::error::Error::source(&e).unwrap().to_string().contains("2^200"), "{e}");
    }

    #[test]
    fn header_damage_is_named() {
        let bytes = artifact().to_bytes();
        let msg = |b: &[u8]| Artifact::from_bytes(b, "a.spk").unwrap_err().to_string();
        let mut magic = bytes.clone();
        magic[2] ^= 0x01;
        assert!(msg(&magic).contains("damaged artifact header"), "{}", msg(&magic));
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"junk");
        assert_eq!(msg(&longer), format!("a.spk: {} bytes is longer than the {} bytes its header announces (trailing data); the file is corrupt", bytes.len() + 4, bytes.len()));
        let mut old = bytes.clone();
        old[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert!(msg(&old).contains("recompile the checkpoint"), "{}", msg(&old));
        // A length field announcing more than the payload holds: bounded, clear.
        let mut huge = crafted(|_| {});
        let n = huge.len();
        huge.truncate(n - 8);
        let payload_len = (huge.len() - HEADER_LEN) as u64;
        huge[12..20].copy_from_slice(&payload_len.to_le_bytes());
        let crc = crc32fast::hash(&huge[HEADER_LEN..]);
        huge[20..24].copy_from_slice(&crc.to_le_bytes());
        let m = msg(&huge);
        assert!(m.contains("payload") && !m.ends_with(": "), "{m}");
    }
}
