//! The text log's field formatter: what tracing-subscriber's `DefaultFields` writes with ANSI
//! colours off, byte for byte, at a fraction of the cost. `DefaultFields` sends the message
//! through its ANSI-escaping writer one character at a time and formats every string field
//! with `{:?}`; a failure's warning line (message, hint, details: a few hundred characters)
//! cost more than the rest of a failed request's handling. Here text that needs no escaping,
//! which is nearly all of it, is written in one piece; anything else takes the same slow path
//! `DefaultFields` takes.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// The text log's [`FormatFields`](tracing_subscriber::fmt::FormatFields).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PlainFields;

impl<'a> MakeVisitor<Writer<'a>> for PlainFields {
    type Visitor = PlainVisitor<'a>;

    fn make_visitor(&self, target: Writer<'a>) -> Self::Visitor {
        PlainVisitor {
            sanitize: target.sanitizes_ansi_escapes(),
            writer: target,
            is_empty: true,
            result: Ok(()),
        }
    }
}

/// Writes one event's or span's fields.
pub(crate) struct PlainVisitor<'a> {
    writer: Writer<'a>,
    sanitize: bool,
    is_empty: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    fn pad(&mut self) {
        if self.is_empty {
            self.is_empty = false;
        } else {
            self.result = self.writer.write_char(' ');
        }
    }

    /// Hands a field to `DefaultFields`' own visitor: whatever is not a fast path is written by
    /// the code that defines the format.
    fn default_visitor(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut visitor);
        self.result = visitor.finish();
        self.is_empty = false;
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
            return;
        }
        let name = field.name();
        if skipped(field) || name.starts_with("r#") || !is_plain_quoted(value) {
            self.default_visitor(|visitor| visitor.record_str(field, value));
            return;
        }
        self.pad();
        if self.result.is_err() {
            return;
        }
        // What `name={value:?}` writes for a string that needs no escaping.
        self.result = (|| {
            self.writer.write_str(name)?;
            self.writer.write_str("=\"")?;
            self.writer.write_str(value)?;
            self.writer.write_char('"')
        })();
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        if field.name() != "message" || !self.sanitize || skipped(field) {
            self.default_visitor(|visitor| visitor.record_debug(field, value));
            return;
        }
        self.pad();
        if self.result.is_err() {
            return;
        }
        self.result = write!(Escaping(&mut self.writer), "{value:?}");
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_err() {
            return;
        }
        self.default_visitor(|visitor| visitor.record_error(field, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record_as_displayed(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record_as_displayed(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record_as_displayed(field, value);
    }
}

impl PlainVisitor<'_> {
    /// `name=value` for a value whose `{:?}` is its `{}` (integers, booleans), written without
    /// the colour styles `DefaultFields` puts around the name and `=` even when they are off.
    fn record_as_displayed<T: fmt::Display + fmt::Debug>(&mut self, field: &Field, value: T) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        if name == "message" || skipped(field) || name.starts_with("r#") {
            self.default_visitor(|visitor| visitor.record_debug(field, &value));
            return;
        }
        self.pad();
        if self.result.is_err() {
            return;
        }
        self.result = write!(self.writer, "{name}={value}");
    }
}

impl VisitOutput<fmt::Result> for PlainVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for PlainVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

/// Fields that are log metadata, already written (`DefaultFields` with `tracing-log`).
fn skipped(field: &Field) -> bool {
    field.name().starts_with("log.")
}

