//! spikerc-compiler: the model-agnostic core of spikerc.
//!
//! * [`ir`] — the typed spike-event IR: a dataflow graph whose every value carries a
//!   [`ir::Fact`] (symbolic shape, element type, value kind) and whose every node keeps the
//!   PyTorch module path it came from.
//! * [`verify`] — the verifier; back ends only accept a [`verify::Verified`] graph.
//! * [`passes`] — BatchNorm folding, dead-node elimination, shape/kind inference, float16
//!   quantization, each a named unit run by [`passes::PassManager`].
//! * [`interp`] — the reference interpreter: the definition of what the IR means.
//! * [`winograd`] — the Winograd F(2x2, 3x3) transforms (arithmetic of real-valued 3x3 convs).
//! * [`artifact`] — the versioned, checksummed on-disk form of a compiled model.
//!
//! This crate depends on nothing else of spikerc: model families live in `spikerc-models`,
//! engines in `spikerc-runtime` and `spikerc-targets`.

pub mod artifact;
pub mod interp;
pub mod ir;
pub mod passes;
pub mod tensor;
pub mod verify;
pub mod winograd;

pub use artifact::{Artifact, ArtifactError, ArtifactMeta};
pub use ir::{DType, Dim, Fact, Graph, IrError, Node, NodeId, Op, Shape, ValueKind};
pub use tensor::Tensor;
pub use verify::{verify, Verified, VerifyError};

#[cfg(test)]
mod test_graphs;
