//! USDT probes (feature `usdt`): SystemTap SDT notes that bpftrace, perf and gdb read.
//!
//! Provider `frugal_defer`; probe names and arguments (all 64-bit):
//!
//! | probe | arguments | where |
//! |---|---|---|
//! | `scope_enter` | — | a scope starts running its body |
//! | `scope_exit` | registered, pooled, heap, panicked (0/1) | a scope ended: its exact counts |
//! | `defer_register` | record size in bytes, storage | a deferred call was registered |
//! | `call_start` | record size in bytes | the run loop is about to exit a record |
//! | `call_end` | — | that record's exit returned (or unwound) |
//! | `defer_cancel` | — | a handle cancelled its call |
//! | `defer_run_now` | — | a handle ran its call early |
//! | `pool_hit`, `pool_miss` | size class (0 = 64 B … 6 = 4 KiB) | a pool block was taken |
//! | `panic_caught` | — | a scope caught a panic (the first or a collateral one) |
//!
//! `defer_register`'s storage is [`BUMP`] (bump-allocated in the chain's current area: the
//! inline area, or the current pool segment once the chain overflowed), [`NEW_SEGMENT`] (the
//! record starts a new pool segment), [`OWN_POOL_BLOCK`] or [`OWN_HEAP_BLOCK`] (the closure
//! got a block of its own, a stub record points to it). Whether a bump record is inline or in
//! a segment is a run-time fact the fast path does not test; `scope_exit`'s arguments give the
//! exact inline / pooled / heap split per scope.
//!
//! # Cost
//!
//! Every probe is one `nop` and a note in `.note.stapsdt` (not loaded at run time). Constant
//! arguments (a record's size, its storage) are immediates in the note (`8@$32`), so the
//! registration probe costs the `nop` alone: +1 instruction per defer. Run-time arguments are
//! registers the code already holds. The run loop's `call_start`/`call_end` would cost two
//! `nop`s per defer; instead they live in a second copy of the run loop ([`run_traced`]),
//! chosen once per scope by reading a *semaphore*: a `u16` that the kernel increments while a
//! tracer is attached to either probe (uprobe `ref_ctr_offset`, Linux 4.20+; bpftrace uses
//! it). Untraced, a scope pays one compare and branch for it; no defer pays anything.
//! `crates/cli/tests/cli/trace.rs` checks that bpftrace sets it: every record exit is timed.
//!
//! Measured with `cargo bench -p frugal-defer [--features usdt] -- --callgrind` (Rust 1.95,
//! x86-64), instructions per defer beyond the call, off → on and untraced: chain inline
//! straight-line 9.1 → 10.0, in a loop 12.0 → 13.0, overflow 14.6 → 15.6; per scope 43 → 60,
//! 50 → 56, 181 → 189 (the two scope probes, `scope_exit`'s four arguments, the semaphore
//! test). With the feature off the code is unchanged (the same counts as before the probes).
//!
//! Why not the `probe` crate (0.5, which emits the same notes and works with bpftrace here):
//! its `probe!` passes every argument through a register (`in(reg)`), so a registration probe
//! with the record's size and storage costs two `mov $imm` besides the `nop`: +3 instructions
//! per defer (by construction: one `mov` per argument). `asm!`'s `const` operands put them
//! into the note instead. The note layout below
//! is the SystemTap v3 one, as in `<sys/sdt.h>` and the `probe` crate. x86-64 Linux only; on
//! other targets the feature compiles to nothing.

use super::{Chain, Shape};
#[cfg(all(feature = "usdt", target_os = "linux", target_arch = "x86_64"))]
use super::{Run, PAD, VT};

/// `defer_register` storage: bump-allocated in the chain's current area (inline or segment).
pub(crate) const BUMP: u64 = 0;
/// `defer_register` storage: the record starts a new 2 KiB pool segment.
pub(crate) const NEW_SEGMENT: u64 = 1;
/// `defer_register` storage: the closure got a pool block of its own (stub record).
pub(crate) const OWN_POOL_BLOCK: u64 = 2;
/// `defer_register` storage: the closure got a heap block of its own (stub record).
pub(crate) const OWN_HEAP_BLOCK: u64 = 3;

#[cfg(all(feature = "usdt", target_os = "linux", target_arch = "x86_64"))]
mod sdt {
    use std::sync::atomic::AtomicU16;

