//! Parameter tensors (weights, biases, BatchNorm statistics) as stored in the IR.
//!
//! A [`Tensor`] is a dense row-major array stored either in f32 or f16. Compute always widens
//! to f32 (exactly: every f16 is an f32), see the f16 semantics in `ARCHITECTURE.md`.

use half::f16;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

use crate::ir::DType;

/// Storage of a parameter tensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TensorData {
    F32(Vec<f32>),
    F16(Vec<f16>),
}

/// A dense row-major parameter tensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Tensor {
    /// Builds an f32 tensor. Panics if `data.len()` is not the product of `shape`
    /// (a programming error: importers check user data before calling this).
    pub fn from_f32(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "tensor shape/data mismatch"
        );
        Tensor {
            shape,
            data: TensorData::F32(data),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            TensorData::F32(v) => v.len(),
            TensorData::F16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dtype(&self) -> DType {
        match self.data {
            TensorData::F32(_) => DType::F32,
            TensorData::F16(_) => DType::F16,
        }
    }

    /// The values widened to f32 (borrowed when already f32; exact for f16).
    pub fn to_f32(&self) -> Cow<'_, [f32]> {
        match &self.data {
            TensorData::F32(v) => Cow::Borrowed(v),
            TensorData::F16(v) => Cow::Owned(v.iter().map(|x| x.to_f32()).collect()),
        }
    }

    /// The same tensor rounded to f16 storage (round to nearest even).
    pub fn to_f16(&self) -> Tensor {
        let data = match &self.data {
            TensorData::F32(v) => v.iter().map(|&x| f16::from_f32(x)).collect(),
            TensorData::F16(v) => v.clone(),
        };
        Tensor {
            shape: self.shape.clone(),
            data: TensorData::F16(data),
        }
    }

    /// Bytes of storage.
    pub fn byte_len(&self) -> usize {
        self.len() * self.dtype().size_of()
    }
}
