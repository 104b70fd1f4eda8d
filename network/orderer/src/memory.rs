//! Process memory settings for an orderer.
//!
//! An orderer handles envelopes and blocks of up to `absolute_max_bytes` (10 MiB by default):
//! a Broadcast stream decodes each into fresh buffers, the pool holds them, the consensus
//! thread copies them into WAL and block-store records. glibc's `malloc` serves the first such
//! buffer with a memory mapping of its own, but when one is freed it raises its mapping
//! threshold to that size (up to 32 MiB, `mallopt(3)`): every later 10 MiB buffer comes from a
//! thread's arena, which keeps freed memory for reuse instead of returning it. Under the flood
//! of issue 14 (2,000 × 10 MiB envelopes against four orderers in one process) that held
//! 2.1–2.6 GiB more than the orderers' budgets account for; with the threshold fixed at
//! [`MMAP_THRESHOLD_BYTES`], 1.1–1.2 GiB (figures in docs/orderer.md).

/// Allocations of at least this many bytes get memory mappings of their own, returned to the
/// system when freed: 4 MiB, above what the orderer's ordinary work allocates (votes, small
/// envelopes, batches of them) and below a large envelope or block.
pub const MMAP_THRESHOLD_BYTES: usize = 4 << 20;

/// Fixes glibc's `malloc` mapping threshold at [`MMAP_THRESHOLD_BYTES`] for the whole process
/// (`mallopt(M_MMAP_THRESHOLD)`, which also turns its dynamic adjustment off), so that large
/// buffers freed by an orderer go back to the system. Call it once at start (it applies to
/// allocations made after it); `medledger orderer start` does. Returns whether the setting
/// took effect: `false` with a C library other than glibc, where nothing is changed.
pub fn return_large_buffers_to_the_system() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let threshold = libc::c_int::try_from(MMAP_THRESHOLD_BYTES).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt(3) only sets a parameter of glibc's allocator; glibc takes its own
        // locks, and the setting applies to later allocations only.
        #[allow(unsafe_code)]
        let set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, threshold) };
        set == 1
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}