    /// The semaphore of `call_start` and `call_end`: non-zero while a tracer is attached to
    /// either. The kernel (or the tracer, through `/proc/PID/mem`) increments it in place; we
    /// only read it. In `.probes`, where `<sys/sdt.h>` puts semaphores.
    ///
    /// Page-aligned: when a program is started under a tracer (`bpftrace -c`), Linux sets the
    /// semaphore as the program's segments are mapped, in the first writable mapping of the
    /// file page that holds it. Unaligned, that page could also be the tail of the preceding
    /// (RELRO) segment, mapped first and still writable then: the kernel incremented that copy
    /// and the semaphore stayed 0 (seen here: every call probe silent under `-c`, fine with
    /// `-p`). On a page of its own, the only mapping of its file page is the real one.
    #[link_section = ".probes"]
    pub(crate) static CALLS: Semaphore = Semaphore(AtomicU16::new(0));

    /// A USDT semaphore alone on its page (see [`CALLS`]).
    #[repr(C, align(4096))]
    pub(crate) struct Semaphore(pub(crate) AtomicU16);

    /// Emits one SDT probe: a `nop` and its note. `$args` is the note's argument string in
    /// the assembler's syntax (AT&T: `8@{0}` for a register operand, `8@${0}` for a `const`
    /// one); each operand is given in parentheses; `sem` is `0` or `sym STATIC`.
    macro_rules! sdt {
        ($name:literal, $args:literal, sem = 0 $(, ($($op:tt)*))*) => {
            $crate::raw::chain::probes::sdt::sdt!(@emit $name, $args, "0", [$($($op)*,)*])
        };
        ($name:literal, $args:literal, sem = sym $sem:path $(, ($($op:tt)*))*) => {
            $crate::raw::chain::probes::sdt::sdt!(
                @emit $name, $args, "{sem}", [$($($op)*,)* sem = sym $sem,]
            )
        };
        (@emit $name:literal, $args:literal, $semstr:literal, [$($ops:tt)*]) => {
            // SAFETY: the assembly is one `nop` in the code (no register, memory, stack or
            // flag changes) plus data in a note section that nothing at run time reads.
            unsafe {
                ::core::arch::asm!(
                    concat!(
                        "990: nop\n",
                        ".pushsection .note.stapsdt,\"?\",\"note\"\n",
                        ".balign 4\n",
                        ".4byte 992f-991f, 994f-993f, 3\n",
                        "991: .asciz \"stapsdt\"\n",
                        "992: .balign 4\n",
                        "993: .8byte 990b\n",
                        ".8byte _.stapsdt.base\n",
                        ".8byte ", $semstr, "\n",
                        ".asciz \"frugal_defer\"\n",
                        ".asciz \"", $name, "\"\n",
                        ".asciz \"", $args, "\"\n",
                        "994: .balign 4\n",
                        ".popsection\n",
                        ".ifndef _.stapsdt.base\n",
                        ".pushsection .stapsdt.base,\"aGR\",\"progbits\",.stapsdt.base,comdat\n",
                        ".weak _.stapsdt.base\n",
                        ".hidden _.stapsdt.base\n",
                        "_.stapsdt.base: .space 1\n",
                        ".size _.stapsdt.base, 1\n",
                        ".popsection\n",
                        ".endif\n",
                    ),
                    $($ops)*
                    options(att_syntax, nomem, nostack, preserves_flags),
                )
            }
        };
    }
    pub(crate) use sdt;
}

/// Fires `$name` when the feature is on (x86-64 Linux); nothing otherwise.
macro_rules! fire {
    ($($t:tt)*) => {
        #[cfg(all(feature = "usdt", target_os = "linux", target_arch = "x86_64"))]
        sdt::sdt!($($t)*);
    };
}

/// A scope starts running its body.
#[inline(always)]
pub(crate) fn scope_enter() {
    fire!("scope_enter", "", sem = 0);
}

/// A scope ended, with its exact counts.
#[inline(always)]
#[allow(unused_variables)]
pub(crate) fn scope_exit(registered: u64, pooled: u64, heap: u64, panicked: bool) {
    fire!(
        "scope_exit",
        "8@{0} 8@{1} 8@{2} 8@{3}",
        sem = 0,
        (in(reg) registered),
        (in(reg) pooled),
        (in(reg) heap),
        (in(reg) panicked as u64)
    );
}

/// A closure of type `F` was registered with `storage` (a constant: [`BUMP`] …).
#[inline(always)]
pub(super) fn register<F, const STORAGE: u64>() {
    fire!(
        "defer_register",
        "8@${0} 8@${1}",
        sem = 0,
        (const Shape::<F>::RECORD),
        (const STORAGE)
    );
}

/// A closure of type `F` was stored in a block of its own (pool or heap) with a stub record.
#[inline(always)]
pub(super) fn register_stub<F>() {
    if Shape::<F>::CLASS.is_some() {
        register::<F, OWN_POOL_BLOCK>();
    } else {
        register::<F, OWN_HEAP_BLOCK>();
    }
}

