//! The SpikerIR family (ESDNet generalised to L levels), as defined in
//! `shared/docs/spikerir-model.md`.
//!
//! [`Architecture::infer`] reads dim, levels, blocks per level and channels from a checkpoint's
//! keys and shapes; [`import`] checks every key against the architecture and builds the IR.

mod build;
mod random;

pub use build::{expected_tensors, import, Imported};
pub use random::random_checkpoint;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::{Checkpoint, ImportError};

/// A SpikerIR architecture.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Architecture {
    pub dim: usize,
    pub levels: usize,
    pub en_blocks: Vec<usize>,
    pub de_blocks: Vec<usize>,
    pub in_channels: usize,
    pub out_channels: usize,
}

impl Architecture {
    /// Width of level `l` (1-based).
    pub fn width(&self, l: usize) -> usize {
        self.dim << (l - 1)
    }

    pub fn summary(&self) -> String {
        format!(
            "spikerir L={} dim={} en={:?} de={:?} in={} out={}",
            self.levels,
            self.dim,
            self.en_blocks,
            self.de_blocks,
            self.in_channels,
            self.out_channels
        )
    }

    /// Infers the architecture from key names and the stem/head shapes.
    pub fn infer(ckpt: &Checkpoint) -> Result<Architecture, ImportError> {
        let stem = match ckpt.tensors.get("patch_embed.proj.weight") {
            Some(t) => t,
            None if ckpt.tensors.is_empty() => return Err(ImportError::Architecture("the checkpoint holds no tensors".into())),
            None => {
                return Err(ImportError::Architecture(
                    "no `patch_embed.proj.weight` (a SpikerIR state_dict starts with a patch_embed.proj conv [dim, 3, 3, 3])".into(),
                ))
            }
        };
        if stem.shape.len() != 4 || stem.shape[0] == 0 || stem.shape[1] == 0 {
            return Err(ImportError::WrongShape {
                key: "patch_embed.proj.weight".into(),
                expected: vec![0, 3, 3, 3],
                found: stem.shape.clone(),
                note: " (expected [dim, in_channels, 3, 3])".into(),
            });
        }
        let (dim, in_channels) = (stem.shape[0], stem.shape[1]);
        let out_channels = match ckpt.tensors.get("output.0.weight") {
            Some(t) if !t.shape.is_empty() => t.shape[0],
            _ => in_channels,
        };
        // Levels: the deepest level any level-indexed module mentions.
        let mut levels = 1;
        let mut en: BTreeMap<usize, usize> = BTreeMap::new();
        let mut de: BTreeMap<usize, usize> = BTreeMap::new();
        for key in ckpt.tensors.keys() {
            let first = key.split('.').next().unwrap_or("");
            if let Some(l) = level_of(first) {
                levels = levels.max(l);
            }
            for (prefix, map) in [("encoder_level", &mut en), ("decoder_level", &mut de)] {
                if let Some(rest) = first.strip_prefix(prefix) {
                    if let (Ok(l), Some(Ok(i))) = (
                        rest.parse::<usize>(),
                        key.split('.').nth(1).map(str::parse::<usize>),
                    ) {
                        let e = map.entry(l).or_insert(0);
                        *e = (*e).max(i + 1);
                    }
                }
            }
        }
        const MAX_LEVELS: usize = 12;
        if levels > MAX_LEVELS {
            return Err(ImportError::Architecture(format!(
                "{levels} levels found, at most {MAX_LEVELS} are supported"
            )));
        }
        let en_blocks = (1..=levels)
            .map(|l| en.get(&l).copied().unwrap_or(0))
            .collect();
        let de_blocks = (1..=levels)
            .map(|l| de.get(&l).copied().unwrap_or(0))
            .collect();
        Ok(Architecture {
            dim,
            levels,
            en_blocks,
            de_blocks,
            in_channels,
            out_channels,
        })
    }
}

/// The level a top-level module name refers to (its deeper level for down/up modules).
fn level_of(first: &str) -> Option<usize> {
    for prefix in ["encoder_level", "decoder_level", "reduce_chan_level"] {
        if let Some(rest) = first.strip_prefix(prefix) {
            return rest.parse().ok();
        }
    }
    for prefix in ["down", "up"] {
        if let Some(rest) = first.strip_prefix(prefix) {
            let mut parts = rest.split('_').map(str::parse::<usize>);
            if let (Some(Ok(a)), Some(Ok(b))) = (parts.next(), parts.next()) {
                return Some(a.max(b));
            }
        }
    }
    None
}
