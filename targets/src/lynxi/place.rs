//! Slicing and placement for the streaming schedules, and the chip partition of a card.
//!
//! * [`partition`] — cuts the layer sequence into one contiguous range per chip at stage
//!   boundaries: every chip's weights must fit its weight SRAM; among the cuts that fit, the
//!   one with the least work on the busiest chip, then the least traffic over the cut.
//! * [`balanced`] — in a streaming schedule all layers of a stage run at once, so each stage
//!   should keep every core of its chip busy: a layer gets slices in proportion to its share
//!   of the stage's work, by output channel first and then by output row bands (a row band
//!   repeats the layer's weights, granted while spare weight SRAM lasts). Slices go
//!   largest-weight first (first-fit decreasing, so big slices find room) to the core with
//!   the least work in that slice's stage among those with room.
//! * [`improve`] — the cores' contents are then permuted (which keeps every load and
//!   capacity) to minimise the bytes x mesh hops between producer and consumer slices:
//!   deterministic local search, pairwise swaps proposed by a fixed-seed xorshift generator,
//!   a swap kept when it lowers the cost. The start is the serpentine walk; both costs are
//!   reported.

use super::{LayerDraft, ALIGN};

/// One slice before it becomes a [`super::Slice`]: layer, core, channels and rows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Piece {
    pub layer: usize,
    pub core: usize,
    pub c: [usize; 2],
    pub r: [usize; 2],
}

/// Chip of every layer, or `Err(weight bytes of the heaviest chip range that cannot be
/// avoided)` when no cut fits. `cut_bytes[b]` is the traffic over a cut before layer `b`.
pub fn partition(
    weights: &[u64],
    work: &[f64],
    boundaries: &[usize],
    cut_bytes: &[f64],
    chips: usize,
    cap: u64,
) -> Option<Vec<usize>> {
    let n = weights.len();
    if chips <= 1 {
        return (weights.iter().sum::<u64>() <= cap).then(|| vec![0; n]);
    }
    // Candidate cut points: stage boundaries (layer indices where a stage starts), plus 0, n.
    let mut pts: Vec<usize> = vec![0];
    pts.extend(boundaries.iter().copied().filter(|&b| b > 0 && b < n));
    pts.push(n);
    pts.dedup();
    let prefix_w: Vec<u64> = std::iter::once(0)
        .chain(weights.iter().scan(0u64, |s, &w| {
            *s += w;
            Some(*s)
        }))
        .collect();
    let prefix_f: Vec<f64> = std::iter::once(0.0)
        .chain(work.iter().scan(0.0, |s, &w| {
            *s += w;
            Some(*s)
        }))
        .collect();
    let m = pts.len();
    // best[k][j] = (max work, cut bytes) of covering layers 0..pts[j] with chips 0..=k
    // (a chip may stay empty); from[k][j] = where chip k's range starts.
    let inf = (f64::INFINITY, f64::INFINITY);
    let mut best = vec![vec![inf; m]; chips];
    let mut from = vec![vec![0usize; m]; chips];
    for j in 0..m {
        if prefix_w[pts[j]] <= cap {
            best[0][j] = (prefix_f[pts[j]], 0.0);
        }
    }
    for k in 1..chips {
        for j in 0..m {
            for i in 0..=j {
                let (wmax, cut) = best[k - 1][i];
                if !wmax.is_finite() || prefix_w[pts[j]] - prefix_w[pts[i]] > cap {
                    continue;
                }
                let here = prefix_f[pts[j]] - prefix_f[pts[i]];
                let extra = if i < j && i > 0 { cut_bytes[pts[i]] } else { 0.0 };
                let cand = (wmax.max(here), cut + extra);
                if cand < best[k][j] {
                    best[k][j] = cand;
                    from[k][j] = i;
                }
            }
        }
    }
    if !best[chips - 1][m - 1].0.is_finite() {
        return None;
    }
    let mut chip_of = vec![0usize; n];
    let mut j = m - 1;
    for k in (1..chips).rev() {
        let i = from[k][j];
        for c in &mut chip_of[pts[i]..pts[j]] {
            *c = k;
        }
        j = i;
    }
    Some(chip_of)
}

/// Slices per share of a core's mean stage work (2: no slice above half the mean).
pub const SLICES_PER_MEAN: f64 = 2.0;

