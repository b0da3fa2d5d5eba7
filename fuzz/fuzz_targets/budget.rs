//! Every target counts what it allocates for one input and fails (a finding, like a crash) when
//! that exceeds `paritylab::fuzzing::budget`: an input must never make the engine allocate in
//! proportion to what it claims rather than to its size.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
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

/// Run `f` on one input of `target`, counting its allocations; panics over the budget.
pub fn within(target: &str, data: &[u8], f: impl FnOnce()) {
    ALLOCATED.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    let used = ALLOCATED.load(Ordering::SeqCst);
    let most = paritylab::fuzzing::budget(target, data.len());
    assert!(used <= most, "{target}: allocated {used} bytes for a {}-byte input (budget {most})", data.len());
}
