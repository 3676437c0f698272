//! Moving weights between a [`VarStore`] holding a SpikerIR and the checkpoint layout:
//! loading a [`Checkpoint`], taking the state_dict back out, and writing it as
//! `.safetensors` (f32 parameters, int64 `num_batches_tracked`, keys sorted) — the file the
//! compiler imports and PyTorch's `load_state_dict` accepts.

use std::collections::BTreeMap;
use std::path::Path;

use tch::{nn::VarStore, Kind, Tensor};

use crate::{Checkpoint, ImportError, RawTensor};

/// Copies every floating-point variable of `vs` from `ckpt` (same key, same shape).
/// `num_batches_tracked` (an integer the checkpoint reader does not keep) stays as it is.
/// Keys of `ckpt` that `vs` lacks are not checked here: [`crate::spikerir::import`] does that.
pub fn load_checkpoint(vs: &VarStore, ckpt: &Checkpoint) -> Result<(), ImportError> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, mut var) in vars {
        if !var.is_floating_point() {
            continue;
        }
        let expected: Vec<usize> = var.size().iter().map(|&d| d as usize).collect();
        let t = ckpt
            .tensors
            .get(&name)
            .ok_or_else(|| ImportError::MissingKey {
                key: name.clone(),
                expected: expected.clone(),
            })?;
        let data = t.data.as_ref().ok_or_else(|| ImportError::WrongDType {
            key: name.clone(),
            found: t.dtype.clone(),
        })?;
        if t.shape != expected {
            return Err(ImportError::WrongShape {
                key: name,
                expected,
                found: t.shape.clone(),
                note: String::new(),
            });
        }
        let src = Tensor::from_slice(data)
            .reshape(var.size().as_slice())
            .to_kind(var.kind())
            .to_device(var.device());
        tch::no_grad(|| var.copy_(&src));
    }
    Ok(())
}

/// The state_dict of `vs`: every variable detached, on the CPU, keys sorted.
pub fn state_dict(vs: &VarStore) -> BTreeMap<String, Tensor> {
    vs.variables()
        .into_iter()
        .map(|(k, v)| (k, v.detach().to_device(tch::Device::Cpu)))
        .collect()
}

/// The state_dict as a [`Checkpoint`] (floating tensors as f32), e.g. to compile a model
/// straight from a training run without a file.
pub fn to_checkpoint(vs: &VarStore) -> Result<Checkpoint, ImportError> {
    let mut tensors = BTreeMap::new();
    for (name, t) in state_dict(vs) {
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let (dtype, data) = if t.is_floating_point() {
            let flat = t.to_kind(Kind::Float).contiguous().view([-1]);
            let v = Vec::<f32>::try_from(&flat).map_err(|e| ImportError::Corrupt {
                path: "<var store>".into(),
                format: "libtorch",
                reason: format!("tensor `{name}`: {e}"),
            })?;
            ("f32".to_string(), Some(v))
        } else {
            ("i64".to_string(), None)
        };
        tensors.insert(name, RawTensor { dtype, shape, data });
    }
    Ok(Checkpoint { tensors })
}

/// Serialises the state_dict of `vs` as safetensors bytes in the checkpoint layout: floating
/// tensors as f32, integer ones (`num_batches_tracked`) as i64.
pub fn safetensors_bytes(vs: &VarStore) -> Result<Vec<u8>, ImportError> {
    let err = |reason: String| ImportError::Corrupt {
        path: "<var store>".into(),
        format: "safetensors",
        reason,
    };
    let mut raw: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in state_dict(vs) {
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let (dtype, bytes) = if t.is_floating_point() {
            let flat = t.to_kind(Kind::Float).contiguous().view([-1]);
            let v = Vec::<f32>::try_from(&flat).map_err(|e| err(format!("`{name}`: {e}")))?;
            (
                safetensors::Dtype::F32,
                v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
            )
        } else {
            let flat = t.to_kind(Kind::Int64).contiguous().view([-1]);
            let v = Vec::<i64>::try_from(&flat).map_err(|e| err(format!("`{name}`: {e}")))?;
            (
                safetensors::Dtype::I64,
                v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>(),
            )
        };
        raw.push((name, dtype, shape, bytes));
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = raw
        .iter()
        .map(|(n, d, s, b)| {
            safetensors::tensor::TensorView::new(*d, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| err(format!("`{n}`: {e}")))
        })
        .collect::<Result<_, _>>()?;
    safetensors::serialize(views, &None).map_err(|e| err(e.to_string()))
}

/// Writes the state_dict of `vs` to `path` as `.safetensors` (through a temporary file and a
/// rename, so a failure leaves no partial file).
pub fn export_safetensors(vs: &VarStore, path: &Path) -> Result<(), ImportError> {
    let bytes = safetensors_bytes(vs)?;
    let io = |source| ImportError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, &bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}