/// Balanced slices of `layers` (all on one chip with `cores`) for a streaming schedule.
/// `Err((layer, channel))` names the first slice that found no core with room.
pub fn balanced(
    drafts: &[LayerDraft],
    layers: &[usize],
    stage_of: &[usize],
    cores: &[usize],
    cap: u64,
) -> Result<Vec<Piece>, (usize, usize)> {
    // Finest first; coarser slices and fewer row bands when the weights do not pack.
    let mut last = Err((layers.first().copied().unwrap_or(0), 0));
    for (per_mean, spare_tenths) in [(SLICES_PER_MEAN, 9), (1.0, 5), (1.0, 0)] {
        last = balanced_with(drafts, layers, stage_of, cores, cap, per_mean, spare_tenths);
        if last.is_ok() {
            break;
        }
    }
    last
}

fn balanced_with(
    drafts: &[LayerDraft],
    layers: &[usize],
    stage_of: &[usize],
    cores: &[usize],
    cap: u64,
    per_mean: f64,
    spare_tenths: u64,
) -> Result<Vec<Piece>, (usize, usize)> {
    let n = cores.len();
    let aligned = |b: u64| b.div_ceil(ALIGN) * ALIGN;
    let mut stage_work: std::collections::BTreeMap<usize, f64> = Default::default();
    for &l in layers {
        *stage_work.entry(stage_of[l]).or_default() += drafts[l].work;
    }
    let total_w: u64 = layers.iter().map(|&l| drafts[l].weight_for(drafts[l].channels)).sum();
    // Keep part of the spare weight SRAM for packing losses.
    let mut spare = (cap * n as u64).saturating_sub(total_w) * spare_tenths / 10;
    // Slice counts: channels first, row bands while spare weight SRAM lasts (most work first).
    let mut order: Vec<usize> = layers.to_vec();
    order.sort_by(|&a, &b| drafts[b].work.total_cmp(&drafts[a].work).then(a.cmp(&b)));
    let mut split: std::collections::BTreeMap<usize, (usize, usize)> = Default::default();
    for &l in &order {
        let d = &drafts[l];
        let rows = d.rows().max(1);
        let sw = stage_work[&stage_of[l]].max(f64::MIN_POSITIVE);
        // Every slice at most half the stage's mean per-core work, so that largest-first
        // placement can even the cores out.
        let want = ((per_mean * n as f64 * d.work / sw).ceil() as usize).clamp(1, 4 * n);
        let mut kc = want.min(d.channels).max(1);
        while kc < d.channels && aligned(d.weight_for(d.channels.div_ceil(kc))) > cap {
            kc += 1;
        }
        let mut kr = want.div_ceil(kc).clamp(1, rows);
        let w = d.weight_for(d.channels);
        if kr > 1 && w > 0 {
            let afford = 1 + (spare / w) as usize;
            kr = kr.min(afford);
            spare -= w * (kr as u64 - 1);
        }
        split.insert(l, (kc, kr));
    }
    let mut pieces: Vec<(u64, f64, Piece)> = Vec::new();
    for &l in layers {
        let d = &drafts[l];
        let (kc, kr) = split[&l];
        let rows = d.rows().max(1);
        for j in 0..kc {
            let c = [j * d.channels / kc, (j + 1) * d.channels / kc];
            if c[0] == c[1] {
                continue;
            }
            for i in 0..kr {
                let r = [i * rows / kr, (i + 1) * rows / kr];
                if r[0] == r[1] {
                    continue;
                }
                let need = aligned(d.weight_for_slice(c[1] - c[0], c[0] == 0));
                let share = (c[1] - c[0]) as f64 / d.channels as f64 * (r[1] - r[0]) as f64
                    / rows as f64;
                pieces.push((
                    need,
                    d.work * share,
                    Piece {
                        layer: l,
                        core: 0,
                        c,
                        r,
                    },
                ));
            }
        }
    }
    pieces.sort_by(|a, b| {
        b.0.cmp(&a.0)
            .then(b.1.total_cmp(&a.1))
            .then((a.2.layer, a.2.c[0], a.2.r[0]).cmp(&(b.2.layer, b.2.c[0], b.2.r[0])))
    });
    let mut used = vec![0u64; n];
    let mut load: std::collections::BTreeMap<usize, Vec<f64>> = Default::default();
    let mut out = Vec::with_capacity(pieces.len());
    for (need, work, mut p) in pieces {
        let ld = load
            .entry(stage_of[p.layer])
            .or_insert_with(|| vec![0.0; n]);
        let slot = (0..n)
            .filter(|&k| used[k] + need <= cap)
            .min_by(|&a, &b| {
                ld[a]
                    .total_cmp(&ld[b])
                    .then(used[a].cmp(&used[b]))
                    .then(a.cmp(&b))
            })
            .ok_or((p.layer, p.c[0]))?;
        used[slot] += need;
        ld[slot] += work;
        p.core = slot; // a slot index for now; `improve` maps slots to cores
        out.push(p);
    }
    out.sort_by_key(|p| (p.layer, p.c[0], p.r[0]));
    for p in &mut out {
        p.core = cores[p.core];
    }
    Ok(out)
}

