//! Inputs shipped with spikerc: the built-in Kodak crop that `verify`, `golden` and `demo`
//! use when no input is given.

use spikerc_compiler::interp::Array;

/// The built-in test image: a 128x96 crop of Kodak `kodim23` (parrots), shipped in `assets/`.
pub const BUILTIN_IMAGE: &[u8] = include_bytes!("../../assets/kodim23-crop-128x96.png");
/// How reports name the built-in image.
pub const BUILTIN_NAME: &str = "built-in kodim23 crop 128x96";

/// Decodes the built-in test image to `[1, 3, H, W]` in [0, 1].
pub fn builtin_image() -> anyhow::Result<Array> {
    let img = image::load_from_memory(BUILTIN_IMAGE)?.to_rgb32f();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut data = vec![0f32; 3 * h * w];
    for (x, y, p) in img.enumerate_pixels() {
        for c in 0..3 {
            data[c * h * w + y as usize * w + x as usize] = p[c];
        }
    }
    Ok(Array::new(vec![1, 3, h, w], data))
}
