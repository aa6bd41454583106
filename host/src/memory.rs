//! When freed memory goes back to the system.
//!
//! The `runnel` binary allocates with mimalloc, which gives memory back a
//! while after it is freed (its purge delay, one second), and only when
//! some thread next calls into it; and a page stays with the thread that
//! used it while any of its blocks does. Loading plugins at start frees
//! tens of MiB in a burst, much of it on the compiler's worker threads,
//! which then sleep. Ten idle plugins kept 157–177 MiB resident; with
//! memory going back at once while the host starts, and the compiler's
//! threads giving back theirs once it has started, 57–73 MiB. Under load,
//! giving memory back at once would cost a system call per page freed and
//! page faults when it is used again soon after, so once started, the
//! delay is mimalloc's again.
//!
//! A process whose allocator is not mimalloc (the library used on its own)
//! only changes settings mimalloc then never reads.

use std::sync::atomic::{AtomicI64, Ordering};

use libmimalloc_sys::{mi_collect, mi_option_get, mi_option_set, mi_option_t};

/// `mi_option_purge_delay` in `mimalloc.h` (of both the v2 and the v3
/// sources the crate ships), which the crate's constants do not name.
const PURGE_DELAY: mi_option_t = 15;

/// Where `MIMALLOC_PURGE_DELAY` is set, the user's value stands.
const PURGE_DELAY_VARIABLE: &str = "MIMALLOC_PURGE_DELAY";

/// The delay to go back to once started; `NOT_STARTING` unless starting.
static DELAY_AFTER_START: AtomicI64 = AtomicI64::new(NOT_STARTING);
const NOT_STARTING: i64 = i64::MIN;

/// Freed memory goes back to the system at once, until [`started`].
#[allow(unsafe_code)] // foreign calls that take no pointers
pub fn starting() {
    if std::env::var_os(PURGE_DELAY_VARIABLE).is_some() {
        return;
    }
    // SAFETY: mimalloc's option calls take an option index and a number,
    // and may be made from any thread at any time.
    let delay = unsafe { mi_option_get(PURGE_DELAY) };
    DELAY_AFTER_START.store(delay as i64, Ordering::Relaxed);
    unsafe { mi_option_set(PURGE_DELAY, 0) };
}

/// The plugins are loaded: the compiler's threads (wasmtime compiles on
/// rayon's pool) give back what they freed, and freed memory goes back
/// after mimalloc's delay again.
#[allow(unsafe_code)] // foreign calls that take no pointers
pub fn started() {
    let delay = DELAY_AFTER_START.swap(NOT_STARTING, Ordering::Relaxed);
    if delay == NOT_STARTING {
        return;
    }
    // SAFETY: `mi_collect` collects the calling thread's own heap, and may
    // be called from any thread at any time.
    rayon::broadcast(|_| unsafe { mi_collect(true) });
    // SAFETY: as in `starting`.
    unsafe { mi_option_set(PURGE_DELAY, delay as std::ffi::c_long) };
}
