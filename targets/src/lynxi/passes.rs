//! How many times a full-T layer reads its buffered input (its **passes**).
//!
//! A layer that needs all T of its input at once (the attention, the mean over T, the
//! refinement's pooling) runs over a buffered `[T, C, H, W]` tensor, and the reads of that
//! buffer are most of a streaming schedule's DRAM traffic. Its reductions form a chain
//! (the attention's channel statistics are taken over the time-gated tensor, the spatial
//! ones over the channel-gated one), so each needs the previous one's result. Where each
//! reduction runs:
//!
//! * **on the write stream** — a reduction over the spatial axes whose input is the layer's
//!   own (external) input: the producer cores accumulate it while they write the tensor
//!   step by step (the attention's time statistics, the refinement's global pool), so it
//!   costs no read;
//! * **in the apply band** — a per-pixel reduction (its axes keep H and W: the attention's
//!   statistics over T x C, the mean over T): the apply pass reads the buffer in row
//!   bands of all T x C, so it reduces each band before applying it. This needs a line
//!   buffer of `line_rows(halo)` rows x all T x C in state SRAM; when that does not fit,
//!   the reduction becomes a pass of its own;
//! * **its own pass** — every other distinct set of reduced axes (a global reduction of a
//!   value computed inside the layer: the attention's channel statistics);
//! * the **apply pass** — the layer's elementwise work and its output stream.
//!
//! `passes = separate passes + apply pass` (at least 1). Layer-serial keeps the naive
//! count, one pass per distinct reduction set plus the apply pass: there each layer runs
//! alone, so nothing is fused into its producer's writes.

/// One reduction of a layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Reduction {
    /// Reduced axes, of an input of rank `rank`.
    pub axes: Vec<usize>,
    pub rank: usize,
    /// Its input comes from outside the layer (the buffered tensor itself).
    pub on_input: bool,
}

impl Reduction {
    /// Reduces over both spatial axes (the last two).
    pub fn spatial(&self) -> bool {
        self.rank >= 2 && self.axes.contains(&(self.rank - 1)) && self.axes.contains(&(self.rank - 2))
    }
}

/// Where a layer's reductions run and how many reads of its input it makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passes {
    pub count: usize,
    /// Distinct reduction sets accumulated on the producer's write stream.
    pub on_write: usize,
    /// Distinct per-pixel reduction sets done inside the apply pass's bands.
    pub in_band: usize,
    /// Distinct reduction sets with a pass of their own.
    pub separate: usize,
}

impl Passes {
    /// What the manifest's stage reason says about them.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!(
            "{} read{} of its buffered input",
            self.count,
            if self.count == 1 { "" } else { "s" }
        )];
        if self.on_write > 0 {
            parts.push(format!("{} statistics on the producer's write stream", self.on_write));
        }
        if self.in_band > 0 {
            parts.push(format!("{} per-pixel statistics in the apply pass's row bands", self.in_band));
        }
        if self.separate > 0 {
            parts.push(format!("{} statistics pass{}", self.separate, if self.separate == 1 { "" } else { "es" }));
        }
        parts.join("; ")
    }
}

/// The passes of a layer with these reductions, with (`apply`) or without other work.
/// `streaming`: the schedule fuses reductions into the producer's writes and the apply
/// bands (not layer-serial); `band_fits`: the apply pass's line buffer of all T x C fits.
pub fn plan(reductions: &[Reduction], apply: bool, streaming: bool, band_fits: bool) -> Passes {
    use std::collections::BTreeSet;
    let mut on_write: BTreeSet<&[usize]> = BTreeSet::new();
    let mut in_band: BTreeSet<&[usize]> = BTreeSet::new();
    let mut separate: BTreeSet<&[usize]> = BTreeSet::new();
    for r in reductions {
        let axes = r.axes.as_slice();
        if !streaming {
            separate.insert(axes);
        } else if r.spatial() && r.on_input {
            on_write.insert(axes);
        } else if !r.spatial() && band_fits {
            in_band.insert(axes);
        } else {
            separate.insert(axes);
        }
    }
    // A set counted once: where it first became possible (on write, then in band).
    let in_band: BTreeSet<&[usize]> = in_band.difference(&on_write).copied().collect();
    let separate: BTreeSet<&[usize]> = separate
        .iter()
        .filter(|a| !on_write.contains(*a) && !in_band.contains(*a))
        .copied()
        .collect();
    // The apply pass: the layer's other work, or the per-pixel reductions it hosts.
    let apply = usize::from(apply || (streaming && !in_band.is_empty()));
    Passes {
        count: (separate.len() + apply).max(1),
        on_write: on_write.len(),
        in_band: in_band.len(),
        separate: separate.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red(axes: &[usize], on_input: bool) -> Reduction {
        Reduction {
            axes: axes.to_vec(),
            rank: 5,
            on_input,
        }
    }

    /// The attention over `[T, N, C, H, W]`: time statistics (mean and max over C, H, W) of
    /// the input, channel statistics over T, H, W of the time-gated value, spatial ones over
    /// T x C (axes 0 and 2) of the channel-gated value, then the gates.
    fn attention() -> Vec<Reduction> {
        vec![
            red(&[2, 3, 4], true),
            red(&[2, 3, 4], true),
            red(&[0, 3, 4], false),
            red(&[0, 3, 4], false),
            red(&[0, 2], false),
            red(&[0, 2], false),
        ]
    }

    #[test]
    fn the_attention_reads_its_input_twice_when_streaming_and_four_times_layer_serial() {
        let p = plan(&attention(), true, true, true);
        assert_eq!(p, Passes { count: 2, on_write: 1, in_band: 1, separate: 1 });
        assert_eq!(
            p.describe(),
            "2 reads of its buffered input; 1 statistics on the producer's write stream; 1 per-pixel statistics in the apply pass's row bands; 1 statistics pass"
        );
        // Without room for the band's line buffer the spatial statistics take a pass.
        assert_eq!(plan(&attention(), true, true, false).count, 3);
        // Layer-serial: 3 distinct reductions + the apply pass.
        assert_eq!(plan(&attention(), true, false, true), Passes { count: 4, on_write: 0, in_band: 0, separate: 3 });
    }

    #[test]
    fn a_mean_over_time_and_a_global_pool_are_one_pass() {
        // Mean over T alone ([T, N, C, H, W] -> axis 0): the apply pass itself.
        assert_eq!(plan(&[red(&[0], true)], false, true, true).count, 1);
        assert_eq!(plan(&[red(&[0], true)], false, false, true).count, 1);
        // The refinement: a global average pool of its input, then gates over the input.
        let pool = Reduction { axes: vec![2, 3], rank: 4, on_input: true };
        assert_eq!(plan(std::slice::from_ref(&pool), true, true, true).count, 1);
        assert_eq!(plan(&[pool], true, false, true).count, 2);
    }
}
