//! `[compress]` and `[route.compress]`: which responses gatehouse compresses on the way out, with
//! which codings, and whether it decodes an upstream's compressed response for a client that
//! cannot take it.
//!
//! A table switches compression on (like `[route.cache]`); `enabled = false` turns it off again.
//! A route's table takes `[compress]`'s value for every key it does not set.

use toml::Spanned;

use super::KIB;
use super::fields::{int_in, size_within};
use crate::diag::Sink;
use crate::model::{CompressConfig, Encoding};
use crate::raw::RawCompress;

const DEFAULT_MIN_SIZE: u64 = KIB;
const MAX_MIN_SIZE: u64 = 1024 * 1024 * 1024;
const DEFAULT_GZIP_LEVEL: u32 = 5;
const DEFAULT_BROTLI_LEVEL: u32 = 4;
const DEFAULT_ZSTD_LEVEL: u32 = 3;

/// Compressible media types when `types` is not set: text, and the structured text formats
/// that are not `text/*`. `text/event-stream` is among them: the body flushes whenever the
/// upstream pauses, so events are not held back.
pub(super) const DEFAULT_TYPES: &[&str] = &[
    "text/*",
    "application/json",
    "application/*+json",
    "application/x-ndjson",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "application/xml",
    "application/*+xml",
    "application/wasm",
    "application/graphql",
    "application/x-yaml",
    "application/yaml",
    "application/toml",
    "application/vnd.ms-fontobject",
    "font/ttf",
    "font/otf",
    "image/svg+xml",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "image/bmp",
];

const ENCODINGS: &[(&str, Encoding)] = &[
    ("zstd", Encoding::Zstd),
    ("br", Encoding::Brotli),
    ("gzip", Encoding::Gzip),
];

/// The settings when the file has no `[compress]` table: off, with the defaults a table gets.
pub(super) fn off() -> CompressConfig {
    CompressConfig {
        enabled: false,
        encodings: ENCODINGS.iter().map(|(_, e)| *e).collect(),
        min_size: DEFAULT_MIN_SIZE,
        types: DEFAULT_TYPES.iter().map(|&t| t.to_owned()).collect(),
        gzip_level: DEFAULT_GZIP_LEVEL,
        brotli_level: DEFAULT_BROTLI_LEVEL,
        zstd_level: DEFAULT_ZSTD_LEVEL,
        decompress: false,
    }
}

/// `[compress]` (with `inherit` = the built-in defaults), or a route's table resolved against
/// `[compress]`.
pub(super) fn compress(
    raw: &Spanned<RawCompress>,
    key: &str,
    inherit: &CompressConfig,
    sink: &mut Sink<'_>,
) -> CompressConfig {
    let raw = raw.get_ref();
    let encodings = match &raw.encodings {
        Some(list) => encodings(list, &format!("{key}.encodings"), sink)
            .unwrap_or_else(|| inherit.encodings.clone()),
        None => inherit.encodings.clone(),
    };
    let types = match &raw.types {
        Some(list) => {
            types(list, &format!("{key}.types"), sink).unwrap_or_else(|| inherit.types.clone())
        }
        None => inherit.types.clone(),
    };
    CompressConfig {
        enabled: raw.enabled.as_ref().is_none_or(|e| *e.get_ref()),
        encodings,
        min_size: size_within(
            sink,
            raw.min_size.clone(),
            &format!("{key}.min_size"),
            inherit.min_size,
            0,
            MAX_MIN_SIZE,
        ),
        types,
        gzip_level: int_in(
            sink,
            raw.gzip_level.as_ref(),
            &format!("{key}.gzip_level"),
            inherit.gzip_level,
            1,
            9,
        ),
        brotli_level: int_in(
            sink,
            raw.brotli_level.as_ref(),
            &format!("{key}.brotli_level"),
            inherit.brotli_level,
            1,
            11,
        ),
        zstd_level: int_in(
            sink,
            raw.zstd_level.as_ref(),
            &format!("{key}.zstd_level"),
            inherit.zstd_level,
            1,
            19,
        ),
        decompress: raw
            .decompress
            .as_ref()
            .map_or(inherit.decompress, |d| *d.get_ref()),
    }
}

/// `encodings`: known tokens, no repeats, not empty. `None` when any is wrong (reported).
fn encodings(
    list: &Spanned<Vec<Spanned<String>>>,
    key: &str,
    sink: &mut Sink<'_>,
) -> Option<Vec<Encoding>> {
    let mut out = Vec::new();
    let mut ok = true;
    for item in list.get_ref() {
        let word = item.get_ref().trim().to_ascii_lowercase();
        let Some((_, encoding)) = ENCODINGS.iter().find(|(token, _)| *token == word) else {
            let fix = if word == "brotli" {
                "brotli's token is \"br\"".to_owned()
            } else if word == "deflate" || word == "x-gzip" || word == "compress" {
                "gatehouse produces \"zstd\", \"br\" and \"gzip\" only; use those".to_owned()
            } else {
                "use \"zstd\", \"br\" or \"gzip\"".to_owned()
            };
            sink.error(
                Some(item.span()),
                key,
                format!("{:?} is not an encoding gatehouse knows", item.get_ref()),
                fix,
            );
            ok = false;
            continue;
        };
        if out.contains(encoding) {
            sink.error(
                Some(item.span()),
                key,
                format!("{:?} is listed twice", item.get_ref()),
                "list each encoding once, in order of preference",
            );
            ok = false;
            continue;
        }
        out.push(*encoding);
    }
    if ok && out.is_empty() {
        sink.error(
            Some(list.span()),
            key,
            "the list is empty, so nothing would be compressed",
            "list at least one of \"zstd\", \"br\", \"gzip\", or set enabled = false",
        );
        ok = false;
    }
    ok.then_some(out)
}

/// `types`: media types without parameters, `type/*` or `type/*+suffix` allowed. `None` when
/// any is wrong (reported).
fn types(
    list: &Spanned<Vec<Spanned<String>>>,
    key: &str,
    sink: &mut Sink<'_>,
) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut ok = true;
    for item in list.get_ref() {
        match media_pattern(item.get_ref()) {
            Ok(pattern) => out.push(pattern),
            Err(why) => {
                sink.error(
                    Some(item.span()),
                    key,
                    format!("{:?} is not a media type: {why}", item.get_ref()),
                    "write a type like \"text/html\", \"text/*\" or \"application/*+json\" (no parameters such as charset)",
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// One `types` entry, lowercased: `type/subtype`, `type/*` or `type/*+suffix`.
pub(super) fn media_pattern(raw: &str) -> Result<String, &'static str> {
    let text = raw.trim().to_ascii_lowercase();
    if text.contains(';') {
        return Err("parameters are not matched; leave them out");
    }
    let Some((kind, sub)) = text.split_once('/') else {
        return Err("it has no '/'");
    };
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                    )
            })
    };
    if kind == "*" {
        return Err("\"*/*\" would compress images and archives too; list the types");
    }
    if !token(kind) {
        return Err("the type before '/' is empty or has characters a media type cannot have");
    }
    let sub_ok = match sub.strip_prefix('*') {
        Some("") => true,
        Some(rest) => rest.strip_prefix('+').is_some_and(token),
        None => token(sub),
    };
    if !sub_ok {
        return Err("the subtype after '/' is empty or has characters a media type cannot have");
    }
    Ok(text)
}
