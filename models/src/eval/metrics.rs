//! Image-quality metrics on 0–255 RGB: PSNR and SSIM.
//!
//! Both take planar images (`[C, H, W]` row-major, values on the 0–255 scale, typically the
//! 8-bit quantised output against the 8-bit ground truth) and follow the definitions used by
//! the denoising literature's reference code (KAIR / Restormer `calculate_psnr`/`calculate_ssim`):
//!
//! * **PSNR** = `10 log10(255^2 / MSE)` over all channels and pixels (MSE in f64); identical
//!   images give `f64::INFINITY`.
//! * **SSIM** (Wang et al. 2004) per channel with an 11x11 Gaussian window, sigma 1.5 (weights
//!   normalised to sum 1), `C1 = (0.01*255)^2`, `C2 = (0.03*255)^2`, computed only where the
//!   window lies fully inside the image ("valid" filtering, i.e. a 5-pixel border is dropped,
//!   as OpenCV-based reference code does), averaged over those positions, then the mean over the
//!   channels. All arithmetic in f64. Agrees with scikit-image's `structural_similarity`
//!   (`gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255`) to 1e-9
//!   (tested).

/// Peak signal-to-noise ratio in dB between two same-size images on the 0–255 scale.
pub fn psnr(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "psnr: images of different sizes");
    let mse = mse(a, b);
    if mse == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

/// Mean squared error in f64.
pub fn mse(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().max(1) as f64;
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        / n
}

/// The normalised 1-D Gaussian of the SSIM window (11 taps, sigma 1.5); the 2-D window is its
/// outer product.
pub fn gaussian_window() -> [f64; 11] {
    let mut g = [0f64; 11];
    for (i, v) in g.iter_mut().enumerate() {
        let x = i as f64 - 5.0;
        *v = (-x * x / (2.0 * 1.5 * 1.5)).exp();
    }
    let s: f64 = g.iter().sum();
    g.iter_mut().for_each(|v| *v /= s);
    g
}

/// Structural similarity of two `[channels, h, w]` images on the 0–255 scale (mean over
/// channels of the per-channel mean SSIM). Returns `None` when a side is under 11 pixels.
pub fn ssim(a: &[f32], b: &[f32], channels: usize, h: usize, w: usize) -> Option<f64> {
    assert_eq!(a.len(), channels * h * w, "ssim: first image size");
    assert_eq!(b.len(), channels * h * w, "ssim: second image size");
    if h < 11 || w < 11 || channels == 0 {
        return None;
    }
    let total: f64 = (0..channels)
        .map(|c| {
            ssim_plane(
                &a[c * h * w..(c + 1) * h * w],
                &b[c * h * w..(c + 1) * h * w],
                h,
                w,
            )
        })
        .sum();
    Some(total / channels as f64)
}

/// Separable valid-mode Gaussian filter of one plane: `[h, w]` -> `[h-10, w-10]`.
fn filter_valid(x: &[f64], h: usize, w: usize, g: &[f64; 11]) -> Vec<f64> {
    let (oh, ow) = (h - 10, w - 10);
    let mut rows = vec![0f64; h * ow];
    for y in 0..h {
        for x0 in 0..ow {
            rows[y * ow + x0] = (0..11).map(|k| g[k] * x[y * w + x0 + k]).sum();
        }
    }
    let mut out = vec![0f64; oh * ow];
    for y0 in 0..oh {
        for x0 in 0..ow {
            out[y0 * ow + x0] = (0..11).map(|k| g[k] * rows[(y0 + k) * ow + x0]).sum();
        }
    }
    out
}

fn ssim_plane(a: &[f32], b: &[f32], h: usize, w: usize) -> f64 {
    const C1: f64 = (0.01 * 255.0) * (0.01 * 255.0);
    const C2: f64 = (0.03 * 255.0) * (0.03 * 255.0);
    let g = gaussian_window();
    let a: Vec<f64> = a.iter().map(|&v| v as f64).collect();
    let b: Vec<f64> = b.iter().map(|&v| v as f64).collect();
    let prod = |p: &[f64], q: &[f64]| p.iter().zip(q).map(|(x, y)| x * y).collect::<Vec<f64>>();
    let mu_a = filter_valid(&a, h, w, &g);
    let mu_b = filter_valid(&b, h, w, &g);
    let e_aa = filter_valid(&prod(&a, &a), h, w, &g);
    let e_bb = filter_valid(&prod(&b, &b), h, w, &g);
    let e_ab = filter_valid(&prod(&a, &b), h, w, &g);
    let n = mu_a.len();
    let mut sum = 0.0;
    for i in 0..n {
        let (ma, mb) = (mu_a[i], mu_b[i]);
        let (va, vb, cov) = (e_aa[i] - ma * ma, e_bb[i] - mb * mb, e_ab[i] - ma * mb);
        sum +=
            ((2.0 * ma * mb + C1) * (2.0 * cov + C2)) / ((ma * ma + mb * mb + C1) * (va + vb + C2));
    }
    sum / n as f64
}

