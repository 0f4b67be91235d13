//! Allocator maintenance. glibc keeps the pages a program frees on its
//! arenas' free lists for reuse instead of returning them, so a node whose
//! tenants had a million live scope values yesterday stays resident at that
//! size today although the values are gone (BENCHMARKS.md, "Memory of scope
//! values": heap back to 0, RSS kept at 169 MiB). A node checks now and
//! then how much its allocator holds free, and returns it when that is
//! worth a trim.
use std::time::Duration;

/// How often a node looks at what its allocator holds free.
pub const CHECK_EVERY: Duration = Duration::from_secs(30);

/// Free memory worth returning: below this a trim (which walks and locks
/// every arena in turn) is not worth its pause.
pub const WORTH_RETURNING: usize = 32 << 20;

/// Bytes the allocator holds free in its arenas (`None` off glibc).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn held_free() -> Option<usize> {
    // SAFETY: mallinfo2 takes no pointers and returns a plain struct;
    // glibc locks each arena while it reads it.
    let info = unsafe { libc::mallinfo2() };
    Some(info.fordblks)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn held_free() -> Option<usize> {
    None
}

/// Return the allocator's free pages to the kernel; whether any came back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release() -> bool {
    // SAFETY: malloc_trim takes no pointers and only rearranges glibc's own
    // free lists, which it locks while it runs; live allocations stay.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release() -> bool {
    false
}

/// One check: if the allocator holds at least [`WORTH_RETURNING`] free,
/// return it. Answers the free bytes it returned pages of, if it trimmed.
pub fn maintain() -> Option<usize> {
    let free = held_free().filter(|f| *f >= WORTH_RETURNING)?;
    release().then_some(free)
}
