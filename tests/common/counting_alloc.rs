//! A global allocator that counts what is allocated while a measurement runs: the hostile-input
//! tests, the fuzz regressions (`cargo test`) and the fuzz targets themselves (`fuzz/`) check with
//! it that an input never makes the engine allocate in proportion to what it claims.
//!
//! Include it with `#[path]` in a test or fuzz binary (it installs itself as the allocator).
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

/// Every thread's allocations count while a measurement runs: tests that measure hold this lock
/// so that they measure one at a time.
pub static SERIAL: Mutex<()> = Mutex::new(());

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        // SAFETY: forwarding the caller's layout to the system allocator unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// What one call allocated.
pub struct Allocated {
    /// Bytes, summed over every allocation (frees are not subtracted).
    pub total: usize,
    /// The largest single allocation.
    pub largest: usize,
}

/// Run `f`, counting what it allocates.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Allocated) {
    ALLOCATED.store(0, Ordering::SeqCst);
    LARGEST.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let r = f();
    COUNTING.store(false, Ordering::SeqCst);
    (r, Allocated { total: ALLOCATED.load(Ordering::SeqCst), largest: LARGEST.load(Ordering::SeqCst) })
}
