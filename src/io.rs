//! File input/output for the CLI: images (PNG 8/16-bit, JPEG, TIFF, BMP, WebP), tensor
//! files, atomic writes. Every decoding failure names the file; all-or-nothing multi-file
//! outputs are in [`crate::outputs`].

use anyhow::{bail, Context};
use spikerc_compiler::interp::Array;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// failure never leaves a partial file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    Ok(spikerc_models::files::write_atomic(path, bytes)?)
}

pub use spikerc_models::input::{is_deep_image, is_input_file, is_tensor_file, IMAGE_EXTENSIONS};

/// Reads an input batch `[N, 3, H, W]`: a `.safetensors` file (tensor `input`, f32) or an
/// image; notes (grey or RGBA converted) go to stderr.
pub fn read_input(path: &Path) -> anyhow::Result<Array> {
    let (array, notes) = spikerc_models::input::read_input(path)?;
    for n in notes {
        eprintln!("note: {n}");
    }
    Ok(array)
}

/// Writes an output batch atomically: `.safetensors` (tensor `output`) or an 8-bit image.
pub fn write_output(path: &Path, out: &Array) -> anyhow::Result<()> {
    write_atomic(path, &encode_output(path, out, false)?)
}

/// Checks, before any work, that `path` is an output [`encode_output`] can write: a
/// `.safetensors` file or an image extension.
pub fn check_output_path(path: &Path) -> anyhow::Result<()> {
    if is_tensor_file(path) {
        return Ok(());
    }
    let ok = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
    if !ok {
        bail!(
            "{}: unknown output extension (use .safetensors or an image: {})",
            path.display(),
            IMAGE_EXTENSIONS.join(", ")
        );
    }
    Ok(())
}

/// Encodes an output batch: `.safetensors` (tensor `output`) or an image (batches of images
/// need a tensor file), 16 bits per channel when `deep` (and the format has it: PNG, TIFF).
pub fn encode_output(path: &Path, out: &Array, deep: bool) -> anyhow::Result<Vec<u8>> {
    if is_tensor_file(path) {
        let bytes: Vec<u8> = out.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(
            safetensors::Dtype::F32,
            out.shape.clone(),
            &bytes,
        )?;
        return Ok(safetensors::serialize([("output", view)], &None)?);
    }
    check_output_path(path)?;
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
    let format = image::ImageFormat::from_path(path)
        .with_context(|| format!("{}: unknown image extension", path.display()))?;
    let deep = deep && matches!(format, image::ImageFormat::Png | image::ImageFormat::Tiff);
    let value = |x: u32, y: u32, c: usize| out.data[c * h * w + y as usize * w + x as usize].clamp(0.0, 1.0);
    let dynamic = if deep {
        let mut img = image::ImageBuffer::<image::Rgb<u16>, Vec<u16>>::new(w as u32, h as u32);
        for (x, y, p) in img.enumerate_pixels_mut() {
            for c in 0..3 {
                p[c] = (value(x, y, c) * 65535.0).round() as u16;
            }
        }
        image::DynamicImage::ImageRgb16(img)
    } else {
        let mut img = image::RgbImage::new(w as u32, h as u32);
        for (x, y, p) in img.enumerate_pixels_mut() {
            for c in 0..3 {
                p[c] = (value(x, y, c) * 255.0).round() as u8;
            }
        }
        image::DynamicImage::ImageRgb8(img)
    };
    let mut buf = std::io::Cursor::new(Vec::new());
    dynamic
        .write_to(&mut buf, format)
        .map_err(|e| anyhow::anyhow!("{}: cannot encode the output image: {e}", path.display()))?;
    Ok(buf.into_inner())
}
