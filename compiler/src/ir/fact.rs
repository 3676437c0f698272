//! Facts: what is known about every value flowing along an edge of the IR.
//!
//! Shapes are symbolic in the batch size `N` and the image size `H x W`, so one compiled
//! artifact runs on any image whose sides divide by [`crate::Graph::spatial_divisor`].
//! Time-carrying values are rank 5 `[T, N, C, H, W]`; values without a time axis are
//! rank 4 `[N, C, H, W]`. Reductions keep their axes (size 1).

use serde::{Deserialize, Serialize};
use std::fmt;

/// One dimension of a symbolic shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dim {
    /// A size known at compile time (time steps, channels, pooled axes).
    Fixed(usize),
    /// The batch size `N`.
    Batch,
    /// The image height divided by `2^k`.
    Height(u8),
    /// The image width divided by `2^k`.
    Width(u8),
}

impl Dim {
    /// The concrete size for an input of batch `n` and image `h x w`, or `None` when the image
    /// side does not divide by `2^k`.
    pub fn resolve(self, n: usize, h: usize, w: usize) -> Option<usize> {
        match self {
            Dim::Fixed(v) => Some(v),
            Dim::Batch => Some(n),
            Dim::Height(k) => exact_shift(h, k),
            Dim::Width(k) => exact_shift(w, k),
        }
    }

    pub fn fixed(self) -> Option<usize> {
        match self {
            Dim::Fixed(v) => Some(v),
            _ => None,
        }
    }
}

fn exact_shift(v: usize, k: u8) -> Option<usize> {
    let d = 1usize.checked_shl(k as u32)?;
    v.is_multiple_of(d).then_some(v / d)
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Fixed(v) => write!(f, "{v}"),
            Dim::Batch => write!(f, "N"),
            Dim::Height(0) => write!(f, "H"),
            Dim::Width(0) => write!(f, "W"),
            Dim::Height(k) | Dim::Width(k) => {
                let axis = if matches!(self, Dim::Height(_)) { "H" } else { "W" };
                match 1u64.checked_shl(u32::from(*k)) {
                    Some(d) => write!(f, "{axis}/{d}"),
                    None => write!(f, "{axis}/2^{k}"),
                }
            }
        }
    }
}

/// A symbolic shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Concrete sizes for a batch of `n` images of `h x w`.
    pub fn resolve(&self, n: usize, h: usize, w: usize) -> Option<Vec<usize>> {
        self.0.iter().map(|d| d.resolve(n, h, w)).collect()
    }

    /// The largest `k` of any `H/2^k` or `W/2^k` dimension.
    pub fn max_shift(&self) -> u8 {
        self.0
            .iter()
            .map(|d| match d {
                Dim::Height(k) | Dim::Width(k) => *k,
                _ => 0,
            })
            .max()
            .unwrap_or(0)
    }

    /// Channels (axis 2 of rank-5, axis 1 of rank-4 shapes), when fixed.
    pub fn channels(&self) -> Option<usize> {
        match self.rank() {
            5 => self.0[2].fixed(),
            4 => self.0[1].fixed(),
            _ => None,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

/// What the values of an edge are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ValueKind {
    /// Binary events, one plane per time step (rank 5). Produced only by LIF neurons.
    Spikes,
    /// Real values per time step (rank 5).
    RealSeq,
    /// Real values without a time axis (rank 4).
    Real,
}

impl ValueKind {
    pub fn has_time(self) -> bool {
        !matches!(self, ValueKind::Real)
    }
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValueKind::Spikes => "spikes",
            ValueKind::RealSeq => "real_t",
            ValueKind::Real => "real",
        })
    }
}

/// Element type of a stored value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DType {
    F32,
    F16,
}

impl DType {
    pub fn size_of(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
        })
    }
}

/// The fact carried by an edge: kind, element type and symbolic shape of the value.
///
/// Activations are f32 in every artifact today (f16 artifacts store parameters in f16, see
/// `ARCHITECTURE.md`); spikes are binary whatever their element type says.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fact {
    pub kind: ValueKind,
    pub dtype: DType,
    pub shape: Shape,
}

impl Fact {
    pub fn new(kind: ValueKind, shape: Vec<Dim>) -> Fact {
        Fact {
            kind,
            dtype: DType::F32,
            shape: Shape(shape),
        }
    }
}

impl fmt::Display for Fact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}<{}>{}", self.kind, self.dtype, self.shape)
    }
}