/// A string `{:?}` writes as itself in quotes: printable ASCII without `"` or `\`.
fn is_plain_quoted(value: &str) -> bool {
    all_bytes(value, |b| {
        (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\'
    })
}

/// Whether every byte of `text` passes `test`. Tested a block at a time without stopping at
/// the first failure inside a block, which lets the compiler test many bytes per instruction:
/// the lines checked are a few hundred bytes, and nearly always pass.
#[inline(always)]
fn all_bytes(text: &str, test: impl Fn(u8) -> bool) -> bool {
    text.as_bytes()
        .chunks(64)
        .all(|block| block.iter().fold(true, |ok, &b| ok & test(b)))
}

/// tracing-subscriber's ANSI escaping (`EscapingWriter`): the C0 controls that start or shape
/// terminal escape sequences, DEL, and the C1 controls are written escaped. A piece without
/// any is written whole.
struct Escaping<'w, 'a>(&'w mut Writer<'a>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let clean = all_bytes(s, |b| {
            b.is_ascii() && !matches!(b, 0x1b | 0x07 | 0x08 | 0x0c | 0x7f)
        });
        if clean {
            return self.0.write_str(s);
        }
        for ch in s.chars() {
            match ch {
                '\x1b' => self.0.write_str("\\x1b")?,
                '\x07' => self.0.write_str("\\x07")?,
                '\x08' => self.0.write_str("\\x08")?,
                '\x0c' => self.0.write_str("\\x0c")?,
                '\x7f' => self.0.write_str("\\x7f")?,
                ch if ('\u{80}'..='\u{9f}').contains(&ch) => {
                    write!(self.0, "\\u{{{:x}}}", ch as u32)?;
                }
                _ => self.0.write_char(ch)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::fmt::format::DefaultFields;

    use super::*;

    #[derive(Clone, Default)]
    pub(crate) struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    impl Buffer {
        pub(crate) fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
        }
    }

    /// Events with every kind of field and text, some of it hostile.
    pub(crate) fn emit() {
        let hostile = "red \x1b[31m bell \x07 del \x7f c1 \u{85} tab \t nl \n quote \" back \\ é";
        tracing::warn!(
            target: "gatehouse::failure",
            kind = "connection_refused",
            phase = "connecting",
            pool = "app",
            attempt = 2u32,
            request_sent = false,
            os_error = Some(111),
            absent = Option::<u16>::None,
            hint = "start the server, or fix its address: is it listening on that port?",
            "{} {}: {}",
            "connection_refused",
            "connecting",
            "connect to 127.0.0.1:9: Connection refused (os error 111)",
        );
        tracing::warn!(details = hostile, other = ?hostile, "{hostile}");
        // Past the first blocks the scans test at a time.
        let long_tail = format!("{} \x1b[0m \" end", "x".repeat(130));
        tracing::warn!(details = long_tail.as_str(), "{long_tail}");
        tracing::info!(
            message = hostile,
            r#type = "raw",
            count = -3i64,
            ratio = 0.5f64,
            whole = 1.0f64,
            r#ok = true,
            big = u64::MAX,
            small = i64::MIN
        );
        tracing::info!(message = 42u64, flag = true);
        tracing::info!("plain message only");
        let err = io::Error::other("disk full");
        tracing::error!(error = &err as &dyn std::error::Error, "write failed");
        tracing::info!(empty = "", "");
        // Printable ASCII that `{:?}` still escapes.
        tracing::warn!("ansi \x1b[1m bold, bell \x07, all ASCII");
        tracing::info!(
            quoted = "say \"hi\"",
            path = "C:\\dir",
            plain = "a b",
            "quotes"
        );
    }

    fn run<F>(fields: F) -> String
    where
        F: for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static,
    {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .fmt_fields(fields)
            .with_writer(buffer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        buffer.text()
    }

    #[test]
    fn a_byte_that_fails_is_found_wherever_it_is() {
        for len in [0, 1, 63, 64, 65, 200] {
            let clean = "a".repeat(len);
            assert!(is_plain_quoted(&clean), "{len}");
            for at in 0..len {
                let mut text = clean.clone();
                text.replace_range(at..at + 1, "\"");
                assert!(!is_plain_quoted(&text), "quote at {at} of {len}");
            }
        }
    }

    #[test]
    fn writes_what_the_default_field_formatter_writes() {
        let default = run(DefaultFields::new());
        let plain = run(PlainFields);
        assert!(default.contains("\\x1b[31m"), "{default}");
        assert_eq!(plain, default);
    }
}
