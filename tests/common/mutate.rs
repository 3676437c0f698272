//! Seeded byte-level mutations of a valid file, shared by the stable fuzz replay and the CLI
//! campaign: bit flips, truncations, smashed length fields, inserted junk, spliced chunks.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// One seeded mutation of `seed`.
pub fn mutate(seed: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut b = seed.to_vec();
    let rounds = rng.gen_range(1..=4);
    for _ in 0..rounds {
        let n = b.len().max(1);
        match rng.gen_range(0..7) {
            0 => {
                let i = rng.gen_range(0..n);
                if let Some(x) = b.get_mut(i) {
                    *x ^= 1 << rng.gen_range(0..8);
                }
            }
            1 => b.truncate(rng.gen_range(0..n)),
            2 => {
                // A length or count field smashed to an extreme value.
                let i = rng.gen_range(0..n);
                let v: u64 = [u64::MAX, u32::MAX as u64, 1 << 40, 0, 1 << 31, 0x7fff_ffff_ffff_ffff][rng.gen_range(0..6)];
                for (k, byte) in v.to_le_bytes().iter().enumerate().take(rng.gen_range(1..=8)) {
                    if let Some(x) = b.get_mut(i + k) {
                        *x = *byte;
                    }
                }
            }
            3 => {
                let i = rng.gen_range(0..n);
                let len = rng.gen_range(1..64);
                let junk: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
                let i = i.min(b.len());
                b.splice(i..i, junk);
            }
            4 if b.len() > 2 => {
                // Splice a chunk of the file onto another place (repeated records).
                let a = rng.gen_range(0..b.len());
                let l = rng.gen_range(1..=(b.len() - a).min(256));
                let chunk = b[a..a + l].to_vec();
                let at = rng.gen_range(0..b.len());
                b.splice(at..at, chunk);
            }
            5 => {
                let i = rng.gen_range(0..n);
                let len = rng.gen_range(1..32);
                for k in i..(i + len).min(b.len()) {
                    b[k] = [0u8, 0xff, b'9', b'{', b'"'][rng.gen_range(0..5)];
                }
            }
            _ => {
                let i = rng.gen_range(0..n);
                if i < b.len() {
                    b.remove(i);
                }
            }
        }
    }
    b
}

