//! Error pages rendered once per kind and format, then filled with the request id.
//!
//! A page's text depends only on the kind (status, summary, hint) and the request id, unless
//! details are shown (`proxy_status = "full"`), which `render` handles per request. Rendering
//! the common pages once keeps the error path to two copies instead of a formatter run.

use std::sync::OnceLock;

use super::{Format, Page};
use crate::failure::{Failure, FailureKind, Phase};

/// Stands in for the request id while the templates are rendered. Request ids are
/// `[A-Za-z0-9._:-]` (see `service::request_id`), so they need no escaping in any format.
const MARKER: &str = "GATEHOUSE-REQUEST-ID-MARKER";

/// (before the id, after the id) for each format.
type Template = [(String, String); 3];

fn templates() -> &'static [Template] {
    static TEMPLATES: OnceLock<Vec<Template>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        FailureKind::ALL
            .iter()
            .map(|&kind| {
                let failure = Failure::new(kind, Phase::Internal, "");
                let page = Page {
                    failure: &failure,
                    status: kind.status(),
                    request_id: MARKER,
                    details: None,
                };
                [Format::Html, Format::Json, Format::Text].map(|format| {
                    let text = page.render(format);
                    let (before, after) = text.split_once(MARKER).unwrap_or((&text, ""));
                    (before.to_owned(), after.to_owned())
                })
            })
            .collect()
    })
}

/// The page for `kind` in `format` with `request_id` filled in.
pub(super) fn page(kind: FailureKind, format: Format, request_id: &str) -> String {
    let format_index = match format {
        Format::Html => 0,
        Format::Json => 1,
        Format::Text => 2,
    };
    let (before, after) = &templates()[kind as usize][format_index];
    let mut text = String::with_capacity(before.len() + request_id.len() + after.len());
    text.push_str(before);
    text.push_str(request_id);
    text.push_str(after);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_direct_rendering_for_every_kind_and_format() {
        for kind in FailureKind::ALL {
            assert_eq!(
                FailureKind::ALL[kind as usize],
                kind,
                "ALL must follow declaration order"
            );
            let failure = Failure::new(kind, Phase::Internal, "");
            let page = Page {
                failure: &failure,
                status: kind.status(),
                request_id: "abc-123",
                details: None,
            };
            for format in [Format::Html, Format::Json, Format::Text] {
                assert_eq!(
                    super::page(kind, format, "abc-123"),
                    page.render(format),
                    "{kind:?} {format:?}"
                );
            }
        }
    }
}
