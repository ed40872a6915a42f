//! One orderer among the instances sharing a `state_dir`: an advisory lock (`flock`, through
//! `std::fs::File::try_lock`) on `acme/order.lock`. The kernel drops it when its holder exits
//! or crashes, so there is no stale lock to detect; an instance that finds it taken waits and
//! reads the certificate the holder writes.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::Path;

/// Held while this instance orders; released on drop.
#[derive(Debug)]
pub struct OrderLock {
    _file: File,
}

/// The lock when free; `Ok(None)` when another instance holds it.
pub fn try_lock(dir: &Path) -> io::Result<Option<OrderLock>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("order.lock"))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(OrderLock { _file: file })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = try_lock(dir.path()).unwrap().expect("free");
        assert!(try_lock(dir.path()).unwrap().is_none(), "taken");
        drop(first);
        assert!(try_lock(dir.path()).unwrap().is_some(), "free again");
    }
}
