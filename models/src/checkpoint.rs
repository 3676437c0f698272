//! Reading state_dicts into a neutral [`Checkpoint`]: key -> dtype, shape, values as f32.
//!
//! `.safetensors` is parsed in pure Rust; `.pt` (`torch.save` zip) goes through `tch` when the
//! `torch` feature is on. The format is sniffed from the bytes, not the file extension.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::ImportError;

/// One tensor of a state_dict. `data` is `None` for non-floating tensors (e.g. the int64
/// `num_batches_tracked`).
#[derive(Clone, Debug, PartialEq)]
pub struct RawTensor {
    pub dtype: String,
    pub shape: Vec<usize>,
    pub data: Option<Vec<f32>>,
}

/// A state_dict, keys sorted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    pub tensors: BTreeMap<String, RawTensor>,
}

/// Largest checkpoint file read (16 GiB).
pub const MAX_CHECKPOINT_BYTES: u64 = 16 << 30;

/// The file format of a checkpoint, by content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    SafeTensors,
    TorchZip,
}

/// Guesses the format from the first bytes.
pub fn sniff(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(b"PK\x03\x04") {
        return Some(Format::TorchZip);
    }
    if bytes.len() >= 9 {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        if n > 0 && bytes[8] == b'{' {
            return Some(Format::SafeTensors);
        }
    }
    None
}

/// A readable reason for a safetensors parse failure of a file of `len` bytes (the library's
/// own messages are bare variant names).
pub fn safetensors_reason(e: &safetensors::SafeTensorError, len: usize) -> String {
    use safetensors::SafeTensorError as E;
    let header = if len >= 8 {
        "the header".to_string()
    } else {
        format!("the file is only {len} bytes, shorter than the 8-byte header length")
    };
    match e {
        E::MetadataIncompleteBuffer => format!("truncated: the header describes more tensor data than the {len} bytes the file holds"),
        E::HeaderTooSmall => format!("truncated or not safetensors: {header} is too small to hold a header"),
        E::HeaderTooLarge => "not safetensors or corrupt: the header length field announces more than 100 MB of header".into(),
        E::InvalidHeaderLength => format!("truncated or corrupt: the header length field points past the end of the {len}-byte file"),
        E::InvalidHeaderStart => "corrupt header: the JSON header does not start with `{`".into(),
        E::InvalidHeader => "corrupt header: the JSON header is not valid UTF-8".into(),
        E::InvalidHeaderDeserialization => "corrupt header: the JSON header does not describe tensors (dtype, shape, data_offsets per key)".into(),
        E::TensorInvalidInfo => "corrupt header: a tensor's shape and dtype disagree with the length of its data_offsets".into(),
        E::InvalidOffset(key) => format!("corrupt header: tensor `{key}` has data_offsets that overlap another tensor, leave a gap or run past the data"),
        E::ValidationOverflow => "corrupt header: a tensor's shape or data_offsets overflow 64-bit sizes".into(),
        E::TensorNotFound(key) => format!("no tensor named `{key}`"),
        E::InvalidTensorView(dtype, shape, n) => format!("a {dtype:?} tensor of shape {shape:?} cannot hold {n} bytes"),
        E::IoError(io) => format!("read error: {io}"),
        E::JsonError(j) => format!("corrupt header JSON: {j}"),
    }
}

/// Wrapper keys training scripts save a state_dict under, beside optimizer state etc.
const WRAPPERS: [&str; 6] = ["state_dict", "model_state_dict", "model", "params", "net", "network"];

/// The root key every SpikerIR state_dict has.
const ROOT_KEY: &str = "patch_embed.proj.weight";

/// Unwraps a state_dict saved inside a training checkpoint: keys under a wrapper
/// (`state_dict.`, `model.`, `params.`, ...) are kept without it and everything beside it
/// (optimizer state, epochs) is dropped; a `module.` prefix (DataParallel) is stripped. Returns
/// one note per change. Checkpoints that already have the root key are left untouched.
pub fn unwrap_training_keys(tensors: &mut BTreeMap<String, RawTensor>) -> Vec<String> {
    let mut notes = Vec::new();
    for _ in 0..3 {
        if tensors.contains_key(ROOT_KEY) {
            break;
        }
        let prefix = WRAPPERS
            .iter()
            .map(|w| format!("{w}."))
            .chain(["module.".to_string()])
            .find(|p| tensors.contains_key(&format!("{p}{ROOT_KEY}")));
        let Some(prefix) = prefix else { break };
        let total = tensors.len();
        let kept: BTreeMap<String, RawTensor> = std::mem::take(tensors)
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|s| (s.to_string(), v)))
            .collect();
        let dropped = total - kept.len();
        notes.push(if prefix == "module." {
            format!("stripped the `module.` prefix (DataParallel) from {} keys", kept.len())
        } else {
            format!(
                "using the state_dict under `{}` ({} tensors){}",
                prefix.trim_end_matches('.'),
                kept.len(),
                if dropped > 0 { format!("; ignored {dropped} other entries (optimizer state, counters)") } else { String::new() }
            )
        });
        *tensors = kept;
    }
    notes
}

