//! Buffer reuse within one program run.
//!
//! A run allocates a fresh tensor for every node, and most are freed a few nodes later. Left
//! to the system allocator, every large `Vec` is a new `mmap` and every page of it is faulted
//! in (and zeroed) by the kernel again: on the paper configuration that was ~1.3 M page
//! faults and about a fifth of all CPU time per 256x256 image. [`scope`] installs a [`Pool`]
//! on the current thread for the duration of a run; [`zeroed`] takes the smallest pooled
//! buffer that fits (and zero-fills it) and [`recycle`] gives a dead tensor's buffer back.
//! Outside a scope both fall back to plain allocation, so kernels are usable anywhere. A
//! [`crate::Program`] keeps its pool between runs (images of a directory, tiles of a large
//! image, benchmark iterations), so memory held is bounded by one run's peak and is released
//! with the program.
//!
//! Reuse changes where results are written, never what is written: every buffer handed out
//! is fully zeroed, exactly as a fresh `vec![0.0; n]`.
//!
//! Allocation is fallible where it matters: before each step the program calls [`prepare`]
//! with the sizes the step will take, which makes the pool hold fitting buffers using
//! `try_reserve` (so an allocation the machine cannot serve is an error, not an abort); the
//! step's own [`zeroed`]/[`overwritten`] calls then find them. [`PoolModel`] replays the same
//! policy ([`pick`]) on sizes only, for the memory estimate ([`crate::Program::peak_bytes`]).

use std::cell::RefCell;

/// Buffers smaller than this are not worth pooling (the allocator serves them from its heap).
const MIN_POOLED: usize = 16 * 1024;

thread_local! {
    static POOL: RefCell<Option<Vec<Vec<f32>>>> = const { RefCell::new(None) };
}

/// Free buffers kept between scopes (shared by clones of a program; concurrent runs each take
/// what is there and give everything back).
#[derive(Clone, Debug, Default)]
pub struct Pool(std::sync::Arc<std::sync::Mutex<Vec<Vec<f32>>>>);

impl Pool {
    /// Frees every pooled buffer.
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Runs `f` with `pool`'s buffers installed on this thread and gives them (plus every buffer
/// recycled meanwhile) back to `pool` when `f` returns. Nested scopes use the outer pool.
pub fn scope<R>(pool: &Pool, f: impl FnOnce() -> R) -> R {
    let installed = POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.is_none() {
            let taken = std::mem::take(&mut *pool.0.lock().unwrap_or_else(|e| e.into_inner()));
            *p = Some(taken);
            true
        } else {
            false
        }
    });
    struct Reset<'a>(Option<&'a Pool>);
    impl Drop for Reset<'_> {
        fn drop(&mut self) {
            if let Some(pool) = self.0 {
                let bufs = POOL.with(|p| p.borrow_mut().take()).unwrap_or_default();
                pool.0.lock().unwrap_or_else(|e| e.into_inner()).extend(bufs);
            }
        }
    }
    let _reset = Reset(installed.then_some(pool));
    f()
}

/// A zero-filled buffer of `n` elements: the best-fitting pooled buffer if a scope is active
/// and one fits, else a fresh allocation.
pub fn zeroed(n: usize) -> Vec<f32> {
    let mut v = overwritten(n);
    v.fill(0.0);
    v
}

/// A buffer of `n` elements for a kernel that writes **every** element: a reused buffer keeps
/// stale values (saving the zero-fill pass), a fresh one is zeroed. Debug builds fill it with
/// NaN so an element a kernel forgets to write cannot go unnoticed.
pub fn overwritten(n: usize) -> Vec<f32> {
    let mut v = take(n);
    if cfg!(debug_assertions) {
        v.fill(f32::NAN);
    }
    v
}

/// The best-fitting pooled buffer resized to `n` (old contents kept). If none is large
/// enough, the largest pooled buffer is grown to `n` (so the pool never holds memory that no
/// request can use, and peak memory stays that of the live tensors plus what is pooled); with
/// an empty pool, a fresh zeroed one.
fn take(n: usize) -> Vec<f32> {
    if n >= MIN_POOLED {
        let reused = POOL.with(|p| {
            let mut p = p.borrow_mut();
            let pool = p.as_mut()?;
            let best = pick(pool.iter().map(|b| b.capacity()), n)?;
            Some(pool.swap_remove(best))
        });
        if let Some(mut v) = reused {
            if v.capacity() < n {
                v.clear();
                v.reserve_exact(n);
            }
            v.truncate(n);
            v.resize(n, 0.0);
            return v;
        }
    }
    vec![0.0; n]
}

/// The pooled buffer (by index among `caps`, their capacities) that a request for `n`
/// elements takes: the smallest that fits, else the largest (to be grown).
fn pick(caps: impl Iterator<Item = usize> + Clone, n: usize) -> Option<usize> {
    caps.clone()
        .enumerate()
        .filter(|&(_, c)| c >= n)
        .min_by_key(|&(_, c)| c)
        .or_else(|| caps.enumerate().max_by_key(|&(_, c)| c))
        .map(|(i, _)| i)
}

/// An allocation the system refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocError {
    /// Bytes requested.
    pub bytes: u64,
}

