//! Test helper (included with `#[path]`): copy a safetensors checkpoint with one tensor changed.

use std::path::Path;

/// Copies a safetensors checkpoint with `f(values)` applied to the tensor `key`.
pub fn copy_with_change(src: &Path, dst: &Path, key: &str, f: impl Fn(&mut [f32])) {
    let bytes = std::fs::read(src).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut owned: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut found = false;
    for (name, view) in st.tensors() {
        let mut data = view.data().to_vec();
        if name == key {
            let mut v: Vec<f32> = data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            f(&mut v);
            data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            found = true;
        }
        owned.push((name, view.dtype(), view.shape().to_vec(), data));
    }
    assert!(found, "{key} not in {}", src.display());
    let views: Vec<_> = owned
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(dst, safetensors::serialize(views, &None).unwrap()).unwrap();
}
