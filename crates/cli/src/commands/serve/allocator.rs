//! mimalloc's memory purging, set for a long-running service.
//!
//! mimalloc gives the pages of a freed-up heap page back to the kernel (`MADV_DONTNEED`) only
//! after `purge_delay` milliseconds, 10 by default, and only when the heap that owns them next
//! runs its housekeeping; a burst of short-lived allocations on several threads leaves that much
//! memory resident until then. The API server's bursts are per request and per group-commit
//! batch, on every runtime thread, so its resident set after a load kept up to 3 MiB of them.
//! With a 1 ms delay (the load harness's SQLite server, unpinned, W0–W5 with 8 s per
//! workload, two runs each): peak RSS after W2 29.4 / 28.7 → 26.5 / 26.4 MiB, after W5
//! 29.2 / 28.8 → 27.8 / 27.4; pinned, three alternating runs each, CPU per request was no
//! higher (W2 59–78 µs against 65–78, W5 19.5–20.7 against 18.5–28.0). A delay of 0 purged
//! about as much (W5 27.4 / 27.5 MiB); 1 ms is the smaller step from the default. The full
//! harness run that followed (run M in docs/BENCHMARKS.md) had W5 at 29.0 MB against 29.3
//! before, within that figure's spread between runs.
//!
//! Written by hand because the `mimalloc` crate exposes no option setter: one call of
//! mimalloc's own `mi_option_set`. Its value is read when a purge is scheduled, so setting it
//! at the start of `serve` covers everything the service allocates afterwards.

use libmimalloc_sys::mi_option_t;

/// `mi_option_purge_delay` in mimalloc v2's `mimalloc.h` (`libmimalloc-sys` names the options
/// up to `mi_option_eager_commit_delay`, 14, which it directly precedes).
const PURGE_DELAY: mi_option_t = libmimalloc_sys::mi_option_eager_commit_delay + 1;

/// The purge delay the service runs with, in milliseconds.
const SERVICE_PURGE_DELAY_MS: std::ffi::c_long = 1;

/// Shortens mimalloc's purge delay (see the module docs).
pub(super) fn purge_promptly() {
    // SAFETY: `mi_option_set` stores an integer in mimalloc's option table (an atomic store);
    // it takes no pointer, and any value is valid for this option.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, SERVICE_PURGE_DELAY_MS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(unsafe_code)]
    fn get(option: mi_option_t) -> std::ffi::c_long {
        // SAFETY: reads an integer from mimalloc's option table.
        unsafe { libmimalloc_sys::mi_option_get(option) }
    }

    #[test]
    fn the_option_set_is_the_purge_delay() {
        // The index is right if it holds the purge delay's documented default (10 ms; the
        // neighbouring options default to 1 and 0) before it is changed.
        assert_eq!(get(PURGE_DELAY), 10, "mimalloc's default purge delay");
        purge_promptly();
        assert_eq!(get(PURGE_DELAY), SERVICE_PURGE_DELAY_MS);
    }
}