/// A handle cancelled its call.
#[inline(always)]
pub(super) fn cancel() {
    fire!("defer_cancel", "", sem = 0);
}

/// A handle ran its call early.
#[inline(always)]
pub(super) fn run_now() {
    fire!("defer_run_now", "", sem = 0);
}

/// A block of pool size class `class` was taken from the free list.
#[inline(always)]
#[allow(unused_variables)]
pub(crate) fn pool_hit(class: usize) {
    fire!("pool_hit", "8@{0}", sem = 0, (in(reg) class));
}

/// A block of pool size class `class` had to be allocated.
#[inline(always)]
#[allow(unused_variables)]
pub(crate) fn pool_miss(class: usize) {
    fire!("pool_miss", "8@{0}", sem = 0, (in(reg) class));
}

/// A scope caught a panic.
#[inline(always)]
pub(crate) fn panic_caught() {
    fire!("panic_caught", "", sem = 0);
}

/// Runs the chain ([`Chain::run_all`]); while a tracer is attached to `call_start` or
/// `call_end`, through [`run_traced`] instead, which fires them around every record.
#[inline(always)]
pub(crate) fn run_all(chain: &Chain) {
    #[cfg(all(feature = "usdt", target_os = "linux", target_arch = "x86_64"))]
    if sdt::CALLS.0.load(std::sync::atomic::Ordering::Relaxed) != 0 {
        // A detached copy, as on the panic path: the chain's address stays private to the
        // function that opened the scope. A panic is carried out of `run_traced` and resumed
        // only once the copy's state (the records already exited) is back in `chain`.
        let (copy, panic) = run_traced(chain.detach());
        chain.reattach(copy);
        if let Some(payload) = panic {
            std::panic::resume_unwind(payload);
        }
        return;
    }
    chain.run_all();
}

/// [`Chain::run_all`] with `call_start` / `call_end` around every record's exit. The loop is
/// the same walk (keep the two in step): unlink the newest record, call its run function, and
/// at a pool segment's top return to the previous segment. A record cancelled or run early
/// through its handle is exited too (its spent run function does nothing), so it fires the
/// pair as well; `defer_cancel` and `defer_run_now` tell those apart.
#[cfg(all(feature = "usdt", target_os = "linux", target_arch = "x86_64"))]
#[cold]
#[inline(never)]
fn run_traced(chain: Chain) -> (Chain, Option<crate::panics::PanicPayload>) {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        /// Stores the loop's cursor back into the chain when the loop ends or unwinds.
        struct Unlinked<'a> {
            chain: &'a Chain,
            cursor: *mut u8,
        }
        impl Drop for Unlinked<'_> {
            fn drop(&mut self) {
                let floor = self.chain.floor.get();
                self.chain.room.set(self.cursor as usize - floor as usize);
            }
        }
        let base = chain.base;
        let mut run = Unlinked {
            chain: &chain,
            cursor: chain.cursor(),
        };
        loop {
            let top = chain.cold().top.get();
            while run.cursor != top {
                let slot = run.cursor;
                // SAFETY: as in `Chain::run_all`: a pending record starts at `slot`
                // (invariant 1) and its `run` word is initialized.
                let exit = unsafe { slot.cast::<Run>().read() };
                // SAFETY: likewise its `size` word, right after.
                let neg_size = unsafe { slot.wrapping_add(VT).cast::<usize>().read() };
                run.cursor = slot.wrapping_sub(neg_size);
                let size = neg_size.wrapping_neg();
                sdt::sdt!(
                    "call_start",
                    "8@{0}",
                    sem = sym sdt::CALLS,
                    (in(reg) size)
                );
                /// Fires `call_end` when the exit returns or unwinds.
                struct End;
                impl Drop for End {
                    fn drop(&mut self) {
                        sdt::sdt!("call_end", "", sem = sym sdt::CALLS);
                    }
                }
                let _end = End;
                // SAFETY: as in `Chain::run_all`: `slot` is the record just unlinked, `exit`
                // matches its closure and storage (invariant 2), called once for it.
                unsafe { exit(PAD, PAD, PAD, slot) };
            }
            if chain.floor.get() == base {
                return;
            }
            // SAFETY: as in `Chain::run_all`: `top` is the current segment's top, a pool
            // segment, and every record in it has exited.
            let (prev_top, prev_cursor, prev_floor) = unsafe { super::pop_segment(top) };
            chain.cold().top.set(prev_top);
            chain.floor.set(prev_floor);
            run.cursor = prev_cursor;
        }
    }));
    (chain, result.err())
}
