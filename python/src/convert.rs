//! Conversions between Python objects and the library crates' types: numpy arrays to and from
//! [`Array`], a dict of numpy arrays to a [`Checkpoint`], and JSON documents (reports, stats)
//! to plain Python dicts and lists.

use numpy::{
    PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use spikerc_compiler::interp::Array;
use spikerc_models::{Checkpoint, RawTensor};
use std::collections::BTreeMap;

use crate::fail;

/// The Python type name of an object, for messages.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".into())
}

/// A numpy dtype as the checkpoint readers name it (`f32`, `i64`, `bool`, ...), so that a
/// dict and a `.safetensors` file of the same tensors give equal checkpoints and messages.
fn dtype_name(arr: &Bound<'_, PyUntypedArray>) -> String {
    let d = arr.dtype();
    let bits = d.itemsize() * 8;
    match d.kind() {
        b'f' => format!("f{bits}"),
        b'i' => format!("i{bits}"),
        b'u' => format!("u{bits}"),
        b'b' => "bool".into(),
        b'c' => format!("c{bits}"),
        _ => d
            .str()
            .map(|s| s.to_string())
            .unwrap_or_else(|_| "unknown".into()),
    }
}

/// The values of a floating array as f32 in C (row-major) order, any strides; `None` for
/// dtypes that are not f16/f32/f64.
fn float_values(value: &Bound<'_, PyAny>) -> Option<Vec<f32>> {
    if let Ok(a) = value.cast::<PyArrayDyn<f32>>() {
        return Some(a.readonly().as_array().iter().copied().collect());
    }
    if let Ok(a) = value.cast::<PyArrayDyn<f64>>() {
        return Some(a.readonly().as_array().iter().map(|&v| v as f32).collect());
    }
    if let Ok(a) = value.cast::<PyArrayDyn<half::f16>>() {
        return Some(a.readonly().as_array().iter().map(|v| v.to_f32()).collect());
    }
    None
}

/// A state_dict given as `{key: numpy array}`; floating arrays become f32 values (f64 rounded,
/// f16 exact, as the `.safetensors` reader does), other dtypes keep their shape and dtype name.
pub fn checkpoint_from_dict(dict: &Bound<'_, PyDict>) -> PyResult<Checkpoint> {
    let mut tensors = BTreeMap::new();
    for (k, v) in dict.iter() {
        let key: String = k.extract().map_err(|_| {
            fail(format!(
                "state_dict: keys must be strings, found a key of type {}",
                type_name(&k)
            ))
        })?;
        let arr = v.cast::<PyUntypedArray>().map_err(|_| {
            fail(format!(
                "key `{key}`: expected a numpy array, found {}",
                type_name(&v)
            ))
        })?;
        let dtype = dtype_name(arr);
        let shape = arr.shape().to_vec();
        let data = if dtype.starts_with('f') {
            Some(float_values(&v).ok_or_else(|| {
                fail(format!(
                    "key `{key}`: expected a floating-point tensor (f32, f16, bf16 or f64), found {dtype}"
                ))
            })?)
        } else {
            None
        };
        tensors.insert(key, RawTensor { dtype, shape, data });
    }
    if tensors.is_empty() {
        return Err(fail("state_dict: the dict is empty"));
    }
    Ok(Checkpoint { tensors })
}

/// An input batch: a floating numpy array `[N, C, H, W]` (any strides; f64 and f16 are cast
/// to f32).
pub fn numpy_to_input(x: &Bound<'_, PyAny>) -> PyResult<Array> {
    let arr = x.cast::<PyUntypedArray>().map_err(|_| {
        fail(format!(
            "input: expected a float32 numpy array [N, 3, H, W], found {}",
            type_name(x)
        ))
    })?;
    let shape = arr.shape().to_vec();
    let data = float_values(x).ok_or_else(|| {
        fail(format!(
            "input: expected a float32 array [N, 3, H, W] in [0, 1], found dtype {}",
            dtype_name(arr)
        ))
    })?;
    if shape.len() != 4 {
        return Err(fail(format!(
            "input has shape {shape:?}, expected [N, 3, H, W]"
        )));
    }
    if shape.contains(&0) {
        return Err(fail(format!("input has shape {shape:?}: empty")));
    }
    Ok(Array::new(shape, data))
}

/// An output batch as a float32 numpy array of the same shape.
pub fn array_to_numpy(py: Python<'_>, a: Array) -> PyResult<Bound<'_, PyAny>> {
    let flat = numpy::PyArray1::from_vec(py, a.data);
    Ok(flat.reshape(a.shape)?.into_any())
}

/// A serializable value (a report, stats) as plain Python objects: the same document the CLI
/// writes as JSON, read back by Python's `json` (non-finite numbers are `None`, as in the file).
pub fn to_python<'py>(
    py: Python<'py>,
    value: &impl serde::Serialize,
) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value)
        .map_err(|e| fail(format!("cannot serialize the result: {e}")))?;
    py.import("json")?.call_method1("loads", (text,))
}
