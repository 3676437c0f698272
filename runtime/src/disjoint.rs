//! Parallel writes into disjoint regions of one `[lead, co, oh, ow]` output tensor.
//!
//! The convolution kernels split their output over (plane, band of rows, band of columns);
//! a task writes its band of **every** output channel, which in memory is `co` strided
//! pieces, so no `chunks_mut`/`split_at_mut` split can hand it out. [`par_regions`] cuts the
//! grid itself and gives every rayon task a [`Region`]: exclusive access to exactly the
//! elements `(b, o, y, x)` of its cell, for all `o`. A region hands out one output row of all
//! channels at a time ([`Region::rows_at`] -> [`ChannelRows`]), and that one channel row at a
//! time ([`ChannelRows::row`]), so no two live `&mut [f32]` ever overlap — within a task or
//! across tasks — and no task ever holds a reference to another task's elements.
//!
//! Invariant (what the `unsafe` below relies on): the cells [`par_regions`] creates partition
//! the tensor (they come from one grid computed here, never from the caller), every pointer
//! a `Region`/`ChannelRows` dereferences stays inside its own cell (checked by assertions on
//! every access), and both borrow the output mutably for their lifetime.

use rayon::prelude::*;
use std::marker::PhantomData;

/// The output's base pointer, shared by the tasks of one [`par_regions`] call.
#[derive(Clone, Copy)]
struct Base(*mut f32);
// SAFETY: tasks only dereference it inside their own disjoint cells (module invariant).
unsafe impl Send for Base {}
unsafe impl Sync for Base {}

/// Geometry of the `[lead, co, oh, ow]` tensor.
#[derive(Clone, Copy, Debug)]
struct Dims {
    co: usize,
    oh: usize,
    ow: usize,
}

/// One task's cell: rows `rows.0..rows.1` and columns `cols.0..cols.1` of every channel of
/// plane `plane`.
pub(crate) struct Region<'a> {
    base: Base,
    dims: Dims,
    plane: usize,
    rows: (usize, usize),
    cols: (usize, usize),
    _out: PhantomData<&'a mut [f32]>,
}

impl Region<'_> {
    /// The plane (index into `lead`).
    pub(crate) fn plane(&self) -> usize {
        self.plane
    }

    /// The cell's rows.
    pub(crate) fn rows(&self) -> std::ops::Range<usize> {
        self.rows.0..self.rows.1
    }

    /// The cell's first column.
    pub(crate) fn col0(&self) -> usize {
        self.cols.0
    }

    /// Row `y` of the cell (its columns) in every output channel.
    pub(crate) fn rows_at(&mut self, y: usize) -> ChannelRows<'_> {
        assert!(self.rows().contains(&y), "row {y} outside the cell {:?}", self.rows);
        let Dims { co, oh, ow } = self.dims;
        let start = (self.plane * co * oh + y) * ow + self.cols.0;
        ChannelRows {
            // SAFETY: `start` is element (plane, 0, y, cols.0), inside the tensor (the cell
            // lies inside it by construction); no dereference happens here.
            ptr: unsafe { self.base.0.add(start) },
            channels: co,
            len: self.cols.1 - self.cols.0,
            stride: oh * ow,
            _out: PhantomData,
        }
    }
}

/// `channels` rows of `len` elements, `stride` apart, exclusively borrowed: one output row
/// of every channel (a [`Region`]'s, or a plain slice's via [`ChannelRows::of_slice`]).
pub struct ChannelRows<'a> {
    ptr: *mut f32,
    channels: usize,
    len: usize,
    stride: usize,
    _out: PhantomData<&'a mut [f32]>,
}

impl<'a> ChannelRows<'a> {
    /// `channels` rows of `len` elements of `dst`, `stride` apart (panics if they do not fit
    /// or overlap).
    pub fn of_slice(dst: &'a mut [f32], channels: usize, len: usize, stride: usize) -> Self {
        assert!(channels <= 1 || stride >= len, "rows overlap");
        assert!(channels == 0 || len == 0 || dst.len() >= (channels - 1) * stride + len);
        ChannelRows {
            ptr: dst.as_mut_ptr(),
            channels,
            len,
            stride,
            _out: PhantomData,
        }
    }

    /// Output channels.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Elements per row.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Channel `o`'s row.
    pub fn row(&mut self, o: usize) -> &mut [f32] {
        assert!(o < self.channels, "channel {o} of {}", self.channels);
        // SAFETY: rows are disjoint (`stride >= len`) and inside the borrowed memory (checked
        // by `of_slice`, or by construction of the cell in `Region::rows_at`); `&mut self`
        // keeps at most one of them borrowed at a time.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(o * self.stride), self.len) }
    }
}

/// Runs `task` in parallel on every cell of the grid that cuts `out` (`[lead, co, oh, ow]`)
/// into planes x bands of `band.0` rows x bands of `band.1` columns (the last band of each
/// axis is shorter). Every element belongs to exactly one cell, so the result does not
/// depend on the thread count or on the order the cells run in.
pub(crate) fn par_regions(
    out: &mut [f32],
    lead: usize,
    co: usize,
    (oh, ow): (usize, usize),
    band: (usize, usize),
    task: impl Fn(Region<'_>) + Sync,
) {
    assert_eq!(out.len(), lead * co * oh * ow, "output size");
    let (br, bc) = (band.0.max(1), band.1.max(1));
    let (nr, nc) = (oh.div_ceil(br), ow.div_ceil(bc));
    let base = Base(out.as_mut_ptr());
    let dims = Dims { co, oh, ow };
    (0..lead * nr * nc).into_par_iter().for_each(|cell| {
        let (plane, rest) = (cell / (nr * nc), cell % (nr * nc));
        let (r, c) = (rest / nc, rest % nc);
        task(Region {
            base,
            dims,
            plane,
            rows: (r * br, ((r + 1) * br).min(oh)),
            cols: (c * bc, ((c + 1) * bc).min(ow)),
            _out: PhantomData,
        })
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element is written by exactly one cell, for bands that do and do not divide the
    /// sides, and a cell's rows and channels are where the layout says.
    #[test]
    fn cells_partition_the_tensor() {
        for (lead, co, oh, ow, band) in [(2, 3, 7, 5, (2, 2)), (1, 1, 4, 9, (4, 9)), (3, 2, 5, 6, (1, 4))] {
            let mut out = vec![0.0f32; lead * co * oh * ow];
            par_regions(&mut out, lead, co, (oh, ow), band, |mut r| {
                let (b, x0) = (r.plane(), r.col0());
                for y in r.rows() {
                    let mut rows = r.rows_at(y);
                    for o in 0..rows.channels() {
                        for (i, v) in rows.row(o).iter_mut().enumerate() {
                            *v += (((b * co + o) * oh + y) * ow + x0 + i) as f32 + 1.0;
                        }
                    }
                }
            });
            let want: Vec<f32> = (0..out.len()).map(|i| i as f32 + 1.0).collect();
            assert_eq!(out, want, "lead {lead} co {co} {oh}x{ow} band {band:?}");
        }
    }

    #[test]
    #[should_panic(expected = "outside the cell")]
    fn a_row_outside_the_cell_is_refused() {
        let mut out = vec![0.0f32; 2 * 4 * 4];
        par_regions(&mut out, 1, 2, (4, 4), (2, 4), |mut r| {
            let y = r.rows().end;
            r.rows_at(y);
        });
    }
}
