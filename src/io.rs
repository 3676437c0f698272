//! File input/output for the CLI: images (PNG 8/16-bit, JPEG, TIFF, BMP, WebP), tensor
//! files, atomic writes. Every decoding failure names the file; all-or-nothing multi-file
//! outputs are in [`crate::outputs`].

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

/// Image file extensions read and written (lowercase).
pub const IMAGE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "tif", "tiff", "bmp", "webp"];

/// Whether `p` names an input `run DIR` / `eval` read: an image or a `.safetensors` file.
pub fn is_input_file(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        let e = e.to_ascii_lowercase();
        e == "safetensors" || IMAGE_EXTENSIONS.contains(&e.as_str())
    })
}

/// Largest image accepted, in pixels (a decompression bomb guard; 32k x 32k).
const MAX_IMAGE_PIXELS: u64 = 1 << 30;

/// Whether the image at `path` stores more than 8 bits per channel (16-bit PNG/TIFF), so an
/// output written for it keeps 16 bits. `false` for tensors and unreadable files.
pub fn is_deep_image(path: &Path) -> bool {
    if is_tensor_file(path) {
        return false;
    }
    image::ImageReader::open(path)
        .ok()
        .and_then(|r| r.with_guessed_format().ok())
        .and_then(|r| r.into_decoder().ok())
        .is_some_and(|d| {
            use image::ImageDecoder;
            d.color_type().bytes_per_pixel() / d.color_type().channel_count() > 1
        })
}

/// Reads an input batch `[N, 3, H, W]`: a `.safetensors` file (tensor `input`, f32) or an image.
pub fn read_input(path: &Path) -> anyhow::Result<Array> {
    if path.is_dir() {
        bail!("{}: is a directory, expected an image or a .safetensors file", path.display());
    }
    if is_tensor_file(path) {
        let bytes =
            std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "{}: not a readable safetensors file: {}",
                path.display(),
                spikerc_models::checkpoint::safetensors_reason(&e, bytes.len())
            )
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
        if t.shape().len() != 4 || t.shape().contains(&0) {
            bail!(
                "{}: tensor `input` has shape {:?}, expected [N, 3, H, W] with every size at least 1",
                path.display(),
                t.shape()
            );
        }
        let data: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            bail!("{}: tensor `input` element {i} is {}, inputs must be finite", path.display(), data[i]);
        }
        return Ok(Array::new(t.shape().to_vec(), data));
    }
    let reader = image::ImageReader::open(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot open: {e}", path.display()))?
        .with_guessed_format()
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    if reader.format().is_none() {
        bail!(
            "{}: not an image spikerc reads (PNG, JPEG, TIFF, BMP, WebP) nor a .safetensors tensor file",
            path.display()
        );
    }
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| anyhow::anyhow!("{}: cannot decode image: {e}", path.display()))?;
    if u64::from(w) * u64::from(h) > MAX_IMAGE_PIXELS || w == 0 || h == 0 {
        bail!(
            "{}: image is {w}x{h}; spikerc reads images of 1 to {MAX_IMAGE_PIXELS} pixels",
            path.display()
        );
    }
    let mut reader = image::ImageReader::open(path)
        .map_err(|e| anyhow::anyhow!("{}: cannot open: {e}", path.display()))?
        .with_guessed_format()
        .map_err(|e| anyhow::anyhow!("{}: cannot read: {e}", path.display()))?;
    reader.no_limits();
    let img = reader
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
