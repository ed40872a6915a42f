//! Responses gatehouse generates itself when a request fails: status, headers and a body in the
//! format the client asked for.
//!
//! The status and wording come from the failure kind (see `crate::failure`); this module only
//! chooses the representation (RFC 9110 §12.5.1 `Accept`): an HTML page (the default),
//! `application/problem+json` (RFC 9457) or `text/plain`. Every error response carries
//! `Cache-Control: no-store`, `X-Request-Id` and, unless disabled, a `Proxy-Status` member.

mod negotiate;
mod template;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

pub use negotiate::{Format, negotiate};

use crate::body::ProxyBody;
use crate::failure::Failure;
use crate::failure::proxy_status::ProxyStatusWriter;

/// How a failure should be answered.
#[derive(Debug, Clone, Copy)]
pub struct ErrorContext<'a> {
    pub request_id: &'a str,
    /// The request's `Accept`; `None` when absent or when no request could be parsed.
    pub accept: Option<&'a HeaderValue>,
    pub head_only: bool,
    pub next_hop: Option<&'a str>,
    pub proxy_status: &'a ProxyStatusWriter,
}

/// Renders the error response for `failure`.
pub fn render(failure: &Failure, ctx: &ErrorContext<'_>) -> Response<ProxyBody> {
    let status = failure.status();
    let format = ctx.accept.map_or(Format::Html, negotiate);
    let show_details = ctx.proxy_status.mode() == gatehouse_config::ProxyStatusMode::Full;
    let content_type = match format {
        Format::Html => "text/html; charset=utf-8",
        Format::Json => "application/problem+json",
        Format::Text => "text/plain; charset=utf-8",
    };
    let body = if show_details || failure.note.is_some() || status != failure.kind.status() {
        // Details and non-default statuses vary per failure: render this one.
        let page = Page {
            failure,
            status,
            request_id: ctx.request_id,
            details: show_details.then_some(failure.details.as_str()),
        };
        page.render(format)
    } else {
        template::page(failure.kind, format, ctx.request_id)
    };
    let body = bytes::Bytes::from(body);
    let length = body.len();
    let mut response = Response::new(if ctx.head_only {
        ProxyBody::empty()
    } else {
        ProxyBody::full(body)
    });
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(id) = crate::forward::request_id_value(ctx.request_id) {
        headers.insert(crate::forward::X_REQUEST_ID, id);
    }
    if let Some(member) = ctx.proxy_status.for_failure(failure, ctx.next_hop) {
        headers.append(crate::forward::PROXY_STATUS, member);
    }
    if let Some(seconds) = failure.retry_after() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if failure.closes_client_connection() {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

struct Page<'a> {
    failure: &'a Failure,
    status: StatusCode,
    request_id: &'a str,
    details: Option<&'a str>,
}

impl Page<'_> {
    fn render(&self, format: Format) -> String {
        match format {
            Format::Html => self.html(),
            Format::Json => self.json(),
            Format::Text => self.text(),
        }
    }

    fn title(&self) -> String {
        format!(
            "{} {}",
            self.status.as_u16(),
            self.status.canonical_reason().unwrap_or("Error")
        )
    }

    fn html(&self) -> String {
        let title = self.title();
        let kind = self.failure.kind;
        let details = self
            .details
            .map(|d| format!("<p><b>Details:</b> {}</p>\n", escape_html(d)))
            .unwrap_or_default();
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{title}</title>\n<style>\
             body{{font-family:system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem;color:#222}}\
             h1{{font-size:1.6rem}}code{{background:#f2f2f2;padding:.1rem .3rem}}\
             .op{{border-top:1px solid #ddd;margin-top:2rem;color:#555;font-size:.9rem}}\
             </style>\n</head>\n<body>\n<h1>{title}</h1>\n<p>{summary}</p>\n\
             {note}<p>Request id: <code>{id}</code></p>\n\
             <div class=\"op\">\n<p>For the operator: <code>{token}</code>. {hint}.</p>\n{details}</div>\n\
             </body>\n</html>\n",
            summary = kind.summary(),
            note = self
                .failure
                .note
                .as_deref()
                .map(|note| format!("<p>{}</p>\n", escape_html(note)))
                .unwrap_or_default(),
            id = escape_html(self.request_id),
            token = kind.token(),
            hint = escape_html(kind.hint()),
        )
    }

    fn json(&self) -> String {
        let kind = self.failure.kind;
        let mut problem = serde_json::json!({
            "type": format!("urn:gatehouse:error:{}", kind.token()),
            "title": self.title(),
            "status": self.status.as_u16(),
            "detail": kind.summary(),
            "error": kind.token(),
            "hint": kind.hint(),
            "request_id": self.request_id,
        });
        if let Some(map) = problem.as_object_mut() {
            if let Some(note) = &self.failure.note {
                map.insert("note".to_owned(), note.as_ref().into());
            }
            if let Some(details) = self.details {
                map.insert("details".to_owned(), details.into());
            }
        }
        let mut text = problem.to_string();
        text.push('\n');
        text
    }

    fn text(&self) -> String {
        let kind = self.failure.kind;
        let mut text = format!(
            "{}\n{}\nerror: {}\nhint: {}\nrequest id: {}\n",
            self.title(),
            kind.summary(),
            kind.token(),
            kind.hint(),
            self.request_id
        );
        if let Some(note) = &self.failure.note {
            text.push_str("note: ");
            text.push_str(note);
            text.push('\n');
        }
        if let Some(details) = self.details {
            text.push_str("details: ");
            text.push_str(details);
            text.push('\n');
        }
        text
    }
}

/// Text for HTML content and attribute values (the error page's and the status page's).
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
