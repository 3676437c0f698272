//! Stable-toolchain fuzzing inside `cargo test`: every decoder of `fuzz/harness.rs` (the same
//! code the `cargo fuzz` targets run) gets its seed corpus `fuzz/corpus/<target>/`, a bounded
//! number of seeded byte-level mutations of each seed (bit flips, truncations, smashed length
//! fields, spliced chunks) and, for the text formats, structure-aware inputs (known keys with
//! values of every wrong type and extreme size). A panic anywhere fails the test, naming the
//! target, the seed and the mutation.

#[path = "../fuzz/harness.rs"]
mod harness;
#[path = "common/mutate.rs"]
mod mutate;

use mutate::mutate;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

/// Mutations per seed file (bounded so the replay stays a few seconds per target).
const MUTATIONS: usize = 96;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files.into_iter().map(|p| { let b = std::fs::read(&p).unwrap(); (p, b) }).collect()
}

fn replay(target: &str, extra: Vec<Vec<u8>>) -> usize {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed ^ target.len() as u64);
    let mut count = 0;
    for (path, seed) in corpus(target) {
        harness::run(target, &seed);
        count += 1;
        for m in 0..MUTATIONS {
            let input = mutate(&seed, &mut rng);
            let r = std::panic::catch_unwind(|| harness::run(target, &input));
            assert!(r.is_ok(), "{target}: mutation {m} of {} panicked", path.display());
            count += 1;
        }
    }
    for (i, input) in extra.iter().enumerate() {
        let r = std::panic::catch_unwind(|| harness::run(target, input));
        assert!(r.is_ok(), "{target}: structured input {i} panicked: {}", String::from_utf8_lossy(input));
        count += 1;
    }
    count
}

/// Values of every JSON type, including extremes, as text.
const JSON_VALUES: [&str; 16] = [
    "null", "true", "-1", "0", "1", "3.5", "1e308", "-1e308", "18446744073709551615", "\"x\"", "[]", "[1, -2, 1e9]", "{}",
    "{\"reduction_t\": \"x\"}", "{\"reduction_t\": 0, \"reduction_c\": 1e30}", "[[[]]]",
];

fn meta_inputs() -> Vec<Vec<u8>> {
    let keys = ["time_steps", "v_threshold", "tau", "decay_input", "v_reset", "mda", "frb_reduction", "dim", "levels", "en_blocks", "de_blocks"];
    let mut out = vec![];
    for k in keys {
        for v in JSON_VALUES {
            out.push(format!("{{\"{k}\": {v}}}").into_bytes());
        }
    }
    out.push(b"[1, 2]".to_vec());
    out.push(b"\"meta\"".to_vec());
    out
}

/// Every numeric value of each seed machine replaced, one at a time, by an extreme.
fn machine_inputs() -> Vec<Vec<u8>> {
    let extremes = ["0", "-1", "1e308", "nan", "inf", "18446744073709551615", "100000", "\"x\"", "[]", "0.0000001"];
    let mut out = vec![];
    for (_, seed) in corpus("machine_toml") {
        let text = String::from_utf8_lossy(&seed).into_owned();
        for (ln, line) in text.lines().enumerate() {
            let Some((key, value)) = line.split_once('=') else { continue };
            let v = value.split('#').next().unwrap_or("").trim();
            if v.is_empty() || !(v.starts_with(|c: char| c.is_ascii_digit() || c == '-')) {
                continue;
            }
            for e in extremes {
                let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
                lines[ln] = format!("{key}= {e}");
                out.push(lines.join("\n").into_bytes());
            }
        }
    }
    out
}

#[test]
fn every_decoder_survives_its_corpus_and_mutations() {
    let mut total = 0;
    for target in harness::TARGETS {
        let extra = match target {
            "meta_json" => meta_inputs(),
            "machine_toml" => machine_inputs(),
            _ => vec![],
        };
        let n = replay(target, extra);
        eprintln!("fuzz replay: {target}: {n} inputs");
        total += n;
    }
    assert!(total >= 2000, "only {total} inputs replayed");
}
