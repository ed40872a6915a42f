//! The Prometheus text exposition format, read back from a scrape of `/metrics`.

use std::collections::BTreeMap;

/// One sample line of a scrape.
#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of a text-format scrape (comments skipped; a label value's escapes decoded).
pub fn parse_samples(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = line[..name_end].to_owned();
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(after) = rest.strip_prefix('{') {
            let mut chars = after.char_indices().peekable();
            let mut end = after.len();
            loop {
                while chars.peek().is_some_and(|&(_, c)| c == ',' || c == ' ') {
                    chars.next();
                }
                match chars.peek() {
                    Some(&(at, '}')) => {
                        end = at + 1;
                        break;
                    }
                    None => break,
                    Some(_) => {}
                }
                let key: String = chars
                    .by_ref()
                    .map(|(_, c)| c)
                    .take_while(|&c| c != '=')
                    .collect();
                assert_eq!(
                    chars.next().map(|(_, c)| c),
                    Some('"'),
                    "bad label {key:?} in {line}"
                );
                let mut value = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('n') => value.push('\n'),
                            Some(other) => value.push(other),
                            None => {}
                        },
                        c => value.push(c),
                    }
                }
                labels.insert(key.trim().to_owned(), value);
            }
            rest = &after[end..];
        }
        let value = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN);
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

/// The sum of the samples named `name` whose labels include `labels` (a missing label counts
/// as `""`), and how many there were.
pub fn sum(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> (f64, usize) {
    let matching: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map_or("", String::as_str) == *v)
        })
        .collect();
    (matching.iter().map(|s| s.value).sum(), matching.len())
}
