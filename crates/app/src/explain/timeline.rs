//! How a group's failures spread over time: counts per minute, hour or day (whichever fits the
//! time the group spans), so a person on call sees at a glance whether it is still going on,
//! started with a deploy, or comes and goes.

use serde::Serialize;

use super::record::format_utc;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

#[derive(Debug, Serialize)]
pub(crate) struct Timeline {
    /// The width of each bucket: `1m`, `1h` or `1d`.
    pub(crate) bucket: &'static str,
    /// The buckets that hold failures, oldest first.
    pub(crate) counts: Vec<Bucket>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Bucket {
    pub(crate) from: String,
    pub(crate) count: u64,
    #[serde(skip)]
    start_ms: i64,
}

/// The timeline of failures stamped at `times` (milliseconds since the epoch, UTC).
pub(crate) fn timeline(mut times: Vec<i64>) -> Option<Timeline> {
    times.sort_unstable();
    let (first, last) = (*times.first()?, *times.last()?);
    let span = last.saturating_sub(first);
    let (bucket, size) = if span <= HOUR {
        ("1m", MINUTE)
    } else if span <= 2 * DAY {
        ("1h", HOUR)
    } else {
        ("1d", DAY)
    };
    let mut counts: Vec<Bucket> = Vec::new();
    for t in times {
        let start = t.div_euclid(size) * size;
        match counts.last_mut() {
            Some(b) if b.start_ms == start => b.count += 1,
            _ => counts.push(Bucket {
                from: format_utc(start),
                count: 1,
                start_ms: start,
            }),
        }
    }
    Some(Timeline { bucket, counts })
}

impl Timeline {
    /// The last `n` buckets in a line: `20:57 ×3, 20:58 ×1` (per minute), `12-05 20h ×4` (per
    /// hour), `2026-12-05 ×9` (per day).
    pub(crate) fn recent(&self, n: usize) -> String {
        let skip = self.counts.len().saturating_sub(n);
        let shown: Vec<String> = self
            .counts
            .iter()
            .skip(skip)
            .map(|b| {
                let label = match self.bucket {
                    "1m" => b.from.get(11..16).map(str::to_owned),
                    "1h" => b
                        .from
                        .get(5..13)
                        .map(|s| format!("{}h", s.replace('T', " "))),
                    _ => b.from.get(..10).map(str::to_owned),
                };
                format!("{} ×{}", label.unwrap_or_else(|| b.from.clone()), b.count)
            })
            .collect();
        let earlier = if skip > 0 {
            format!("(+{skip} earlier) ")
        } else {
            String::new()
        };
        format!("{earlier}{}", shown.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_width_follows_the_span() {
        let t0 = 1_796_504_263_000; // 2026-12-05T20:57:43Z
        let minutes = timeline(vec![t0, t0 + 1000, t0 + 3 * MINUTE]);
        let Some(minutes) = minutes else {
            panic!("no timeline")
        };
        assert_eq!(minutes.bucket, "1m");
        assert_eq!(minutes.recent(10), "20:57 ×2, 21:00 ×1");
        let Some(hours) = timeline(vec![t0 + 5 * HOUR, t0]) else {
            panic!("no timeline")
        };
        assert_eq!(hours.bucket, "1h");
        assert_eq!(hours.recent(1), "(+1 earlier) 12-06 01h ×1");
        let Some(days) = timeline(vec![t0, t0 + 3 * DAY]) else {
            panic!("no timeline")
        };
        assert_eq!(days.recent(5), "2026-12-05 ×1, 2026-12-08 ×1");
        assert!(timeline(Vec::new()).is_none());
    }
}
