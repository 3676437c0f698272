//! The decoders every fuzz target drives, written once: `cargo fuzz` targets
//! (`fuzz/fuzz_targets/*.rs`, nightly + libFuzzer) and the stable replay test
//! (`tests/fuzz_replay.rs`, corpora plus generated mutations inside `cargo test`) both call
//! [`run`]. A decoder may reject its input with an error; it must never panic, abort or
//! allocate beyond what the input announces and holds.

use std::path::Path;

/// The fuzz targets, by name (= the file names under `fuzz/fuzz_targets/` and the corpus
/// folders under `fuzz/corpus/`).
pub const TARGETS: [&str; 7] = [
    "artifact",
    "safetensors",
    "pt_zip",
    "deploy_dir",
    "machine_toml",
    "meta_json",
    "image_decode",
];

/// Feeds `data` to the decoder of `target`.
pub fn run(target: &str, data: &[u8]) {
    match target {
        "artifact" => {
            if let Ok(a) = spikerc_compiler::Artifact::from_bytes(data, "fuzz.spk") {
                // A decoded artifact must be executable without panics.
                let _ = a.graph.to_text();
                let _ = spikerc_runtime::Program::new(&a.graph);
            }
        }
        "safetensors" => {
            if let Ok(c) = spikerc_models::Checkpoint::from_safetensors(data, "fuzz.safetensors") {
                let _ = spikerc_models::compile(
                    &c,
                    &spikerc_models::HyperParams::default(),
                    spikerc_compiler::passes::Precision::F16,
                    "fuzz",
                );
            }
        }
        "pt_zip" => {
            let _ = spikerc_models::Checkpoint::from_torch_zip(data, "fuzz.pt");
        }
        "deploy_dir" => deploy_dir(data),
        "machine_toml" => {
            let text = String::from_utf8_lossy(data);
            if let Ok(m) = spikerc_targets::Machine::from_toml(&text, "fuzz.toml") {
                let _ = m.serpentine();
            }
        }
        "meta_json" => {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
                if let Ok(hp) = spikerc_models::HyperParams::from_json(&v) {
                    let _ = hp.validate();
                }
            }
        }
        "image_decode" => {
            let _ = spikerc_models::input::decode_input(data, "fuzz.img", false);
        }
        other => panic!("unknown fuzz target `{other}`"),
    }
}

/// A deployment directory whose `manifest.json` is `data`, beside the blobs of a real
/// deployment (`fuzz/corpus/deploy_dir/` seeds are real manifests), loaded and, when it loads,
/// checked by its loader; the directory is a fresh temporary one.
fn deploy_dir(data: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let seed = if root.ends_with("fuzz") { root.join("deploy-blobs") } else { root.join("fuzz/deploy-blobs") };
    for f in ["weights.bin", "routes.bin", "model.spk"] {
        if let Ok(b) = std::fs::read(seed.join(f)) {
            let _ = std::fs::write(dir.path().join(f), b);
        }
    }
    let _ = std::fs::write(dir.path().join("manifest.json"), data);
    let _ = spikerc_targets::load_dir(dir.path());
}
