use super::*;
use crate::body::ProxyBody;
use Encoding::{Brotli, Gzip, Zstd};

fn config() -> CompressConfig {
    CompressConfig {
        enabled: true,
        encodings: vec![Zstd, Brotli, Gzip],
        min_size: 1024,
        types: vec!["text/*".into(), "application/json".into()],
        gzip_level: 5,
        brotli_level: 4,
        zstd_level: 3,
        decompress: false,
    }
}

fn request(accept_encoding: Option<&str>) -> CompressRequest {
    let mut headers = HeaderMap::new();
    if let Some(value) = accept_encoding {
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
    }
    CompressRequest::new(&http::Method::GET, &headers)
}

fn headers(fields: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn html() -> HeaderMap {
    headers(&[("content-type", "text/html; charset=utf-8")])
}

fn skipped(reason: Skip) -> Decision {
    Decision::Skip {
        reason,
        vary: false,
    }
}

#[test]
fn compresses_with_the_negotiated_encoding() {
    let ok = StatusCode::OK;
    assert_eq!(
        decide(&config(), &request(Some("gzip, br")), ok, &html()),
        Decision::Encode(Brotli)
    );
    assert_eq!(
        decide(&config(), &request(Some("gzip")), ok, &html()),
        Decision::Encode(Gzip)
    );
    // Any status with a body: an upstream's 404 page too.
    assert_eq!(
        decide(
            &config(),
            &request(Some("zstd")),
            StatusCode::NOT_FOUND,
            &html()
        ),
        Decision::Encode(Zstd)
    );
}

#[test]
fn never_cases() {
    let c = config();
    let gzip = request(Some("gzip"));
    let head = CompressRequest::new(
        &http::Method::HEAD,
        &headers(&[("accept-encoding", "gzip")]),
    );
    assert_eq!(
        decide(&c, &head, StatusCode::OK, &html()),
        skipped(Skip::Head)
    );
    for status in [
        StatusCode::SWITCHING_PROTOCOLS,
        StatusCode::NO_CONTENT,
        StatusCode::NOT_MODIFIED,
    ] {
        assert_eq!(decide(&c, &gzip, status, &html()), skipped(Skip::Status));
    }
    assert_eq!(
        decide(&c, &gzip, StatusCode::PARTIAL_CONTENT, &html()),
        skipped(Skip::Partial)
    );
    let no_transform = headers(&[
        ("content-type", "text/html"),
        ("cache-control", "public, No-Transform"),
    ]);
    assert_eq!(
        decide(&c, &gzip, StatusCode::OK, &no_transform),
        skipped(Skip::NoTransform)
    );
    let asks = CompressRequest::new(
        &http::Method::GET,
        &headers(&[
            ("accept-encoding", "gzip"),
            ("cache-control", "no-transform"),
        ]),
    );
    assert_eq!(
        decide(&c, &asks, StatusCode::OK, &html()),
        skipped(Skip::NoTransform)
    );
    let encoded = headers(&[("content-type", "text/html"), ("content-encoding", "br")]);
    assert_eq!(
        decide(&c, &gzip, StatusCode::OK, &encoded),
        skipped(Skip::Encoded)
    );
    let png = headers(&[("content-type", "image/png")]);
    assert_eq!(decide(&c, &gzip, StatusCode::OK, &png), skipped(Skip::Type));
    assert_eq!(
        decide(&c, &gzip, StatusCode::OK, &HeaderMap::new()),
        skipped(Skip::Type)
    );
    let small = headers(&[("content-type", "text/html"), ("content-length", "1023")]);
    assert_eq!(
        decide(&c, &gzip, StatusCode::OK, &small),
        skipped(Skip::Small)
    );
    let exact = headers(&[("content-type", "text/html"), ("content-length", "1024")]);
    assert_eq!(
        decide(&c, &gzip, StatusCode::OK, &exact),
        Decision::Encode(Gzip)
    );
}

#[test]
fn not_accepted_still_varies() {
    for accept in [None, Some("identity"), Some("gzip;q=0"), Some("deflate")] {
        assert_eq!(
            decide(&config(), &request(accept), StatusCode::OK, &html()),
            Decision::Skip {
                reason: Skip::NotAccepted,
                vary: true
            },
            "{accept:?}"
        );
    }
}

#[test]
fn identity_coding_counts_as_none() {
    let fields = headers(&[
        ("content-type", "text/html"),
        ("content-encoding", "identity"),
    ]);
    assert_eq!(
        decide(&config(), &request(Some("gzip")), StatusCode::OK, &fields),
        Decision::Encode(Gzip)
    );
}

#[test]
fn decompress_only_when_configured_and_not_accepted() {
    let mut c = config();
    let gzipped = headers(&[("content-type", "text/html"), ("content-encoding", "gzip")]);
    assert_eq!(
        decide(&c, &request(None), StatusCode::OK, &gzipped),
        skipped(Skip::Encoded)
    );
    c.decompress = true;
    assert_eq!(
        decide(&c, &request(None), StatusCode::OK, &gzipped),
        Decision::Decode(Gzip)
    );
    assert_eq!(
        decide(&c, &request(Some("br")), StatusCode::OK, &gzipped),
        Decision::Decode(Gzip)
    );
    assert_eq!(
        decide(&c, &request(Some("gzip")), StatusCode::OK, &gzipped),
        Decision::Skip {
            reason: Skip::Encoded,
            vary: true
        }
    );
    // Stacked or unknown codings are passed on as they are.
    let stacked = headers(&[("content-encoding", "gzip, br")]);
    assert_eq!(
        decide(&c, &request(None), StatusCode::OK, &stacked),
        skipped(Skip::Encoded)
    );
    let deflate = headers(&[("content-encoding", "deflate")]);
    assert_eq!(
        decide(&c, &request(None), StatusCode::OK, &deflate),
        skipped(Skip::Encoded)
    );
    // no-transform forbids decoding too.
    let kept = headers(&[
        ("content-encoding", "zstd"),
        ("cache-control", "no-transform"),
    ]);
    assert_eq!(
        decide(&c, &request(None), StatusCode::OK, &kept),
        skipped(Skip::NoTransform)
    );
}

#[test]
fn vary_is_merged() {
    let mut map = headers(&[("vary", "Origin"), ("vary", "Cookie, X-A")]);
    add_vary(&mut map);
    assert_eq!(map.get_all(header::VARY).iter().count(), 1);
    assert_eq!(map[header::VARY], "Origin, Cookie, X-A, Accept-Encoding");

    let mut map = headers(&[("vary", "accept-encoding")]);
    add_vary(&mut map);
    assert_eq!(map[header::VARY], "accept-encoding");

    let mut map = headers(&[("vary", "*")]);
    add_vary(&mut map);
    assert_eq!(map[header::VARY], "*");

    let mut map = HeaderMap::new();
    add_vary(&mut map);
    assert_eq!(map[header::VARY], "Accept-Encoding");
}

#[test]
fn coded_headers_weaken_etag_and_drop_length() {
    let mut map = headers(&[
        ("etag", "\"abc\""),
        ("content-length", "5000"),
        ("accept-ranges", "bytes"),
    ]);
    coded_headers(&mut map);
    assert_eq!(map[header::ETAG], "W/\"abc\"");
    assert!(!map.contains_key(header::CONTENT_LENGTH));
    assert!(!map.contains_key(header::ACCEPT_RANGES));
    assert_eq!(map[header::VARY], "Accept-Encoding");

    let mut weak = headers(&[("etag", "W/\"abc\"")]);
    coded_headers(&mut weak);
    assert_eq!(weak[header::ETAG], "W/\"abc\"");
}

// === the body ===

fn counters() -> Counters {
    Counters {
        input: prometheus::IntCounter::new("input", "test").unwrap(),
        output: prometheus::IntCounter::new("output", "test").unwrap(),
    }
}

async fn collect(body: CodedBody) -> Result<Vec<u8>, crate::body::BoxError> {
    use http_body_util::BodyExt as _;
    Ok(body.collect().await?.to_bytes().to_vec())
}

fn text() -> Vec<u8> {
    (0..20_000u32)
        .flat_map(|i| format!("row {i}\n").into_bytes())
        .collect()
}

#[tokio::test]
async fn a_body_encodes_and_decodes_back() {
    for encoding in [Gzip, Brotli, Zstd] {
        let counters = counters();
        let coded = CodedBody::new(
            ProxyBody::full(text()),
            Coder::encode(Encoder::new(encoding, &config(), None).unwrap()),
            counters.clone(),
        );
        let coded = collect(coded).await.unwrap();
        assert_eq!(counters.input.get(), text().len() as u64);
        assert_eq!(counters.output.get(), coded.len() as u64);
        assert!(coded.len() < text().len() / 3, "{encoding:?}");
        let decoded = CodedBody::new(
            ProxyBody::full(coded),
            Coder::decode(Decoder::new(encoding).unwrap()),
            super::body::Counters {
                input: counters.input.clone(),
                output: counters.output.clone(),
            },
        );
        assert!(collect(decoded).await.unwrap() == text(), "{encoding:?}");
    }
}

#[tokio::test]
async fn an_empty_coded_body_decodes_to_nothing() {
    for encoding in [Gzip, Brotli, Zstd] {
        let decoded = CodedBody::new(
            ProxyBody::empty(),
            Coder::decode(Decoder::new(encoding).unwrap()),
            counters(),
        );
        assert_eq!(collect(decoded).await.unwrap(), Vec::<u8>::new());
    }
}

#[tokio::test]
async fn a_truncated_or_corrupt_body_fails() {
    for encoding in [Gzip, Brotli, Zstd] {
        let coded = collect(CodedBody::new(
            ProxyBody::full(text()),
            Coder::encode(Encoder::new(encoding, &config(), None).unwrap()),
            counters(),
        ))
        .await
        .unwrap();
        let half = coded[..coded.len() / 2].to_vec();
        let truncated = CodedBody::new(
            ProxyBody::full(half),
            Coder::decode(Decoder::new(encoding).unwrap()),
            counters(),
        );
        assert!(collect(truncated).await.is_err(), "{encoding:?} truncated");
        let mut extra = coded.clone();
        extra.extend_from_slice(b"trailing garbage");
        let trailing = CodedBody::new(
            ProxyBody::full(extra),
            Coder::decode(Decoder::new(encoding).unwrap()),
            counters(),
        );
        assert!(
            collect(trailing).await.is_err(),
            "{encoding:?} trailing data"
        );
    }
}
