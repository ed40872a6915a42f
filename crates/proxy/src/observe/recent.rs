//! The most recent failures, kept in memory for the status page: what an operator would
//! otherwise grep the log for.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Serialize, Serializer};

use super::access_log::{AttemptContext, rfc3339};
use crate::failure::Failure;

/// How many failures the status page shows.
pub const KEPT: usize = 50;

/// One failure as the status page lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RecentFailure {
    /// When it happened; written as RFC 3339, UTC, to the millisecond, when the status page
    /// asks (formatting it for every failure cost more than the rest of the entry).
    #[serde(serialize_with = "as_rfc3339")]
    pub time: SystemTime,
    pub kind: &'static str,
    /// The status this kind of failure answers with.
    pub status: u16,
    /// The status the client finally got (a retry on another server may have ended well);
    /// `None` while the request is still going on.
    pub answered: Option<u16>,
    pub route: Option<String>,
    pub pool: Option<String>,
    pub server: Option<String>,
    pub attempt: u32,
    pub details: String,
    pub hint: &'static str,
    pub request_id: String,
}

impl RecentFailure {
    pub fn new(failure: &Failure, ctx: &AttemptContext<'_>) -> Self {
        Self {
            time: SystemTime::now(),
            kind: failure.kind.token(),
            status: failure.status().as_u16(),
            answered: None,
            route: ctx.route.map(str::to_owned),
            pool: ctx.pool.map(str::to_owned),
            server: ctx.server.map(str::to_owned),
            attempt: ctx.attempt,
            details: failure.details.clone(),
            hint: failure.kind.hint(),
            request_id: ctx.request_id.to_owned(),
        }
    }

    /// [`RecentFailure::time`] as RFC 3339.
    pub fn time_text(&self) -> String {
        rfc3339(self.time)
    }
}

fn as_rfc3339<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(*time))
}

/// The last [`KEPT`] failures, newest last.
#[derive(Debug, Default)]
pub struct RecentFailures {
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    list: VecDeque<RecentFailure>,
    /// How many of `list` are not answered yet: the search for a request's entries stops once
    /// it has seen them all, usually at once (they are the newest).
    unanswered: usize,
}

impl RecentFailures {
    pub fn push(&self, failure: RecentFailure) {
        let mut entries = self.lock();
        if entries.list.len() == KEPT
            && let Some(oldest) = entries.list.pop_front()
            && oldest.answered.is_none()
        {
            entries.unanswered -= 1;
        }
        if failure.answered.is_none() {
            entries.unanswered += 1;
        }
        entries.list.push_back(failure);
    }

    /// Notes the status a request that failed on the way was finally answered with.
    pub fn answered(&self, request_id: &str, status: u16) {
        let mut entries = self.lock();
        let Entries { list, unanswered } = &mut *entries;
        let mut left = *unanswered;
        for entry in list.iter_mut().rev() {
            if left == 0 {
                break;
            }
            if entry.answered.is_none() {
                left -= 1;
                if entry.request_id == request_id {
                    entry.answered = Some(status);
                    *unanswered -= 1;
                }
            }
        }
    }

    /// Newest first.
    pub fn newest_first(&self) -> Vec<RecentFailure> {
        self.lock().list.iter().rev().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::{FailureKind, Phase};

    #[test]
    fn keeps_the_newest_failures_only() {
        let recent = RecentFailures::default();
        for n in 0..KEPT + 5 {
            let failure =
                Failure::new(FailureKind::ConnectionRefused, Phase::Connecting, "refused");
            let id = format!("id-{n}");
            recent.push(RecentFailure::new(
                &failure,
                &AttemptContext {
                    request_id: &id,
                    route: Some("/"),
                    pool: Some("app"),
                    server: Some("app/127.0.0.1:1"),
                    attempt: 1,
                    request_sent: false,
                },
            ));
        }
        let listed = recent.newest_first();
        assert_eq!(listed.len(), KEPT);
        assert_eq!(listed[0].request_id, format!("id-{}", KEPT + 4));
        assert_eq!(listed[KEPT - 1].request_id, "id-5");
        assert_eq!(listed[0].kind, "connection_refused");
        assert_eq!(listed[0].status, 502);
        assert_eq!(listed[0].hint, FailureKind::ConnectionRefused.hint());
        assert_eq!(listed[0].route.as_deref(), Some("/"));
        assert_eq!(listed[0].answered, None);

        // The request was retried and answered 200 in the end.
        recent.answered(&format!("id-{}", KEPT + 4), 200);
        let listed = recent.newest_first();
        assert_eq!(listed[0].answered, Some(200));
        assert_eq!(listed[1].answered, None, "other requests are untouched");

        // The oldest entry still kept, after the older ones were let go unanswered.
        recent.answered("id-5", 502);
        let listed = recent.newest_first();
        assert_eq!(listed[KEPT - 1].answered, Some(502));
        assert!(listed[1..KEPT - 1].iter().all(|e| e.answered.is_none()));
    }

    fn push(recent: &RecentFailures, id: &str, attempt: u32) {
        let failure = Failure::new(FailureKind::ConnectionRefused, Phase::Connecting, "refused");
        recent.push(RecentFailure::new(
            &failure,
            &AttemptContext {
                request_id: id,
                route: None,
                pool: None,
                server: None,
                attempt,
                request_sent: false,
            },
        ));
    }

    #[test]
    fn every_entry_of_a_request_learns_its_answer_whatever_came_between() {
        let recent = RecentFailures::default();
        push(&recent, "a", 1);
        push(&recent, "b", 1);
        push(&recent, "a", 2);
        push(&recent, "c", 1);
        recent.answered("b", 200);
        recent.answered("a", 502);
        let answers: Vec<_> = recent
            .newest_first()
            .iter()
            .map(|e| (e.request_id.clone(), e.answered))
            .collect();
        assert_eq!(
            answers,
            [
                ("c".to_owned(), None),
                ("a".to_owned(), Some(502)),
                ("b".to_owned(), Some(200)),
                ("a".to_owned(), Some(502)),
            ]
        );
        // Answered once: a later call for the same id changes nothing.
        recent.answered("a", 200);
        assert_eq!(recent.newest_first()[1].answered, Some(502));
    }
}
