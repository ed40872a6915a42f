//! Tests of the codings: round trips, flushing, window sizes, and decoding that refuses
//! garbage and gives out a bomb a buffer at a time.

use super::*;

fn config() -> CompressConfig {
    CompressConfig {
        enabled: true,
        encodings: vec![Encoding::Zstd, Encoding::Brotli, Encoding::Gzip],
        min_size: 0,
        types: vec!["text/*".into()],
        gzip_level: 5,
        brotli_level: 4,
        zstd_level: 3,
        decompress: true,
    }
}

fn sample() -> Vec<u8> {
    (0..200_000u32)
        .flat_map(|i| format!("line {i} of the sample {}\n", i % 7).into_bytes())
        .collect()
}

/// Encodes in uneven pieces with flushes, then decodes through a small output buffer.
fn round_trip(encoding: Encoding) {
    let data = sample();
    let mut encoder = Encoder::new(encoding, &config(), None).unwrap();
    let mut coded = Vec::new();
    for (i, piece) in data.chunks(7919).enumerate() {
        coded.extend(encoder.write(piece).unwrap());
        if i % 5 == 0 {
            coded.extend(encoder.flush().unwrap());
        }
    }
    coded.extend(encoder.finish().unwrap());
    assert!(
        coded.len() < data.len() / 4,
        "{encoding:?}: {}",
        coded.len()
    );

    let mut decoder = Decoder::new(encoding).unwrap();
    let mut out = Vec::new();
    let mut buffer = vec![0; 4096];
    for piece in coded.chunks(1000) {
        let mut rest = piece;
        loop {
            let step = decoder.decode(rest, &mut buffer).unwrap();
            out.extend_from_slice(&buffer[..step.written]);
            rest = &rest[step.read..];
            if step.read == 0 && step.written == 0 {
                assert!(rest.is_empty(), "{encoding:?} stuck");
                break;
            }
        }
    }
    loop {
        let step = decoder.decode(&[], &mut buffer).unwrap();
        if step.written == 0 {
            break;
        }
        out.extend_from_slice(&buffer[..step.written]);
    }
    assert!(decoder.ended(), "{encoding:?}");
    assert!(out == data, "{encoding:?}: decoded differs");
}

#[test]
fn windows_fit_the_length() {
    assert_eq!(window_log(None), 18);
    assert_eq!(window_log(Some(0)), 10);
    assert_eq!(window_log(Some(1000)), 10);
    assert_eq!(window_log(Some(1025)), 11);
    assert_eq!(window_log(Some(65_536)), 16);
    assert_eq!(window_log(Some(65_537)), 17);
    assert_eq!(window_log(Some(u64::MAX)), 18);
}

#[test]
fn a_known_length_round_trips() {
    let data = sample();
    for encoding in [Encoding::Gzip, Encoding::Brotli, Encoding::Zstd] {
        for data in [&data[..], &data[..3000], &data[..1]] {
            let mut encoder = Encoder::new(encoding, &config(), Some(data.len() as u64)).unwrap();
            let mut coded = Vec::new();
            for piece in data.chunks(5000) {
                coded.extend(encoder.write(piece).unwrap());
                coded.extend(encoder.flush().unwrap());
            }
            coded.extend(encoder.finish().unwrap());
            let mut decoder = Decoder::new(encoding).unwrap();
            let mut buffer = vec![0; 64 * 1024];
            let mut out = Vec::new();
            let mut rest = &coded[..];
            loop {
                let step = decoder.decode(rest, &mut buffer).unwrap();
                out.extend_from_slice(&buffer[..step.written]);
                rest = &rest[step.read..];
                if step.read == 0 && step.written == 0 {
                    break;
                }
            }
            assert!(
                decoder.ended() && out == data,
                "{encoding:?} {}",
                data.len()
            );
        }
    }
}

#[test]
fn round_trips() {
    round_trip(Encoding::Gzip);
    round_trip(Encoding::Brotli);
    round_trip(Encoding::Zstd);
}

#[test]
fn flush_makes_output_decodable() {
    for encoding in [Encoding::Gzip, Encoding::Brotli, Encoding::Zstd] {
        let mut encoder = Encoder::new(encoding, &config(), None).unwrap();
        let mut coded = encoder.write(b"data: event one\n\n").unwrap();
        coded.extend(encoder.flush().unwrap());
        let mut decoder = Decoder::new(encoding).unwrap();
        let mut buffer = vec![0; 1024];
        let mut out = Vec::new();
        let mut rest = &coded[..];
        loop {
            let step = decoder.decode(rest, &mut buffer).unwrap();
            out.extend_from_slice(&buffer[..step.written]);
            rest = &rest[step.read..];
            if step.read == 0 && step.written == 0 {
                break;
            }
        }
        assert_eq!(out, b"data: event one\n\n", "{encoding:?}");
        assert!(!decoder.ended(), "{encoding:?}");
    }
}

#[test]
fn garbage_is_an_error() {
    let mut buffer = vec![0; 1024];
    assert!(
        Decoder::new(Encoding::Gzip)
            .unwrap()
            .decode(b"not gzip at all", &mut buffer)
            .is_err()
    );
    assert!(
        Decoder::new(Encoding::Zstd)
            .unwrap()
            .decode(b"not zstd at all", &mut buffer)
            .is_err()
    );
    let mut brotli = Decoder::new(Encoding::Brotli).unwrap();
    let mut failed = false;
    let mut rest: &[u8] = &[0xff; 64];
    for _ in 0..64 {
        match brotli.decode(rest, &mut buffer) {
            Err(_) => {
                failed = true;
                break;
            }
            Ok(step) => rest = &rest[step.read..],
        }
    }
    assert!(failed || !brotli.ended());
}

#[test]
fn a_zstd_window_above_8_mib_is_refused() {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    encoder.window_log(24).unwrap();
    encoder.write_all(&sample()).unwrap();
    let coded = encoder.finish().unwrap();
    let mut buffer = vec![0; 1024];
    let mut decoder = Decoder::new(Encoding::Zstd).unwrap();
    assert!(decoder.decode(&coded, &mut buffer).is_err());
    // 8 MiB is taken.
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    encoder.window_log(23).unwrap();
    encoder.write_all(b"fits").unwrap();
    let coded = encoder.finish().unwrap();
    let mut decoder = Decoder::new(Encoding::Zstd).unwrap();
    let step = decoder.decode(&coded, &mut buffer).unwrap();
    assert_eq!(&buffer[..step.written], b"fits");
}

#[test]
fn bomb_comes_out_a_buffer_at_a_time() {
    let zeros = vec![0u8; 64 * 1024 * 1024];
    let mut coded = Vec::new();
    let mut encoder = Encoder::new(Encoding::Zstd, &config(), None).unwrap();
    for piece in zeros.chunks(1 << 20) {
        coded.extend(encoder.write(piece).unwrap());
    }
    coded.extend(encoder.finish().unwrap());
    drop(zeros);
    let mut decoder = Decoder::new(Encoding::Zstd).unwrap();
    let mut buffer = vec![0; 16 * 1024];
    let step = decoder.decode(&coded, &mut buffer).unwrap();
    assert!(step.written <= buffer.len());
}
