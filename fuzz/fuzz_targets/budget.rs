//! Every target counts what it allocates for one input and fails (a finding, like a crash) when
//! that exceeds `paritylab::fuzzing::budget`: an input must never make the engine allocate in
//! proportion to what it claims rather than to its size.

#[path = "../../tests/common/counting_alloc.rs"]
mod counting_alloc;

/// Run `f` on one input of `target`, counting its allocations; panics over the budget.
pub fn within(target: &str, data: &[u8], f: impl FnOnce()) {
    let ((), used) = counting_alloc::measure(f);
    let most = paritylab::fuzzing::budget(target, data.len());
    assert!(
        used.total <= most,
        "{target}: allocated {} bytes for a {}-byte input (budget {most})",
        used.total,
        data.len()
    );
}
