//! Futures boxed where they are built.
//!
//! `Box::pin(make())` builds the value on the stack and then copies all of it into the box:
//! for a future, its whole size (every state it may reach), although only its arguments are
//! set before it first runs. The request path boxes a few futures several KiB large per
//! request, and that copy was the largest one it made. Allocating first lets the compiler
//! write the future straight into the box, which it does for those futures (a probe on the
//! copies a request makes shows it); it is not promised for every value.

use std::pin::Pin;

/// `make()`'s value in a pinned box, allocated before `make` runs so that the value can be
/// built in place.
#[inline(always)]
pub fn pinned<T>(make: impl FnOnce() -> T) -> Pin<Box<T>> {
    let slot = Box::new_uninit();
    Box::into_pin(Box::write(slot, make()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_future_boxed_in_place_runs_to_its_output() {
        let words = ["boxed", "in", "place"].map(String::from);
        let future = pinned(|| async move { words.join(" ") });
        assert_eq!(future.await, "boxed in place");
    }

    #[test]
    fn a_large_value_is_kept_whole() {
        let boxed = pinned(|| [7u8; 8192]);
        assert!(boxed.iter().all(|&b| b == 7));
    }
}
