//! Deterministic synthesis of noisy inputs for denoising.
//!
//! Additive white Gaussian noise of standard deviation `sigma / 255` on `[0, 1]` images (sigma
//! on the 0–255 scale, as the published tables state it). The noisy image is neither clipped nor
//! quantised (the convention of the Restormer / KAIR test scripts). Noise comes from a ChaCha8
//! stream seeded per image from a base seed and the image's file name, so an image gets the same
//! noise whatever else is evaluated with it (`--limit`, order) and on every machine.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// FNV-1a 64-bit hash (stable across Rust versions, unlike `DefaultHasher`).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The seed of the noise of image `name` under base seed `seed`.
pub fn image_seed(seed: u64, name: &str) -> u64 {
    fnv1a(name.as_bytes()) ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Returns `clean + N(0, (sigma/255)^2)` element-wise, from a generator seeded with `seed`.
pub fn add_gaussian(clean: &[f32], sigma: f32, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    add_gaussian_with(clean, sigma, &mut rng)
}

/// Same as [`add_gaussian`] with a caller-owned generator (training draws from one stream).
pub fn add_gaussian_with(clean: &[f32], sigma: f32, rng: &mut impl rand::Rng) -> Vec<f32> {
    let s = sigma / 255.0;
    clean
        .iter()
        .map(|&v| {
            let z: f32 = StandardNormal.sample(rng);
            v + s * z
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_noise_other_seed_other_noise() {
        let clean = vec![0.5f32; 10_000];
        let a = add_gaussian(&clean, 25.0, 7);
        assert_eq!(a, add_gaussian(&clean, 25.0, 7));
        assert_ne!(a, add_gaussian(&clean, 25.0, 8));
        assert_ne!(image_seed(0, "a.png"), image_seed(0, "b.png"));
        assert_ne!(image_seed(0, "a.png"), image_seed(1, "a.png"));
    }

    #[test]
    fn noise_has_the_requested_standard_deviation() {
        let clean = vec![0.5f32; 200_000];
        let noisy = add_gaussian(&clean, 25.0, 1);
        let d: Vec<f64> = noisy.iter().map(|&v| (v as f64 - 0.5) * 255.0).collect();
        let mean = d.iter().sum::<f64>() / d.len() as f64;
        let sd = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / d.len() as f64).sqrt();
        assert!(mean.abs() < 0.2, "mean {mean}");
        assert!((sd - 25.0).abs() < 0.2, "sd {sd}");
    }

    #[test]
    fn fnv_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
