//! Engine inputs from files: images (PNG 8/16-bit, JPEG, TIFF, BMP, WebP) and `.safetensors`
//! tensor files (tensor `input`, f32 `[N, 3, H, W]`), as an [`Array`] in [0, 1].
//!
//! Everything read here is untrusted: sizes are checked before anything is allocated for
//! them (an image's dimensions come from its header, before decoding), every failure is one
//! [`InputError`] naming the file, and nothing panics. The same decoder serves the CLI, the
//! Python package and the fuzz targets.

use spikerc_compiler::interp::Array;
use std::io::Cursor;
use std::path::Path;

/// An input file that cannot be used; the message names the file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// Image file extensions read and written (lowercase).
pub const IMAGE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "tif", "tiff", "bmp", "webp"];

/// Largest image accepted, in pixels (a decompression-bomb guard: 16k x 16k; larger inputs
/// are split by the user, or given as tiles).
pub const MAX_IMAGE_PIXELS: u64 = 1 << 28;

/// Whether `path` has the `.safetensors` extension.
pub fn is_tensor_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

/// Whether `p` names an input file by extension: an image or a `.safetensors` file.
pub fn is_input_file(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        let e = e.to_ascii_lowercase();
        e == "safetensors" || IMAGE_EXTENSIONS.contains(&e.as_str())
    })
}

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

/// Reads an input batch from a file (format by content: a safetensors header or an image).
/// Notes (e.g. a grey image converted to RGB) are returned beside the array.
pub fn read_input(path: &Path) -> Result<(Array, Vec<String>), InputError> {
    let name = path.display().to_string();
    if path.is_dir() {
        return Err(InputError(format!(
            "{name}: is a directory, expected an image or a .safetensors file"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| InputError(format!("{name}: cannot read: {e}")))?;
    decode_input(&bytes, &name, is_tensor_file(path))
}

/// Decodes an input batch from bytes; `name` is used in messages. `tensor_file` forces the
/// `.safetensors` reading (else it is sniffed from the bytes).
pub fn decode_input(
    bytes: &[u8],
    name: &str,
    tensor_file: bool,
) -> Result<(Array, Vec<String>), InputError> {
    let err = |m: String| InputError(format!("{name}: {m}"));
    if tensor_file || crate::checkpoint::sniff(bytes) == Some(crate::checkpoint::Format::SafeTensors) {
        return decode_tensor(bytes).map(|a| (a, vec![])).map_err(err);
    }
    let reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| err(format!("cannot read: {e}")))?;
    if reader.format().is_none() {
        return Err(err(
            "not an image spikerc reads (PNG, JPEG, TIFF, BMP, WebP) nor a .safetensors tensor file"
                .into(),
        ));
    }
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| err(format!("cannot decode image: {e}")))?;
    if u64::from(w) * u64::from(h) > MAX_IMAGE_PIXELS || w == 0 || h == 0 {
        return Err(err(format!(
            "image is {w}x{h}; spikerc reads images of 1 to {MAX_IMAGE_PIXELS} pixels"
        )));
    }
    let mut reader = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| err(format!("cannot read: {e}")))?;
    let mut limits = image::Limits::default();
    // Pixels are bounded above; the decoder's own buffer (at most 16-bit RGBA) is bounded
    // by that many pixels.
    limits.max_alloc = Some(MAX_IMAGE_PIXELS * 8);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| err(format!("cannot decode image: {e}")))?;
    let mut notes = vec![];
    let channels = img.color().channel_count();
    if channels != 3 {
        notes.push(format!(
            "{name}: image has {channels} channel(s) ({:?}); converted to RGB{}",
            img.color(),
            if img.color().has_alpha() { " (alpha dropped)" } else { "" }
        ));
    }
    let rgb = img.to_rgb32f();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let mut data = vec![0f32; 3 * h * w];
    for (x, y, p) in rgb.enumerate_pixels() {
        for c in 0..3 {
            data[c * h * w + y as usize * w + x as usize] = p[c];
        }
    }
    Ok((Array::new(vec![1, 3, h, w], data), notes))
}

/// The tensor `input` of a safetensors file.
fn decode_tensor(bytes: &[u8]) -> Result<Array, String> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| {
        format!(
            "not a readable safetensors file: {}",
            crate::checkpoint::safetensors_reason(&e, bytes.len())
        )
    })?;
    let t = st.tensor("input").map_err(|_| {
        let mut names: Vec<String> = st.names().into_iter().cloned().collect();
        names.sort();
        format!("no tensor named `input` (found: {})", names.join(", "))
    })?;
    if t.dtype() != safetensors::Dtype::F32 {
        return Err(format!("tensor `input` is {:?}, expected F32", t.dtype()));
    }
    if t.shape().len() != 4 || t.shape().contains(&0) {
        return Err(format!(
            "tensor `input` has shape {:?}, expected [N, 3, H, W] with every size at least 1",
            t.shape()
        ));
    }
    let data: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "tensor `input` element {i} is {}, inputs must be finite",
            data[i]
        ));
    }
    Ok(Array::new(t.shape().to_vec(), data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(img: image::DynamicImage) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        img.write_to(&mut buf, image::ImageFormat::Png).unwrap();
        buf.into_inner()
    }

    #[test]
    fn decodes_grey_and_sixteen_bit_images_exactly() {
        let grey = image::GrayImage::from_fn(5, 3, |x, y| image::Luma([(x * 50 + y) as u8]));
        let (a, notes) = decode_input(&png(grey.into()), "g.png", false).unwrap();
        assert_eq!(a.shape, vec![1, 3, 3, 5]);
        assert!((a.data[15 + 5 + 2] - 101.0 / 255.0).abs() < 1e-7, "green = grey: {}", a.data[22]);
        assert_eq!(notes.len(), 1);
        let deep = image::ImageBuffer::<image::Rgb<u16>, Vec<u16>>::from_fn(2, 2, |x, _| image::Rgb([x as u16 * 1000 + 1, 0, 65535]));
        let (a, _) = decode_input(&png(image::DynamicImage::ImageRgb16(deep)), "d.png", false).unwrap();
        assert!((a.data[1] - 1001.0 / 65535.0).abs() < 1e-7, "16-bit values are kept, not rounded to 8 bits: {}", a.data[1]);
    }

    #[test]
    fn refuses_oversized_headers_before_decoding() {
        // A PNG header announcing 40000 x 40000 pixels: refused from the header alone.
        let mut bytes = png(image::GrayImage::new(1, 1).into());
        bytes[16..20].copy_from_slice(&40000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&40000u32.to_be_bytes());
        let crc = crc_of(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        let e = decode_input(&bytes, "big.png", false).unwrap_err().0;
        assert!(e.starts_with("big.png: image is 40000x40000"), "{e}");
        let e = decode_input(b"hello", "x.bin", false).unwrap_err().0;
        assert!(e.contains("not an image spikerc reads"), "{e}");
    }

    /// PNG chunk CRC (the zlib CRC-32).
    fn crc_of(data: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
            }
        }
        !c
    }
}
