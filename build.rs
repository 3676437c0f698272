//! Build script of the `spikerc` binary: with feature `torch`, bakes the project-local
//! libtorch directory into the binary's rpath so `spikerc` runs without LD_LIBRARY_PATH.

fn main() {
    println!("cargo:rerun-if-env-changed=SPIKERC_TORCH_LIB");
    if std::env::var_os("CARGO_FEATURE_TORCH").is_some() {
        if let Some(dir) = std::env::var_os("SPIKERC_TORCH_LIB") {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.to_string_lossy());
        }
    }
}
