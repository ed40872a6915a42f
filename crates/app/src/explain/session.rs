//! One run over the input: every line is parsed once and counted as a failure, an access line
//! to match, a client-side termination, normal, blank, before `--since`, or unreadable.
//!
//! In a batch run everything is kept and joined at the end ([`Session::finish`]). When
//! following, a failure is printed as soon as it is read, and an access line that may stand
//! for a failure waits a moment for its failure line (nginx writes error.log first, but the
//! two files are read in turns) before it is printed as a failure of its own.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::correlate::{Correlator, join};
use super::detect::parse_line;
use super::group::{ClientGroup, Group, group, group_client_side};
use super::record::{AccessLine, ClientSide, Event, LineRef, Parsed};
use super::report::Live;

/// How many unreadable lines are shown (all are counted).
const UNREADABLE_EXAMPLES: usize = 5;
/// How many access lines of requests that did not fail are kept to tell failure lines what
/// the client got; beyond, they are only counted (memory stays bounded on huge logs).
const KEPT_NORMAL_ACCESS: usize = 100_000;
/// How long a followed access line waits for its failure line.
const ACCESS_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct Counts {
    pub(crate) lines: u64,
    pub(crate) failures: u64,
    pub(crate) normal: u64,
    pub(crate) client_side: u64,
    pub(crate) unreadable: u64,
    pub(crate) blank: u64,
    pub(crate) before_since: u64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Unreadable {
    #[serde(flatten)]
    pub(crate) at: LineRef,
    pub(crate) text: String,
}

#[derive(Debug)]
pub(crate) struct Session {
    since_ms: Option<i64>,
    pub(crate) counts: Counts,
    failures: Vec<Event>,
    accesses: Vec<AccessLine>,
    client_side: Vec<ClientSide>,
    pub(crate) unreadable: Vec<Unreadable>,
    /// Access lines kept only to match failure lines (see [`KEPT_NORMAL_ACCESS`]).
    kept_normal: usize,
    live: Option<Following>,
}

/// State of a followed run. Failures are printed, not kept: memory stays flat however long
/// it runs (the correlator forgets lines older than [`REMEMBERED_MS`]).
#[derive(Debug)]
struct Following {
    out: Live,
    correlator: Correlator,
    waiting: Vec<(Instant, AccessLine)>,
    /// Failures printed so far (the correlator's indices).
    printed: usize,
    /// The latest time stamp read.
    newest_wall: i64,
}

/// How long (by the logs' clock) a followed failure line can still be matched by its access
/// line.
const REMEMBERED_MS: i64 = 10 * 60 * 1000;

/// The result of a batch run.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) counts: Counts,
    pub(crate) groups: Vec<Group>,
    pub(crate) client_side: Vec<ClientGroup>,
    pub(crate) unreadable: Vec<Unreadable>,
}

impl Session {
    pub(crate) fn new(since_ms: Option<i64>, live: Option<Live>) -> Self {
        Self {
            since_ms,
            counts: Counts::default(),
            failures: Vec::new(),
            accesses: Vec::new(),
            client_side: Vec::new(),
            unreadable: Vec::new(),
            kept_normal: 0,
            live: live.map(|out| Following {
                out,
                correlator: Correlator::default(),
                waiting: Vec::new(),
                printed: 0,
                newest_wall: i64::MIN,
            }),
        }
    }

    /// One line (without its newline); `oversized` when it was cut at the length limit.
    pub(crate) fn line(&mut self, file: &str, number: u64, bytes: &[u8], oversized: bool) {
        self.counts.lines += 1;
        let at = LineRef {
            file: file.to_owned(),
            line: number,
        };
        let text = String::from_utf8_lossy(bytes);
        let parsed = if oversized {
            Parsed::Unreadable
        } else {
            parse_line(&text, at.clone())
        };
        let time = match &parsed {
            Parsed::Failure(e) => e.at,
            Parsed::Access(a) => a.event.at,
            Parsed::ClientSide(c) => c.at,
            Parsed::Normal(at) => *at,
            Parsed::Blank | Parsed::Unreadable => None,
        };
        if let (Some(since), Some(time)) = (self.since_ms, time)
            && time.utc < since
        {
            self.counts.before_since += 1;
            return;
        }
        match parsed {
            Parsed::Failure(event) => self.failure(*event),
            Parsed::Access(access) => self.access(*access),
            Parsed::ClientSide(c) => {
                self.counts.client_side += 1;
                self.client_side.push(*c);
            }
            Parsed::Normal(_) => self.counts.normal += 1,
            Parsed::Blank => self.counts.blank += 1,
            Parsed::Unreadable => {
                self.counts.unreadable += 1;
                let shown = Unreadable {
                    at,
                    text: printable(&text),
                };
                if let Some(live) = &mut self.live {
                    live.out.unreadable(&shown);
                } else if self.unreadable.len() < UNREADABLE_EXAMPLES {
                    self.unreadable.push(shown);
                }
            }
        }
    }

    fn failure(&mut self, event: Event) {
        self.counts.failures += 1;
        match &mut self.live {
            Some(live) => {
                live.correlator.add_failure(live.printed, &event);
                live.printed += 1;
                if let Some(at) = event.at {
                    live.newest_wall = live.newest_wall.max(at.wall);
                }
                live.out.failure(&event);
            }
            None => self.failures.push(event),
        }
    }

    fn access(&mut self, access: AccessLine) {
        if !access.stands_alone && self.kept_normal >= KEPT_NORMAL_ACCESS {
            self.counts.normal += 1;
            return;
        }
        self.kept_normal += usize::from(!access.stands_alone);
        match &mut self.live {
            Some(live) => live.waiting.push((Instant::now(), access)),
            None => self.accesses.push(access),
        }
    }

    /// When following: settles the access lines that waited long enough (all when `all`).
    pub(crate) fn settle(&mut self, all: bool) {
        let Some(live) = &mut self.live else {
            return;
        };
        let now = Instant::now();
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut live.waiting)
            .into_iter()
            .partition(|(since, _)| all || now.duration_since(*since) >= ACCESS_GRACE);
        live.waiting = waiting;
        if live.newest_wall != i64::MIN {
            live.correlator
                .forget_before(live.newest_wall.saturating_sub(REMEMBERED_MS));
        }
        for (_, access) in due {
            if !access.stands_alone {
                self.kept_normal = self.kept_normal.saturating_sub(1);
                if live.correlator.match_access(&access).is_empty() {
                    self.counts.normal += 1;
                }
            } else if live.correlator.match_access(&access).is_empty() {
                self.counts.failures += 1;
                live.out.failure(&access.event);
            }
        }
    }

    /// Whether any failure was found (for the exit code of a followed run).
    pub(crate) fn found_failures(&self) -> bool {
        self.counts.failures > 0
    }

    /// Ends a batch run: joins access lines with failures and groups them.
    pub(crate) fn finish(self) -> Outcome {
        let (events, normal) = join(self.failures, self.accesses);
        let mut counts = self.counts;
        counts.failures = events.len() as u64;
        counts.normal += normal;
        Outcome {
            counts,
            groups: group(events),
            client_side: group_client_side(self.client_side),
            unreadable: self.unreadable,
        }
    }
}

/// A line shown as an example of what could not be read: at most 160 characters, control
/// characters as `?`.
fn printable(text: &str) -> String {
    let mut shown: String = text
        .chars()
        .take(160)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().nth(160).is_some() {
        shown.push('…');
    }
    shown
}
