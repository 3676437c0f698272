//! Import errors: one variant per kind of bad input, each naming what and where.

fn fmt_shape(s: &[usize]) -> String {
    format!("{s:?}")
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: cannot read")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a readable checkpoint ({format}): {reason}")]
    Corrupt {
        path: String,
        format: &'static str,
        reason: String,
    },
    #[error(
        "{path}: unrecognised file format (expected .safetensors or a PyTorch torch.save .pt zip)"
    )]
    UnknownFormat { path: String },
    #[error("missing key `{key}` (expected shape {})", fmt_shape(.expected))]
    MissingKey { key: String, expected: Vec<usize> },
    #[error("unexpected key `{key}` with shape {} (not part of a SpikerIR with {arch})", fmt_shape(.shape))]
    UnexpectedKey {
        key: String,
        shape: Vec<usize>,
        arch: String,
    },
    #[error("key `{key}`: expected shape {}, found {}{note}", fmt_shape(.expected), fmt_shape(.found))]
    WrongShape {
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
        note: String,
    },
    #[error(
        "key `{key}`: expected a floating-point tensor (f32, f16, bf16 or f64), found {found}"
    )]
    WrongDType { key: String, found: String },
    #[error("key `{key}`: element {index} is {value}, weights must be finite")]
    NonFinite {
        key: String,
        index: usize,
        value: f32,
    },
    #[error("key `{key}`: element {index} is {value}: {reason}")]
    InvalidValue {
        key: String,
        index: usize,
        value: f32,
        reason: &'static str,
    },
    #[error("hyperparameter `{name}` = {value}: {reason}")]
    BadHyperParam {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error("{path}: config: {reason}")]
    Config { path: String, reason: String },
    #[error("checkpoint does not describe a SpikerIR: {0}")]
    Architecture(String),
    #[error("internal error while building the IR")]
    Ir(#[from] spikerc_compiler::IrError),
}
