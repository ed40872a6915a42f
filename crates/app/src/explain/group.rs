//! Failures grouped by source × kind × upstream server: how many, when first and last, what
//! the clients got, a few example requests, and the cause and fix of the group.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::advice::{advise, cause, client_side};
use super::record::{ClientSide, Event, LineRef, Source, format_utc};
use super::timeline::{Timeline, timeline};

/// How many example requests a group shows.
const EXAMPLES: usize = 3;

#[derive(Debug, Serialize)]
pub(crate) struct Group {
    pub(crate) kind: &'static str,
    pub(crate) source: Source,
    pub(crate) server: String,
    pub(crate) count: u64,
    /// How many of them had their kind guessed from an access line's status and timings.
    pub(crate) guessed: u64,
    pub(crate) first_seen: Option<String>,
    pub(crate) last_seen: Option<String>,
    /// Status → how many clients got it, where a line says.
    pub(crate) client_statuses: BTreeMap<u16, u64>,
    /// The status gatehouse answers for this kind.
    pub(crate) gatehouse_status: u16,
    /// What happened, for anyone.
    pub(crate) summary: &'static str,
    /// The usual root cause (the kind's hint, as in gatehouse's own log line).
    pub(crate) cause: String,
    /// What to change, in the terms of the program that wrote the log.
    pub(crate) fix: String,
    pub(crate) directives: Vec<&'static str>,
    pub(crate) examples: Vec<Example>,
    /// Failures per minute, hour or day.
    pub(crate) timeline: Option<Timeline>,
    #[serde(skip)]
    times: Vec<i64>,
    #[serde(skip)]
    first_ms: i64,
    #[serde(skip)]
    last_ms: i64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Example {
    #[serde(flatten)]
    pub(crate) at: LineRef,
    pub(crate) time: Option<String>,
    pub(crate) request: Option<String>,
    pub(crate) client: Option<String>,
    pub(crate) status: Option<u16>,
    pub(crate) message: String,
    pub(crate) guessed: bool,
}

/// Client-side HAProxy terminations, grouped by state and server.
#[derive(Debug, Serialize)]
pub(crate) struct ClientGroup {
    pub(crate) source: Source,
    pub(crate) state: String,
    pub(crate) server: String,
    pub(crate) count: u64,
    pub(crate) meaning: &'static str,
    pub(crate) directive: Option<&'static str>,
    pub(crate) example: LineRef,
}

/// Groups failures; most frequent first, then by kind and server for a stable order.
pub(crate) fn group(events: Vec<Event>) -> Vec<Group> {
    let mut groups: HashMap<(Source, &'static str, String), Group> = HashMap::new();
    for e in events {
        let key = (e.source, e.kind.token(), e.server.clone());
        let group = groups.entry(key).or_insert_with(|| {
            let advice = advise(e.source, e.kind, &e.server);
            Group {
                kind: e.kind.token(),
                source: e.source,
                server: e.server.clone(),
                count: 0,
                guessed: 0,
                first_seen: None,
                last_seen: None,
                client_statuses: BTreeMap::new(),
                gatehouse_status: e.kind.status().as_u16(),
                summary: e.kind.summary(),
                cause: cause(e.source, e.kind),
                fix: advice.fix,
                directives: advice.directives,
                examples: Vec::new(),
                timeline: None,
                times: Vec::new(),
                first_ms: i64::MAX,
                last_ms: i64::MIN,
            }
        });
        group.count += 1;
        group.guessed += u64::from(e.guessed);
        if let Some(status) = e.status {
            *group.client_statuses.entry(status).or_default() += 1;
        }
        if let Some(at) = e.at {
            group.first_ms = group.first_ms.min(at.utc);
            group.last_ms = group.last_ms.max(at.utc);
            group.times.push(at.utc);
        }
        if group.examples.len() < EXAMPLES {
            group.examples.push(Example {
                time: e.at.map(|s| format_utc(s.utc)),
                at: e.line,
                request: e.request,
                client: e.client,
                status: e.status,
                message: e.message,
                guessed: e.guessed,
            });
        }
    }
    let mut groups: Vec<Group> = groups.into_values().collect();
    for g in &mut groups {
        if g.first_ms != i64::MAX {
            g.first_seen = Some(format_utc(g.first_ms));
            g.last_seen = Some(format_utc(g.last_ms));
        }
        g.timeline = timeline(std::mem::take(&mut g.times));
    }
    groups.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.kind.cmp(b.kind))
            .then(a.source.cmp(&b.source))
            .then(a.server.cmp(&b.server))
    });
    groups
}

pub(crate) fn group_client_side(items: Vec<ClientSide>) -> Vec<ClientGroup> {
    let mut groups: Vec<ClientGroup> = Vec::new();
    for item in items {
        if let Some(g) = groups
            .iter_mut()
            .find(|g| g.state == item.state && g.server == item.server && g.source == item.source)
        {
            g.count += 1;
            continue;
        }
        let (meaning, directive) = client_side(&item.state);
        groups.push(ClientGroup {
            source: item.source,
            state: item.state,
            server: item.server,
            count: 1,
            meaning,
            directive,
            example: item.line,
        });
    }
    groups.sort_by(|a, b| b.count.cmp(&a.count).then(a.state.cmp(&b.state)));
    groups
}
