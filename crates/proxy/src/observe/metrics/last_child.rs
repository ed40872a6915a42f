//! The request metrics' children (the counter or histogram for one set of label values) last
//! used on this thread, kept at hand. `with_label_values` hashes the values, takes the vector's
//! lock, looks the child up and clones it, for every request; the requests a worker answers in
//! a row mostly share their route, status and pool, so most find the child they need here and
//! update it directly. A miss costs one lookup, as before, and the child it finds replaces the
//! one kept (in the same strings, so without an allocation once they are long enough).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::LocalKey;

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec};

/// A child kept for one `Metrics` (tests make several in one process) and its label values.
pub(super) struct Last<C> {
    owner: u64,
    labels: Vec<String>,
    child: C,
}

pub(super) type Slot<C> = RefCell<Option<Last<C>>>;

thread_local! {
    pub(super) static REQUESTS: Slot<IntCounter> = const { RefCell::new(None) };
    pub(super) static REQUEST_DURATION: Slot<Histogram> = const { RefCell::new(None) };
    pub(super) static FIRST_BYTE: Slot<Histogram> = const { RefCell::new(None) };
}

/// A number for each `Metrics`, so that no child outlives the one it belongs to in a slot.
pub(super) fn owner_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub(super) fn inc(
    slot: &'static LocalKey<Slot<IntCounter>>,
    owner: u64,
    vec: &IntCounterVec,
    labels: &[&str],
) {
    with_child(
        slot,
        owner,
        labels,
        || vec.with_label_values(labels),
        IntCounter::inc,
    );
}

pub(super) fn observe(
    slot: &'static LocalKey<Slot<Histogram>>,
    owner: u64,
    vec: &HistogramVec,
    labels: &[&str],
    value: f64,
) {
    with_child(
        slot,
        owner,
        labels,
        || vec.with_label_values(labels),
        |child| {
            child.observe(value);
        },
    );
}

fn with_child<C>(
    slot: &'static LocalKey<Slot<C>>,
    owner: u64,
    labels: &[&str],
    lookup: impl FnOnce() -> C,
    update: impl Fn(&C),
) {
    let mut lookup = Some(lookup);
    let kept = slot.try_with(|slot| {
        let Ok(mut slot) = slot.try_borrow_mut() else {
            return false;
        };
        match &mut *slot {
            Some(last) if last.owner == owner && same_labels(&last.labels, labels) => {
                update(&last.child);
            }
            kept => {
                let Some(lookup) = lookup.take() else {
                    return false;
                };
                let child = lookup();
                update(&child);
                let mut strings = kept.take().map(|last| last.labels).unwrap_or_default();
                strings.resize_with(labels.len(), String::new);
                for (kept, label) in strings.iter_mut().zip(labels) {
                    kept.clear();
                    kept.push_str(label);
                }
                *kept = Some(Last {
                    owner,
                    labels: strings,
                    child,
                });
            }
        }
        true
    });
    // While the thread ends (its slots are gone), or if a slot is somehow in use: look it up.
    if kept != Ok(true)
        && let Some(lookup) = lookup
    {
        update(&lookup());
    }
}

fn same_labels(kept: &[String], labels: &[&str]) -> bool {
    kept.iter().map(String::as_str).eq(labels.iter().copied())
}