/// Converts a `[0, 1]` float image to the 0–255 scale the way a saved 8-bit image would hold it:
/// clamp to `[0, 1]`, multiply by 255, round half away from zero.
pub fn quantize_u8(x: &[f32]) -> Vec<f32> {
    x.iter()
        .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psnr_of_known_arrays() {
        // Every pixel off by 1 -> MSE 1 -> 20 log10(255) = 48.1308 dB.
        let a = vec![100.0f32; 300];
        let b = vec![101.0f32; 300];
        assert!((psnr(&a, &b) - 20.0 * 255f64.log10()).abs() < 1e-12);
        assert!((psnr(&a, &b) - 48.130_803_608_679_1).abs() < 1e-9);
        // Half the pixels off by 10 -> MSE 50.
        let c: Vec<f32> = (0..300)
            .map(|i| if i % 2 == 0 { 110.0 } else { 100.0 })
            .collect();
        assert!((psnr(&a, &c) - 10.0 * (65025.0f64 / 50.0).log10()).abs() < 1e-12);
        assert_eq!(psnr(&a, &a), f64::INFINITY);
    }

    #[test]
    fn ssim_identical_is_one_and_degrades() {
        let (c, h, w) = (3, 24, 20);
        let a: Vec<f32> = (0..c * h * w).map(|i| (i * 37 % 251) as f32).collect();
        assert!((ssim(&a, &a, c, h, w).unwrap() - 1.0).abs() < 1e-12);
        let b: Vec<f32> = a
            .iter()
            .enumerate()
            .map(|(i, &v)| (v + if i % 3 == 0 { 20.0 } else { -7.0 }).clamp(0.0, 255.0))
            .collect();
        let s = ssim(&a, &b, c, h, w).unwrap();
        assert!(s < 0.99 && s > 0.0, "ssim {s}");
        // Symmetric.
        assert!((s - ssim(&b, &a, c, h, w).unwrap()).abs() < 1e-12);
        assert_eq!(ssim(&a[..3 * 10 * 10], &a[..3 * 10 * 10], 3, 10, 10), None);
    }

    #[test]
    fn matches_scikit_image() {
        // Reference: scikit-image 0.26 `structural_similarity(A, B, gaussian_weights=True,
        // sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=0)` and
        // `peak_signal_noise_ratio(A, B, data_range=255)` on these exact arrays.
        let (c, h, w) = (3, 24, 20);
        let a: Vec<f32> = (0..c * h * w).map(|i| (i * 37 % 251) as f32).collect();
        let b: Vec<f32> = a
            .iter()
            .enumerate()
            .map(|(i, &v)| (v + if i % 3 == 0 { 20.0 } else { -7.0 }).clamp(0.0, 255.0))
            .collect();
        let s = ssim(&a, &b, c, h, w).unwrap();
        assert!((s - 0.982_662_582_200_854_1).abs() < 1e-9, "{s}");
        assert!((psnr(&a, &b) - 26.079_117_232_920_353).abs() < 1e-9);
    }

    #[test]
    fn ssim_of_constant_images_matches_the_closed_form() {
        // Constant images: variances and covariance vanish, so SSIM = (2ab + C1) / (a^2 + b^2 + C1).
        let (h, w) = (16, 16);
        let a = vec![50.0f32; h * w];
        let b = vec![60.0f32; h * w];
        let c1 = (0.01f64 * 255.0).powi(2);
        let want = (2.0 * 50.0 * 60.0 + c1) / (50.0f64 * 50.0 + 60.0 * 60.0 + c1);
        assert!((ssim(&a, &b, 1, h, w).unwrap() - want).abs() < 1e-9);
    }

    #[test]
    fn gaussian_window_is_normalised_and_symmetric() {
        let g = gaussian_window();
        assert!((g.iter().sum::<f64>() - 1.0).abs() < 1e-15);
        for k in 0..5 {
            assert_eq!(g[k], g[10 - k]);
        }
        assert!((g[5] - 0.266_011_724_861_794_4).abs() < 1e-9, "{}", g[5]);
    }

    #[test]
    fn quantize_clamps_and_rounds() {
        assert_eq!(
            quantize_u8(&[-0.2, 0.0, 0.5, 1.0, 1.7, 0.2]),
            vec![0.0, 0.0, 128.0, 255.0, 255.0, 51.0]
        );
    }
}