/// A deterministic xorshift64* generator.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Seed of the placement search.
pub const PLACEMENT_SEED: u64 = 0x5eed_cafe_f00d_0001;
/// Swap proposals per core.
pub const PLACEMENT_ITERATIONS_PER_CORE: usize = 400;

/// Permutes bins (the current contents of `n` cores) over positions to lower
/// `sum traffic[a][b] x dist(pos a, pos b)`. `start[b]` is bin `b`'s first position;
/// `flows` lists `(bin a, bin b, bytes)`. Returns `(positions, cost at start, cost after)`.
pub fn improve(
    n: usize,
    start: &[usize],
    flows: &[(usize, usize, f64)],
    dist: impl Fn(usize, usize) -> f64,
) -> (Vec<usize>, f64, f64) {
    // Bytes between bins, summed per (unordered) pair.
    let mut pair: std::collections::BTreeMap<(usize, usize), f64> = Default::default();
    for &(a, b, w) in flows {
        if a != b && w > 0.0 {
            *pair.entry((a.min(b), a.max(b))).or_default() += w;
        }
    }
    let flows: Vec<(usize, usize, f64)> = pair.into_iter().map(|((a, b), w)| (a, b, w)).collect();
    let mut adj: Vec<Vec<(usize, f64)>> = vec![vec![]; n];
    for &(a, b, w) in &flows {
        adj[a].push((b, w));
        adj[b].push((a, w));
    }
    let mut pos = start.to_vec();
    let cost = |pos: &[usize]| -> f64 {
        flows
            .iter()
            .map(|&(a, b, w)| w * dist(pos[a], pos[b]))
            .sum::<f64>()
    };
    let before = cost(&pos);
    if n < 2 {
        return (pos, before, before);
    }
    let mut rng = XorShift(PLACEMENT_SEED);
    for _ in 0..n * PLACEMENT_ITERATIONS_PER_CORE {
        let a = (rng.next() % n as u64) as usize;
        let b = (rng.next() % n as u64) as usize;
        if a == b {
            continue;
        }
        let (pa, pb) = (pos[a], pos[b]);
        let mut delta = 0.0;
        for &(x, w) in &adj[a] {
            if x != b {
                delta += w * (dist(pb, pos[x]) - dist(pa, pos[x]));
            }
        }
        for &(x, w) in &adj[b] {
            if x != a {
                delta += w * (dist(pa, pos[x]) - dist(pb, pos[x]));
            }
        }
        if delta < -1e-9 {
            pos[a] = pb;
            pos[b] = pa;
        }
    }
    let after = cost(&pos);
    (pos, before, after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_fits_every_chip_and_balances_work() {
        // Four layers of weight 4 on chips of 8: two per chip.
        let chips = partition(&[4, 4, 4, 4], &[1.0, 1.0, 1.0, 1.0], &[1, 2, 3], &[0.0; 5], 2, 8);
        assert_eq!(chips, Some(vec![0, 0, 1, 1]));
        assert_eq!(partition(&[4, 4, 4, 4], &[1.0; 4], &[1, 2, 3], &[0.0; 5], 1, 8), None);
        // Only cut at a stage boundary: [0,1,2] must stay together.
        assert_eq!(
            partition(&[2, 2, 2, 4], &[1.0; 4], &[3], &[0.0; 5], 2, 8),
            Some(vec![0, 0, 0, 1])
        );
    }

    #[test]
    fn local_search_never_raises_the_cost_and_is_deterministic() {
        // A chain 0-1-2-3 placed on a line in scrambled order.
        let flows = [(0, 1, 1.0), (1, 2, 1.0), (2, 3, 1.0)];
        let d = |a: usize, b: usize| a.abs_diff(b) as f64;
        let (p1, before, after) = improve(4, &[0, 3, 1, 2], &flows, d);
        assert_eq!(before, 3.0 + 2.0 + 1.0);
        assert_eq!(after, 3.0);
        let (p2, _, _) = improve(4, &[0, 3, 1, 2], &flows, d);
        assert_eq!(p1, p2);
    }
}
