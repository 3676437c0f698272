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
            let best = pool
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= n)
                .min_by_key(|(_, b)| b.capacity())
                .or_else(|| pool.iter().enumerate().max_by_key(|(_, b)| b.capacity()))
                .map(|(i, _)| i)?;
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