/// Makes the active pool hold a buffer of at least `n` elements for each of `sizes` (taken as
/// the step will take them, then given back), allocating or growing with `try_reserve`:
/// after `Ok`, the step's [`zeroed`]/[`overwritten`] calls of these sizes allocate nothing.
/// Without a scope it only checks that the memory can be had (allocates and frees it).
pub fn prepare(sizes: &[usize]) -> Result<(), AllocError> {
    let mut held = Vec::with_capacity(sizes.len());
    let mut result = Ok(());
    for &n in sizes {
        let mut v = POOL
            .with(|p| {
                let mut p = p.borrow_mut();
                let pool = p.as_mut()?;
                let best = pick(pool.iter().map(|b| b.capacity()), n)?;
                Some(pool.swap_remove(best))
            })
            .unwrap_or_default();
        if v.capacity() < n {
            v.clear();
            if v.try_reserve_exact(n).is_err() {
                result = Err(AllocError {
                    bytes: (n as u64).saturating_mul(4),
                });
                held.push(v);
                break;
            }
        }
        held.push(v);
    }
    for v in held {
        recycle(v);
    }
    result
}

/// A copy of `a` allocated fallibly.
pub fn try_copy(a: &[f32]) -> Result<Vec<f32>, AllocError> {
    let mut v = Vec::new();
    v.try_reserve_exact(a.len()).map_err(|_| AllocError {
        bytes: (a.len() as u64).saturating_mul(4),
    })?;
    v.extend_from_slice(a);
    Ok(v)
}

/// The pool's policy on sizes only: replays [`take`]/[`recycle`] and tracks the bytes held
/// (live buffers it handed out plus pooled ones), for the memory estimate.
#[derive(Clone, Debug, Default)]
pub struct PoolModel {
    /// Capacities (elements) of the pooled buffers.
    pooled: Vec<usize>,
    /// Elements held in pooled and handed-out buffers.
    held: u64,
}

impl PoolModel {
    /// A request for `n` elements; returns the capacity of the buffer handed out.
    pub fn take(&mut self, n: usize) -> usize {
        if n >= MIN_POOLED {
            if let Some(i) = pick(self.pooled.iter().copied(), n) {
                let c = self.pooled.swap_remove(i);
                if c < n {
                    self.held += (n - c) as u64;
                    return n;
                }
                return c;
            }
        }
        self.held += n as u64;
        n
    }

    /// A fresh vector of `n` elements from outside the pool (it joins the pool when it dies,
    /// like every value's buffer); returns its capacity.
    pub fn take_fresh(&mut self, n: usize) -> usize {
        self.held += n as u64;
        n
    }

    /// A buffer of capacity `c` given back ([`recycle`]).
    pub fn recycle(&mut self, c: usize) {
        if c >= MIN_POOLED {
            self.pooled.push(c);
        } else {
            self.drop_buffer(c);
        }
    }

    /// A buffer of capacity `c` freed outside the pool.
    pub fn drop_buffer(&mut self, c: usize) {
        self.held -= c as u64;
    }

    /// Bytes held now.
    pub fn bytes(&self) -> u64 {
        self.held * 4
    }
}

/// Gives a buffer back to the active pool (dropped if there is none or it is small).
pub fn recycle(v: Vec<f32>) {
    if v.capacity() < MIN_POOLED {
        return;
    }
    POOL.with(|p| {
        if let Some(pool) = p.borrow_mut().as_mut() {
            pool.push(v);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_within_a_scope_and_always_zeroes() {
        let n = MIN_POOLED * 2;
        let pool = Pool::default();
        let ptr = scope(&pool, || {
            let mut a = zeroed(n);
            a.iter_mut().for_each(|x| *x = 7.0);
            let ptr = a.as_ptr();
            recycle(a);
            let b = zeroed(n - 5);
            assert_eq!(b.as_ptr(), ptr, "the pooled buffer is reused");
            assert!(b.iter().all(|&x| x == 0.0) && b.len() == n - 5);
            // Nothing pooled: a fresh buffer.
            let big = zeroed(n * 4);
            assert_eq!(big.len(), n * 4);
            recycle(b);
            // Too big for anything pooled: the largest pooled buffer is grown, not kept idle.
            recycle(big);
            let small = zeroed(n);
            let bigger = zeroed(n * 8);
            assert!(bigger.iter().all(|&x| x == 0.0) && bigger.len() == n * 8);
            POOL.with(|p| assert!(p.borrow().as_ref().unwrap().is_empty()));
            recycle(bigger);
            recycle(small);
            ptr
        });
        // The buffers go back to the pool with the scope and are reused by the next one;
        // outside a scope, recycling just drops.
        POOL.with(|p| assert!(p.borrow().is_none()));
        assert_eq!(pool.0.lock().unwrap().len(), 2);
        recycle(vec![1.0; n]);
        assert_eq!(pool.0.lock().unwrap().len(), 2);
        scope(&pool, || {
            let c = overwritten(n);
            assert_eq!(c.as_ptr(), ptr, "reused across scopes");
            recycle(c);
        });
        assert_eq!(pool.0.lock().unwrap().len(), 2, "taken and given back");
        pool.clear();
        assert!(pool.0.lock().unwrap().is_empty());
    }
}
