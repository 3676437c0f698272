//! File input/output for the CLI: images, tensor files, atomic writes.

use anyhow::{bail, Context};
use spikerc_compiler::interp::Array;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// failure never leaves a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().context("output path has no file name")?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(())
}

fn is_tensor_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

/// Reads an input batch `[N, 3, H, W]`: a `.safetensors` file (tensor `input`, f32) or an image.
pub fn read_input(path: &Path) -> anyhow::Result<Array> {
    if is_tensor_file(path) {
        let bytes =
            std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
            anyhow::anyhow!("{}: not a readable safetensors file: {e}", path.display())
        })?;
        let t = st.tensor("input").map_err(|_| {
            anyhow::anyhow!(
                "{}: no tensor named `input` (found: {})",
                path.display(),
                st.names()
                    .into_iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
        if t.dtype() != safetensors::Dtype::F32 {
            bail!(
                "{}: tensor `input` is {:?}, expected F32",
                path.display(),
                t.dtype()
            );
        }
        if t.shape().len() != 4 {
            bail!(
                "{}: tensor `input` has shape {:?}, expected [N, 3, H, W]",
                path.display(),
                t.shape()
            );
        }
        let data = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        return Ok(Array::new(t.shape().to_vec(), data));
    }
    let img = image::ImageReader::open(path)
        .with_context(|| format!("{}: cannot open", path.display()))?
        .with_guessed_format()?
        .decode()
        .map_err(|e| anyhow::anyhow!("{}: cannot decode image: {e}", path.display()))?;
    let channels = img.color().channel_count();
    if channels != 3 {
        // Issue 3: grey is replicated to RGB, alpha is dropped (not composited); say so once.
        eprintln!(
            "note: {}: image has {channels} channel(s) ({:?}); converted to RGB{}",
            path.display(),
            img.color(),
            if img.color().has_alpha() { " (alpha dropped)" } else { "" }
        );
    }
    let rgb = img.to_rgb32f();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let mut data = vec![0f32; 3 * h * w];
    for (x, y, p) in rgb.enumerate_pixels() {
        for c in 0..3 {
            data[c * h * w + y as usize * w + x as usize] = p[c];
        }
    }
    Ok(Array::new(vec![1, 3, h, w], data))
}

/// Writes an output batch: `.safetensors` (tensor `output`) or an image (first of the batch
/// unless N = 1 is required; batches of images need a tensor file).
pub fn write_output(path: &Path, out: &Array) -> anyhow::Result<()> {
    if is_tensor_file(path) {
        let bytes: Vec<u8> = out.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(
            safetensors::Dtype::F32,
            out.shape.clone(),
            &bytes,
        )?;
        let st = safetensors::serialize([("output", view)], &None)?;
        return write_atomic(path, &st);
    }
    if out.shape.len() != 4 || out.shape[1] != 3 {
        bail!("output has shape {:?}; images need [1, 3, H, W]", out.shape);
    }
    if out.shape[0] != 1 {
        bail!(
            "output is a batch of {} images; write it to a .safetensors file",
            out.shape[0]
        );
    }
    let (h, w) = (out.shape[2], out.shape[3]);
    let mut img = image::RgbImage::new(w as u32, h as u32);
    for (x, y, p) in img.enumerate_pixels_mut() {
        for c in 0..3 {
            let v = out.data[c * h * w + y as usize * w + x as usize];
            p[c] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
    let format = image::ImageFormat::from_path(path)
        .with_context(|| format!("{}: unknown image extension", path.display()))?;
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, format)?;
    write_atomic(path, buf.get_ref())
}
