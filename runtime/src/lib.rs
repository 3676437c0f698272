//! spikerc-runtime: the event-driven CPU engine for compiled spikerc artifacts.
//!
//! [`Program::new`] lowers a [`Verified`] graph once into a schedule of kernels (topological
//! order, weights re-laid for the kernels, dead values freed as early as possible, a few
//! bit-exact fusions — see `ARCHITECTURE.md`); [`Program::run`] executes it layer by layer over
//! all time steps, reusing buffers ([`buffers`]):
//!
//! * convolutions on spikes take the **AC path** ([`gather`]): the spikes become per-pixel
//!   channel bitmaps and every output adds the weight vectors of its active inputs (additions
//!   only, work proportional to the spikes);
//! * convolutions on real values take the **MAC path**: a dense, vectorised kernel, or
//!   Winograd F(2x2, 3x3) ([`winograd`]) where the compiler chose it;
//! * LIF, BatchNorm, attention primitives, upsampling and the refinement block run as the IR
//!   defines them ([`ops`]).
//!
//! Arithmetic follows the interpreter's contract (`ARCHITECTURE.md`), so f32 artifacts give
//! the interpreter's bits, f16 artifacts use the exact fixed-point spike accumulation, and the
//! output is bit-identical for every thread count. Every run also returns exact operation
//! counts per source module ([`OpCounts`]), which the accelerator simulator consumes.
//!
//! [`tile`] runs images of any size: reflect padding to the model's divisor and overlapping
//! tiles with bounded peak memory.

// Kernels take geometry, weights, input, rows and output explicitly, and index several
// fixed-size lane arrays in lockstep; these two lints would only obscure that.
#![allow(clippy::too_many_arguments, clippy::needless_range_loop)]

pub mod buffers;
pub mod conv;
pub mod disjoint;
pub mod gather;
pub mod host;
mod memory;
pub mod ops;
mod program;
pub mod simd;
pub mod tile;
pub mod winograd;

pub use program::{gib, max_threads, threads_used, BnStats, NodeTime, OpCounts, Program, RunOptions, RunResult, RuntimeError};
pub use simd::{Isa, Level};

pub use spikerc_compiler::interp::Array;
pub use spikerc_compiler::{NodeId, Verified};

/// A raw pointer that rayon tasks share to write provably disjoint parts of one buffer.
#[derive(Clone, Copy)]
pub(crate) struct SyncPtr(pub *mut f32);
// SAFETY: only used by kernels whose tasks write disjoint index ranges (see each use).
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}
