//! `__compressed__:` payloads: round trips and every rejection, per algorithm.

use super::*;

#[test]
fn compressed_round_trips() {
    let v: Vec<f32> = (0..384).map(|i| (i as f32 * 0.37).sin()).collect();
    let raw = vector_to_le_bytes(&v);
    for algorithm in ALGORITHMS {
        assert_eq!(
            decode_embedding_data(&payload(algorithm, &raw)).unwrap(),
            raw,
            "{algorithm}"
        );
    }
}

#[test]
fn compressed_special_values_are_bit_exact() {
    let v = [
        -0.0f32,
        f32::from_bits(1),
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
    ];
    let raw = vector_to_le_bytes(&v);
    for algorithm in ALGORITHMS {
        assert_eq!(
            bits(&decode_embedding_data(&payload(algorithm, &raw)).unwrap()),
            bits(&raw)
        );
    }
}

#[test]
fn non_finite() {
    for (bad, index) in [(f32::NAN, 1), (f32::INFINITY, 2), (f32::NEG_INFINITY, 0)] {
        let mut v = vec![1.0f32; 3];
        v[index] = bad;
        for algorithm in ALGORITHMS {
            let reason = decode_err(&payload(algorithm, &vector_to_le_bytes(&v)));
            assert_eq!(reason, BadRowReason::NonFinite { index }, "{algorithm}");
            assert_eq!(reason.code(), "non_finite");
        }
    }
}

#[test]
fn compressed_empty_and_not_multiple_of_4() {
    for algorithm in ALGORITHMS {
        assert_eq!(
            decode_err(&payload(algorithm, &[])),
            BadRowReason::Empty,
            "{algorithm}"
        );
        let reason = decode_err(&payload(algorithm, &[1, 2, 3, 4, 5, 6]));
        assert_eq!(
            reason,
            BadRowReason::NotMultipleOf4 { len: 6 },
            "{algorithm}"
        );
        assert_eq!(reason.code(), "not_multiple_of_4");
    }
}

#[test]
fn unknown_compression() {
    let reason = decode_err("__compressed__:brotli:16\nAAAA");
    assert_eq!(
        reason,
        BadRowReason::UnknownCompression {
            algorithm: "brotli".to_owned()
        }
    );
    assert_eq!(reason.code(), "unknown_compression");
    assert_eq!(
        decode_err("__compressed__:ZSTD:16\nAAAA").code(),
        "unknown_compression"
    );
    let long = format!("__compressed__:{}:16\nAAAA", "x".repeat(10_000));
    let BadRowReason::UnknownCompression { algorithm } = decode_err(&long) else {
        unreachable!()
    };
    assert!(algorithm.len() < 100);
}

#[test]
fn malformed_compressed_header() {
    for text in [
        "__compressed__:",
        "__compressed__:zstd:16",
        "__compressed__:zstd16\nAAAA",
        "__compressed__:zstd:\nAAAA",
        "__compressed__:zstd:abc\nAAAA",
        "__compressed__:zstd:+16\nAAAA",
        "__compressed__:zstd:-16\nAAAA",
        "__compressed__:zstd: 16\nAAAA",
        "__compressed__:zstd:16\r\nAAAA",
        "__compressed__:zstd:99999999999999999999999999\nAAAA",
        "__compressed__:lz4:268435457\nAAAA",
    ] {
        let reason = decode_err(text);
        assert_eq!(
            reason.code(),
            "malformed_compressed_header",
            "{text:?}: {reason:?}"
        );
    }
}

#[test]
fn invalid_base64() {
    let raw = vector_to_le_bytes(&[1.0, 2.0]);
    let good = payload("zstd", &raw);
    for bad in [
        format!("{good}!"),
        format!("{good}\n"),
        format!("{good}A"),
        "__compressed__:zstd:8\nKLUv/QBY=QAAAACAPwAAAEAA".to_owned(),
        "__compressed__:gzip:8\n%%%%".to_owned(),
    ] {
        let reason = decode_err(&bad);
        assert_eq!(reason.code(), "invalid_base64", "{bad:?}: {reason:?}");
    }
}

#[test]
fn decompression_failed() {
    for algorithm in ALGORITHMS {
        let text = payload_with_size(algorithm, &[0xff; 32], 16);
        let reason = decode_err(&text);
        assert!(
            matches!(reason, BadRowReason::DecompressionFailed { algorithm: a, .. } if a == algorithm),
            "{algorithm}: {reason:?}"
        );
        assert_eq!(reason.code(), "decompression_failed");
    }
}

#[test]
fn size_mismatch() {
    let raw = vector_to_le_bytes(&[1.0, 2.0, 3.0, 4.0]);
    for algorithm in ALGORITHMS {
        let compressed = compress(algorithm, &raw);
        let larger = decode_err(&payload_with_size(algorithm, &compressed, 20));
        assert_eq!(
            larger,
            BadRowReason::SizeMismatch {
                declared: 20,
                actual: 16
            },
            "{algorithm}"
        );
        assert_eq!(larger.code(), "size_mismatch");
        let smaller = decode_err(&payload_with_size(algorithm, &compressed, 8));
        assert_eq!(
            smaller,
            BadRowReason::SizeMismatch {
                declared: 8,
                actual: 9
            },
            "{algorithm}"
        );
        assert!(smaller.to_string().contains("more"), "{smaller}");
    }
}

#[test]
fn decompression_bomb_is_bounded() {
    let raw = vec![0u8; 16 * 1024 * 1024];
    for algorithm in ALGORITHMS {
        let compressed = compress(algorithm, &raw);
        let reason = decode_err(&payload_with_size(algorithm, &compressed, 16));
        assert_eq!(
            reason,
            BadRowReason::SizeMismatch {
                declared: 16,
                actual: 17
            },
            "{algorithm}"
        );
    }
}
