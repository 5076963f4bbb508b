//! A bump allocator for policies.
//!
//! A policy instance lives for one decision and is then thrown away, so
//! nothing needs freeing: allocation is a pointer bump, and the last block
//! can be freed or grown in place (which covers `Vec`/`String` growth).
//!
//! The point is speed: Rust's default wasm allocator always calls
//! `memory.grow` for its first allocation, and in the host every growth of a
//! fresh instance's memory costs two `mprotect` calls with TLB shootdowns.
//! This allocator first uses the room the module's initial memory already has
//! above `__heap_base` (`airlock policy build` links policies with 1 MiB of
//! initial memory), and grows only past it.
//!
//! Disable the `bump-allocator` feature to use Rust's default allocator.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::UnsafeCell;

const PAGE: usize = 64 * 1024;

unsafe extern "C" {
    /// First free byte after data and stack, placed by the linker.
    static __heap_base: u8;
}

pub struct BumpAllocator {
    next: UnsafeCell<usize>,
}

// SAFETY: policies run single-threaded (wasm32 without threads).
unsafe impl Sync for BumpAllocator {}

impl BumpAllocator {
    pub const fn new() -> Self {
        BumpAllocator {
            next: UnsafeCell::new(0),
        }
    }

    /// Make sure memory extends to `end`; false if the host refuses.
    fn ensure(end: usize) -> bool {
        let have = wasm32::memory_size(0) * PAGE;
        if end <= have {
            return true;
        }
        wasm32::memory_grow(0, (end - have).div_ceil(PAGE)) != usize::MAX
    }
}

impl Default for BumpAllocator {
    fn default() -> Self {
        Self::new()
    }
}

unsafe impl GlobalAlloc for BumpAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: single-threaded; no other reference to `next` is live.
        let next = unsafe { &mut *self.next.get() };
        if *next == 0 {
            *next = &raw const __heap_base as usize;
        }
        let Some(start) = next
            .checked_add(layout.align() - 1)
            .map(|n| n & !(layout.align() - 1))
        else {
            return core::ptr::null_mut();
        };
        let Some(end) = start.checked_add(layout.size()) else {
            return core::ptr::null_mut();
        };
        if !Self::ensure(end) {
            return core::ptr::null_mut();
        }
        *next = end;
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as in `alloc`.
        let next = unsafe { &mut *self.next.get() };
        if ptr as usize + layout.size() == *next {
            *next = ptr as usize;
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `alloc`.
        let next = unsafe { &mut *self.next.get() };
        if ptr as usize + layout.size() == *next {
            // The last block grows or shrinks in place.
            let Some(end) = (ptr as usize).checked_add(new_size) else {
                return core::ptr::null_mut();
            };
            if !Self::ensure(end) {
                return core::ptr::null_mut();
            }
            *next = end;
            return ptr;
        }
        // SAFETY: the caller guarantees `layout` with `new_size` is valid.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live and at least min(old, new) long.
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}
