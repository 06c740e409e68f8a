//! Unit tests of the decoder, through its entry points: shared helpers and the
//! row-level checks here, one submodule per payload shape and the properties.

use std::io::Write;

use base64::Engine as _;

use super::*;

mod compressed;
mod json;
mod properties;

const ALGORITHMS: [&str; 3] = ["zstd", "lz4", "gzip"];

fn compress(algorithm: &str, raw: &[u8]) -> Vec<u8> {
    match algorithm {
        "zstd" => zstd::encode_all(raw, 3).unwrap(),
        "lz4" => lz4_flex::block::compress(raw),
        "gzip" => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(raw).unwrap();
            encoder.finish().unwrap()
        }
        other => panic!("no encoder for {other}"),
    }
}

fn payload_with_size(algorithm: &str, compressed: &[u8], size: usize) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(compressed);
    format!("{COMPRESSED_PREFIX}{algorithm}:{size}\n{b64}")
}

fn payload(algorithm: &str, raw: &[u8]) -> String {
    payload_with_size(algorithm, &compress(algorithm, raw), raw.len())
}

fn bits(bytes: &[u8]) -> Vec<u32> {
    vector_from_le_bytes(bytes)
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

fn decode_err(text: &str) -> BadRowReason {
    decode_embedding_data(text).unwrap_err()
}

#[test]
fn validate_row_accepts_consistent_rows() {
    let v = [0.25f32, -0.0, 7.0];
    let bytes = vector_to_le_bytes(&v);
    let text = serde_json::to_string(&v).unwrap();
    assert_eq!(validate_row(&text, 3, None).unwrap(), bytes);
    assert_eq!(validate_row(&text, 3, Some(&bytes)).unwrap(), bytes);
    let compressed = payload("lz4", &bytes);
    assert_eq!(validate_row(&compressed, 3, Some(&bytes)).unwrap(), bytes);
}

#[test]
fn validate_row_checks_dimension() {
    for dimension in [0, -1, i64::MIN] {
        let reason = validate_row("[1, 2]", dimension, None).unwrap_err();
        assert_eq!(
            reason,
            BadRowReason::InvalidDimension {
                found: dimension.to_string()
            }
        );
        assert_eq!(reason.code(), "invalid_dimension");
    }
    for dimension in [1, 3, 384, i64::MAX] {
        let reason = validate_row("[1, 2]", dimension, None).unwrap_err();
        assert_eq!(
            reason,
            BadRowReason::DimensionMismatch {
                declared: dimension,
                actual: 2
            }
        );
        assert_eq!(reason.code(), "dimension_mismatch");
    }
    // Decoding comes first.
    assert_eq!(
        validate_row("[]", 0, None).unwrap_err(),
        BadRowReason::Empty
    );
}

#[test]
fn validate_row_checks_legacy_vector() {
    let text = "[1, 2, 3]";
    let short = vector_to_le_bytes(&[1.0, 2.0]);
    let reason = validate_row(text, 3, Some(&short)).unwrap_err();
    assert_eq!(reason.code(), "legacy_vector_mismatch");
    assert!(reason.to_string().contains("8 bytes"), "{reason}");
    let different = vector_to_le_bytes(&[1.0, 2.0, 3.5]);
    let reason = validate_row(text, 3, Some(&different)).unwrap_err();
    assert!(reason.to_string().contains("element 2"), "{reason}");
    // -0.0 and 0.0 compare equal as floats but not as bytes.
    let zero = validate_row("[0.0]", 1, Some(&vector_to_le_bytes(&[-0.0]))).unwrap_err();
    assert!(zero.to_string().contains("element 0"), "{zero}");
    assert!(validate_row(text, 3, Some(&[])).is_err());
}

#[test]
fn le_bytes_helpers() {
    let v = [1.0f32, -0.0, f32::MAX];
    let bytes = vector_to_le_bytes(&v);
    assert_eq!(bytes.len(), 12);
    assert_eq!(&bytes[..4], &1.0f32.to_le_bytes());
    let back = vector_from_le_bytes(&bytes).unwrap();
    assert_eq!(
        back.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        v.map(f32::to_bits)
    );
    assert_eq!(vector_from_le_bytes(&[0; 5]), None);
    assert_eq!(vector_from_le_bytes(&[]), Some(vec![]));
}

#[test]
fn every_reason_has_a_code_and_a_sentence() {
    let all = [
        BadRowReason::InvalidJson { detail: "x".into() },
        BadRowReason::NotAnArray { found: "null" },
        BadRowReason::NonNumericElement {
            index: 0,
            found: "null",
        },
        BadRowReason::OutOfRange {
            index: 0,
            text: "1e39".into(),
        },
        BadRowReason::NonFinite { index: 0 },
        BadRowReason::Empty,
        BadRowReason::InvalidDimension { found: "0".into() },
        BadRowReason::DimensionMismatch {
            declared: 1,
            actual: 2,
        },
        BadRowReason::UnknownCompression {
            algorithm: "x".into(),
        },
        BadRowReason::MalformedCompressedHeader { detail: "x".into() },
        BadRowReason::InvalidBase64 { detail: "x".into() },
        BadRowReason::DecompressionFailed {
            algorithm: "zstd",
            detail: "x".into(),
        },
        BadRowReason::SizeMismatch {
            declared: 1,
            actual: 0,
        },
        BadRowReason::NotMultipleOf4 { len: 3 },
        BadRowReason::LegacyVectorMismatch { detail: "x".into() },
        BadRowReason::NotText {
            column: "embedding_data",
            found: "a blob",
        },
    ];
    let codes: Vec<&str> = all.iter().map(BadRowReason::code).collect();
    assert_eq!(
        codes,
        [
            "invalid_json",
            "not_an_array",
            "non_numeric_element",
            "out_of_range",
            "non_finite",
            "empty",
            "invalid_dimension",
            "dimension_mismatch",
            "unknown_compression",
            "malformed_compressed_header",
            "invalid_base64",
            "decompression_failed",
            "size_mismatch",
            "not_multiple_of_4",
            "legacy_vector_mismatch",
            "not_text",
        ]
    );
    for reason in &all {
        let message = reason.to_string();
        assert!(!message.is_empty() && !message.contains('\n'), "{message}");
    }
    assert_eq!(
        all[15].to_string(),
        "the embedding_data column holds a blob, not text"
    );
}
