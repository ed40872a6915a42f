//! Matching access lines with failure lines of the same request, so that one request that
//! failed is counted once: its failure line says the kind, its access line what the client got.
//!
//! nginx writes the failure in error.log and the request in access.log; gatehouse writes a
//! failure warning per attempt and one access record. An access line of a failed request that
//! matches no failure line still counts: as the failure it stands for (its kind guessed from
//! the status for nginx, named by gatehouse's own lines).

use std::collections::HashMap;

use super::record::{AccessLine, Event, Source};

/// How far before an access line (beyond the request's own duration) and after it its
/// failure line may be: both are stamped by the same clock, to the second.
const EARLY_MS: i64 = 2_000;
const LATE_MS: i64 = 1_000;

/// One remembered failure line.
#[derive(Debug, Clone, Copy)]
struct Seen {
    index: usize,
    wall: i64,
    taken: bool,
}

/// The failure lines seen so far, by their request key, and whether an access line took them.
#[derive(Debug, Default)]
pub(crate) struct Correlator {
    by_key: HashMap<String, Vec<Seen>>,
}

impl Correlator {
    /// Remembers failure number `index` (its position in the caller's list).
    pub(crate) fn add_failure(&mut self, index: usize, event: &Event) {
        if let Some(key) = &event.key {
            let wall = event.at.map_or(0, |s| s.wall);
            self.by_key
                .entry(format!("{}|{key}", event.source.name()))
                .or_default()
                .push(Seen {
                    index,
                    wall,
                    taken: false,
                });
        }
    }

    /// The failures (indices) this access line belongs to; empty when none does. Each failure
    /// line is taken by one access line at most.
    pub(crate) fn match_access(&mut self, access: &AccessLine) -> Vec<usize> {
        let event = &access.event;
        let Some(key) = &event.key else {
            return Vec::new();
        };
        let Some(candidates) = self
            .by_key
            .get_mut(&format!("{}|{key}", event.source.name()))
        else {
            return Vec::new();
        };
        let wall = event.at.map_or(0, |s| s.wall);
        let in_window = |at: i64| match event.source {
            // A request id is unique: no window needed.
            Source::Gatehouse | Source::Haproxy => true,
            Source::Nginx => at >= wall - access.took_ms - EARLY_MS && at <= wall + LATE_MS,
        };
        let mut matched = Vec::new();
        for seen in candidates.iter_mut() {
            if matched.len() >= access.attempts {
                break;
            }
            if !seen.taken && in_window(seen.wall) {
                seen.taken = true;
                matched.push(seen.index);
            }
        }
        matched
    }

    /// Forgets failure lines stamped before `wall` (a followed run keeps only recent ones).
    pub(crate) fn forget_before(&mut self, wall: i64) {
        self.by_key.retain(|_, seen| {
            seen.retain(|s| s.wall >= wall);
            !seen.is_empty()
        });
    }
}

