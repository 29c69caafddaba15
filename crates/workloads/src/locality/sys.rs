//! The locality experiment's only unsafe code: anonymous mappings with a page-size policy
//! (`mmap`, `madvise`, `munmap`), NUMA memory binding (`mbind`) and CPU pinning
//! (`sched_setaffinity`). Everything above this module works on safe slices.

use std::io;
use std::ptr::NonNull;

/// Transparent huge pages on x86-64 are 2 MiB; regions start on such a boundary so that the
/// kernel can back them with huge pages from the first byte.
pub(crate) const HUGE_PAGE_BYTES: usize = 2 << 20;

/// Which page size the kernel should use for a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PagePolicy {
    /// `MADV_NOHUGEPAGE`: base 4 KiB pages even when THP is `always`.
    Small,
    /// `MADV_HUGEPAGE`: ask for transparent huge pages (THP `madvise` or `always` mode).
    Huge,
}

/// An anonymous, private, read-write mapping of `len` bytes starting on a 2 MiB boundary,
/// unmapped on drop. The memory is zero-filled by the kernel and is not touched here, so no
/// page is faulted in before the caller writes.
#[derive(Debug)]
pub(crate) struct Region {
    /// The whole mapping (what `munmap` gets).
    map: NonNull<u8>,
    map_len: usize,
    /// The aligned start of the usable part and its length (a multiple of 8).
    start: usize,
    len: usize,
}

impl Region {
    /// Maps `len` bytes (rounded up to a multiple of 64) with the given page policy.
    pub(crate) fn map(len: usize, policy: PagePolicy) -> io::Result<Region> {
        let len = len
            .checked_next_multiple_of(64)
            .filter(|&l| l > 0)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        let map_len = len
            .checked_add(HUGE_PAGE_BYTES)
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        // SAFETY: a fresh anonymous private mapping with no address hint cannot alias or
        // replace any existing memory; the result is checked against MAP_FAILED below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = NonNull::new(p.cast::<u8>()).expect("mmap never returns null on success");
        let addr = p as usize;
        let start = addr.next_multiple_of(HUGE_PAGE_BYTES);
        // From here on, dropping `region` unmaps, so every early return cleans up.
        let region = Region {
            map,
            map_len,
            start,
            len,
        };
        let advice = match policy {
            PagePolicy::Small => libc::MADV_NOHUGEPAGE,
            PagePolicy::Huge => libc::MADV_HUGEPAGE,
        };
        // SAFETY: [start, start + len) lies inside the mapping created above (start is at most
        // HUGE_PAGE_BYTES - 1 past its beginning and the mapping is len + HUGE_PAGE_BYTES long);
        // madvise with these advice values changes only the page-size policy, not contents.
        let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, advice) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            // A kernel without THP rejects both advices with EINVAL: its pages are small anyway.
            if !(policy == PagePolicy::Small && e.raw_os_error() == Some(libc::EINVAL)) {
                return Err(e);
            }
        }
        Ok(region)
    }

    /// Address of the first usable byte (2 MiB aligned).
    pub(crate) fn start(&self) -> usize {
        self.start
    }

    /// Usable length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The region as 64-bit words.
    pub(crate) fn words(&self) -> &[u64] {
        // SAFETY: [start, start + len) is mapped readable for as long as `self` lives, start is
        // 2 MiB aligned (so aligned for u64), len is a multiple of 8, every bit pattern is a
        // valid u64 (the kernel zero-fills), and the shared borrow of `self` excludes the
        // `&mut` view of `words_mut` for the slice's lifetime.
        unsafe { std::slice::from_raw_parts(self.start as *const u64, self.len / 8) }
    }

    /// The region as mutable 64-bit words.
    pub(crate) fn words_mut(&mut self) -> &mut [u64] {
        // SAFETY: as in `words`, and the exclusive borrow of `self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.start as *mut u64, self.len / 8) }
    }

    /// Binds the region's future page faults to NUMA `node` (`mbind(MPOL_BIND)`). Call before
    /// touching the memory.
    pub(crate) fn bind_to_node(&self, node: u32) -> io::Result<()> {
        if node >= 64 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let mask: u64 = 1 << node;
        const MPOL_BIND: libc::c_long = 2;
        // SAFETY: mbind only reads `mask` (one u64, maxnode 64 bits) and changes the memory
        // policy of [start, start + len), which lies inside our own mapping.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_mbind,
                self.start as libc::c_long,
                self.len as libc::c_long,
                MPOL_BIND,
                &mask as *const u64,
                64 as libc::c_long,
                0 as libc::c_long,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `map`/`map_len` are exactly what mmap returned, unmapped once (here); no
        // slice borrowed from `self` can outlive it.
        let rc = unsafe { libc::munmap(self.map.as_ptr().cast(), self.map_len) };
        debug_assert_eq!(rc, 0, "munmap of our own mapping cannot fail");
    }
}

/// Pins the calling thread to `cpus` (`sched_setaffinity`).
pub(crate) fn pin_current_thread(cpus: &[usize]) -> io::Result<()> {
    // SAFETY: cpu_set_t is a plain bit array for which all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: `cpu` was checked against CPU_SETSIZE, so the bit lies inside `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid, initialized cpu_set_t of the size passed; pid 0 is this thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_aligned_zeroed_and_writable() {
        let mut r = Region::map(100, PagePolicy::Small).unwrap();
        assert_eq!(r.start() % HUGE_PAGE_BYTES, 0);
        assert_eq!(r.len(), 128);
        assert!(r.words().iter().all(|&w| w == 0));
        r.words_mut()[15] = 7;
        assert_eq!(r.words()[15], 7);
        assert!(Region::map(0, PagePolicy::Huge).is_err());
    }
}
