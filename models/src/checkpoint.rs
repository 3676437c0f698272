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

/// A readable reason for a safetensors parse failure.
fn safetensors_reason(e: &safetensors::SafeTensorError, len: usize) -> String {
    use safetensors::SafeTensorError as E;
    match e {
        E::MetadataIncompleteBuffer => format!("truncated: the header describes more tensor data than the {len} bytes the file holds"),
        E::HeaderTooSmall | E::HeaderTooLarge => format!("truncated or not safetensors: impossible header size ({e:?})"),
        E::InvalidHeader | E::InvalidHeaderDeserialization | E::InvalidHeaderStart => format!("corrupt header ({e:?})"),
        other => format!("{other:?}"),
    }
}

impl Checkpoint {
    /// Reads a checkpoint file of either format.
    pub fn load(path: &Path) -> Result<Checkpoint, ImportError> {
        let p = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| ImportError::Io {
            path: p.clone(),
            source,
        })?;
        match sniff(&bytes) {
            Some(Format::SafeTensors) => Checkpoint::from_safetensors(&bytes, &p),
            Some(Format::TorchZip) => Checkpoint::from_torch_file(path),
            None if bytes.len() < 9 => Err(ImportError::Corrupt {
                path: p,
                format: "unknown",
                reason: format!("file is only {} bytes", bytes.len()),
            }),
            None => Err(ImportError::UnknownFormat { path: p }),
        }
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