/// Joins a whole run: failures keep their kind and take the status of their access line;
/// access lines that match no failure become failures themselves when they stand alone. Also
/// returns how many access lines were neither (normal requests).
pub(crate) fn join(mut failures: Vec<Event>, accesses: Vec<AccessLine>) -> (Vec<Event>, u64) {
    let mut correlator = Correlator::default();
    for (index, event) in failures.iter().enumerate() {
        correlator.add_failure(index, event);
    }
    let mut unmatched = Vec::new();
    let mut normal = 0;
    for access in accesses {
        let matched = correlator.match_access(&access);
        if matched.is_empty() {
            if access.stands_alone {
                unmatched.push(access.event);
            } else {
                normal += 1;
            }
            continue;
        }
        for index in matched {
            if let Some(failure) = failures.get_mut(index) {
                failure.status = failure.status.or(access.event.status);
                if failure.request.is_none() {
                    failure.request = access.event.request.clone();
                }
            }
        }
    }
    failures.extend(unmatched);
    (failures, normal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explain::record::{LineRef, Stamp};
    use gatehouse_proxy::failure::FailureKind;

    fn event(source: Source, key: &str, wall: i64, guessed: bool) -> Event {
        Event {
            source,
            kind: if guessed {
                FailureKind::ConnectionTerminated
            } else {
                FailureKind::ConnectionRefused
            },
            server: "s".into(),
            at: Some(Stamp::zoneless(wall)),
            request: None,
            client: None,
            status: guessed.then_some(502),
            message: String::new(),
            guessed,
            key: Some(key.into()),
            line: LineRef {
                file: "f".into(),
                line: 1,
            },
        }
    }

    #[test]
    fn an_access_line_takes_its_failure_and_the_rest_stand_alone() {
        let failures = vec![event(
            Source::Nginx,
            "1.2.3.4 GET / HTTP/1.1",
            10_000,
            false,
        )];
        let accesses = vec![
            AccessLine {
                event: event(Source::Nginx, "1.2.3.4 GET / HTTP/1.1", 10_000, true),
                took_ms: 0,
                attempts: 1,
                stands_alone: true,
            },
            // Same request an hour later: its own failure, guessed.
            AccessLine {
                event: event(Source::Nginx, "1.2.3.4 GET / HTTP/1.1", 3_610_000, true),
                took_ms: 0,
                attempts: 1,
                stands_alone: true,
            },
        ];
        let (joined, _) = join(failures, accesses);
        assert_eq!(joined.len(), 2);
        assert_eq!(
            (joined[0].kind, joined[0].status),
            (FailureKind::ConnectionRefused, Some(502))
        );
        assert!(joined[1].guessed);
    }

    #[test]
    fn gatehouse_matches_by_request_id_whatever_the_time() {
        let failures = vec![
            event(Source::Gatehouse, "r1", 0, false),
            event(Source::Gatehouse, "r1", 5, false),
        ];
        let accesses = vec![AccessLine {
            event: event(Source::Gatehouse, "r1", 99_000, true),
            took_ms: 0,
            attempts: usize::MAX,
            stands_alone: true,
        }];
        let (joined, _) = join(failures, accesses);
        assert_eq!(
            joined.len(),
            2,
            "two attempts, one access record: two failures"
        );
        assert!(joined.iter().all(|e| e.status == Some(502)));
    }

    #[test]
    fn one_access_line_takes_as_many_failures_as_it_had_attempts() {
        let key = "1.2.3.4 GET /dead HTTP/1.1";
        let failures = (0..3)
            .map(|i| event(Source::Nginx, key, 10_000 + i, false))
            .collect();
        let accesses = vec![
            AccessLine {
                event: event(Source::Nginx, key, 10_000, true),
                took_ms: 0,
                attempts: 2,
                stands_alone: true,
            },
            AccessLine {
                event: event(Source::Nginx, key, 10_000, true),
                took_ms: 0,
                attempts: 1,
                stands_alone: true,
            },
        ];
        let (joined, _) = join(failures, accesses);
        assert_eq!(joined.len(), 3, "{joined:#?}");
        assert!(joined.iter().all(|e| !e.guessed && e.status == Some(502)));
    }

    #[test]
    fn forgotten_lines_are_not_matched() {
        let mut correlator = Correlator::default();
        correlator.add_failure(0, &event(Source::Gatehouse, "r1", 1_000, false));
        correlator.add_failure(1, &event(Source::Gatehouse, "r2", 9_000, false));
        correlator.forget_before(5_000);
        let access = |key| AccessLine {
            event: event(Source::Gatehouse, key, 9_000, true),
            took_ms: 0,
            attempts: usize::MAX,
            stands_alone: true,
        };
        assert!(correlator.match_access(&access("r1")).is_empty());
        assert_eq!(correlator.match_access(&access("r2")), [1]);
        assert!(
            correlator.match_access(&access("r2")).is_empty(),
            "taken once"
        );
    }
}
