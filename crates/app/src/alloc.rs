//! The global allocator: mimalloc through its C interface.
//!
//! Rust's allocator interface passes an alignment with every request, and the `mimalloc`
//! crate hands each one to `mi_malloc_aligned`, whose checks and fallback cost a few hundred
//! instructions per proxied request. Nearly every Rust allocation asks for an alignment that
//! mimalloc's plain `mi_malloc` already guarantees (its rule, `mi_malloc_is_naturally_aligned`
//! in alloc-aligned.c: any alignment up to 16 that is not larger than the size), so those go
//! straight to the plain calls; only the rest take the aligned ones.
//!
//! The only module of the workspace allowed `unsafe` code: an allocator is called through raw
//! pointers by definition.
#![allow(
    unsafe_code,
    reason = "a global allocator implements an unsafe trait over FFI calls"
)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment every block of `mi_malloc` has, when the size is at least that large
/// (`MI_MAX_ALIGN_SIZE`).
const PLAIN_ALIGNMENT: usize = 16;

/// mimalloc as the global allocator.
#[derive(Debug)]
pub(crate) struct MiMalloc;

/// Whether a block of `size` bytes from the plain calls is aligned to `align`.
#[inline]
fn plain_is_aligned(size: usize, align: usize) -> bool {
    align <= PLAIN_ALIGNMENT && align <= size
}

// SAFETY: every call forwards to mimalloc, which returns blocks of at least the size asked
// for, aligned as asked: through the aligned calls, or through the plain ones only where
// mimalloc guarantees that alignment (see `plain_is_aligned`). `mi_free` frees a block from
// either.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain FFI calls; a null return is the allocation failure the interface allows.
        unsafe {
            if plain_is_aligned(layout.size(), layout.align()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            if plain_is_aligned(layout.size(), layout.align()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the interface's contract), so from mimalloc.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from mimalloc; the new block is aligned as in `alloc`.
        unsafe {
            if plain_is_aligned(new_size, layout.align()) {
                mi::mi_realloc(ptr.cast(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks of every size from 1 byte to 4 KiB, at every alignment up to 4 KiB, come back
    /// aligned as asked, from both the plain and the aligned calls, and survive a realloc.
    #[test]
    fn every_block_is_aligned_as_asked() {
        let mut held = Vec::new();
        for size in (1..=4096).step_by(7).chain([16, 24, 40, 48, 1024, 4096]) {
            for shift in 0..=12 {
                let align = 1usize << shift;
                let layout = Layout::from_size_align(size, align).expect("valid layout");
                // SAFETY: a non-zero size; the block is freed below with its layout.
                unsafe {
                    let block = MiMalloc.alloc(layout);
                    assert!(!block.is_null());
                    assert_eq!(block as usize % align, 0, "size {size}, align {align}");
                    block.write_bytes(0xA5, size);
                    let zeroed = MiMalloc.alloc_zeroed(layout);
                    assert_eq!(
                        zeroed as usize % align,
                        0,
                        "zeroed size {size}, align {align}"
                    );
                    assert!(
                        std::slice::from_raw_parts(zeroed, size)
                            .iter()
                            .all(|&b| b == 0)
                    );
                    let grown = MiMalloc.realloc(block, layout, size * 2 + 3);
                    assert_eq!(
                        grown as usize % align,
                        0,
                        "realloc size {size}, align {align}"
                    );
                    assert!(
                        std::slice::from_raw_parts(grown, size)
                            .iter()
                            .all(|&b| b == 0xA5)
                    );
                    held.push((
                        grown,
                        Layout::from_size_align(size * 2 + 3, align).expect("valid"),
                    ));
                    held.push((zeroed, layout));
                }
            }
        }
        for (block, layout) in held {
            // SAFETY: each block came from `MiMalloc` with this layout.
            unsafe { MiMalloc.dealloc(block, layout) }
        }
    }
}