impl Checkpoint {
    /// Reads a checkpoint file of either format.
    pub fn load(path: &Path) -> Result<Checkpoint, ImportError> {
        let p = path.display().to_string();
        if let Ok(md) = std::fs::metadata(path) {
            if md.is_dir() {
                return Err(ImportError::Corrupt {
                    path: p,
                    format: "unknown",
                    reason: "is a directory, not a checkpoint file".into(),
                });
            }
            if md.len() > MAX_CHECKPOINT_BYTES {
                return Err(ImportError::Corrupt {
                    path: p,
                    format: "unknown",
                    reason: format!("{} bytes is larger than the {MAX_CHECKPOINT_BYTES}-byte limit", md.len()),
                });
            }
        }
        let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
            path: p.clone(),
            source,
        })?;
        let mut ckpt = match sniff(&bytes) {
            Some(Format::SafeTensors) => Checkpoint::from_safetensors(&bytes, &p)?,
            Some(Format::TorchZip) => Checkpoint::from_torch_file(path)?,
            None if bytes.len() >= 8 && spikerc_compiler::artifact::near_magic(&bytes[..8]) =>
            {
                return Err(ImportError::Corrupt {
                    path: p,
                    format: "spikerc artifact",
                    reason: "this is a compiled artifact (or a damaged one), not a checkpoint: pass it to `run`/`inspect`, or compile the original checkpoint".into(),
                })
            }
            None if bytes.len() < 9 => {
                return Err(ImportError::Corrupt {
                    path: p,
                    format: "unknown",
                    reason: format!("file is only {} bytes", bytes.len()),
                })
            }
            None => return Err(ImportError::UnknownFormat { path: p }),
        };
        for note in unwrap_training_keys(&mut ckpt.tensors) {
            eprintln!("note: {p}: {note}");
        }
        Ok(ckpt)
    }

    /// Parses safetensors bytes.
    pub fn from_safetensors(bytes: &[u8], path: &str) -> Result<Checkpoint, ImportError> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| ImportError::Corrupt {
            path: path.into(),
            format: "safetensors",
            reason: safetensors_reason(&e, bytes.len()),
        })?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let raw = view.data();
            let data: Option<Vec<f32>> = match view.dtype() {
                Dtype::F32 => Some(
                    raw.chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                ),
                Dtype::F64 => Some(
                    raw.chunks_exact(8)
                        .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                        .collect(),
                ),
                Dtype::F16 => Some(
                    raw.chunks_exact(2)
                        .map(|c| half::f16::from_le_bytes(c.try_into().unwrap()).to_f32())
                        .collect(),
                ),
                Dtype::BF16 => Some(
                    raw.chunks_exact(2)
                        .map(|c| half::bf16::from_le_bytes(c.try_into().unwrap()).to_f32())
                        .collect(),
                ),
                _ => None,
            };
            let dtype = format!("{:?}", view.dtype()).to_lowercase();
            tensors.insert(
                name,
                RawTensor {
                    dtype,
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        Ok(Checkpoint { tensors })
    }

    #[cfg(feature = "torch")]
    fn from_torch_file(path: &Path) -> Result<Checkpoint, ImportError> {
        crate::checkpoint::torch::load(path)
    }

    #[cfg(not(feature = "torch"))]
    fn from_torch_file(path: &Path) -> Result<Checkpoint, ImportError> {
        Err(ImportError::NeedsTorch {
            path: path.display().to_string(),
        })
    }

    /// Total number of floating-point parameters.
    pub fn param_count(&self) -> usize {
        self.tensors
            .values()
            .filter(|t| t.data.is_some())
            .map(|t| t.shape.iter().product::<usize>())
            .sum()
    }
}

#[cfg(feature = "torch")]
mod torch {
    use super::*;
    use tch::{Kind, Tensor};

    pub fn load(path: &Path) -> Result<Checkpoint, ImportError> {
        let p = path.display().to_string();
        crate::torch::check_zip_integrity(path)?;
        let named = Tensor::loadz_multi(path).map_err(|e| ImportError::Corrupt {
            path: p.clone(),
            format: "PyTorch zip",
            reason: first_line(&e.to_string()),
        })?;
        let mut tensors = BTreeMap::new();
        for (name, t) in named {
            let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
            let kind = t.kind();
            let data = if t.is_floating_point() {
                let flat = t.to_kind(Kind::Float).contiguous().view([-1]);
                Some(
                    Vec::<f32>::try_from(&flat).map_err(|e| ImportError::Corrupt {
                        path: p.clone(),
                        format: "PyTorch zip",
                        reason: format!("tensor `{name}`: {e}"),
                    })?,
                )
            } else {
                None
            };
            tensors.insert(
                name,
                RawTensor {
                    dtype: dtype_name(kind),
                    shape,
                    data,
                },
            );
        }
        Ok(Checkpoint { tensors })
    }

    /// Same names as the safetensors path, so both formats give equal `Checkpoint`s.
    fn dtype_name(kind: Kind) -> String {
        match kind {
            Kind::Float => "f32".into(),
            Kind::Double => "f64".into(),
            Kind::Half => "f16".into(),
            Kind::BFloat16 => "bf16".into(),
            Kind::Int64 => "i64".into(),
            Kind::Int => "i32".into(),
            Kind::Int16 => "i16".into(),
            Kind::Int8 => "i8".into(),
            Kind::Uint8 => "u8".into(),
            Kind::Bool => "bool".into(),
            other => format!("{other:?}").to_lowercase(),
        }
    }

    fn first_line(s: &str) -> String {
        s.lines().next().unwrap_or("").to_string()
    }
}
