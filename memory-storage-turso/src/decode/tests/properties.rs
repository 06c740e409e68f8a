//! Properties: round trips, and no input of any shape makes the decoder panic
//! or return bytes that are not a finite vector.

use proptest::prelude::*;

use super::*;

fn any_finite_f32() -> impl Strategy<Value = f32> {
    use proptest::num::f32 as f;
    prop_oneof![
        4 => f::POSITIVE | f::NEGATIVE | f::NORMAL | f::SUBNORMAL | f::ZERO,
        1 => prop::sample::select(vec![
            0.0f32,
            -0.0,
            f32::MAX,
            f32::MIN,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::from_bits(0x8000_0001),
            f32::EPSILON,
        ]),
    ]
}

/// Text made of JSON-ish fragments, to drive the scanner into every branch.
fn json_soup() -> impl Strategy<Value = String> {
    let fragments = prop::sample::select(vec![
        "[",
        "]",
        ",",
        " ",
        "\n",
        "-",
        "0",
        "1",
        "9",
        ".",
        "e",
        "E",
        "+",
        "null",
        "true",
        "\"a\"",
        "{}",
        "1e39",
        "1e400",
        "-0.0",
        "3.4028236e38",
        "1e-50",
        "[1]",
    ]);
    prop::collection::vec(fragments, 0..24).prop_map(|parts| parts.concat())
}

fn check_ok_invariants(result: &Result<Vec<u8>, BadRowReason>) {
    if let Ok(bytes) = result {
        assert!(!bytes.is_empty() && bytes.chunks_exact(4).remainder().is_empty());
        assert!(vector_from_le_bytes(bytes)
            .unwrap()
            .iter()
            .all(|x| x.is_finite()));
    }
}

proptest! {
    #[test]
    fn prop_json_round_trip(v in prop::collection::vec(any_finite_f32(), 1..300)) {
        let text = serde_json::to_string(&v).unwrap();
        prop_assert_eq!(decode_embedding_data(&text).unwrap(), vector_to_le_bytes(&v));
    }

    #[test]
    fn prop_compressed_round_trip(
        v in prop::collection::vec(any_finite_f32(), 1..300),
        algorithm in prop::sample::select(ALGORITHMS.to_vec()),
    ) {
        let raw = vector_to_le_bytes(&v);
        prop_assert_eq!(decode_embedding_data(&payload(algorithm, &raw)).unwrap(), raw);
    }

    #[test]
    fn prop_arbitrary_text_never_panics(text in any::<String>()) {
        check_ok_invariants(&decode_embedding_data(&text));
    }

    #[test]
    fn prop_json_soup_agrees_with_serde(text in json_soup()) {
        let result = decode_embedding_data(&text);
        check_ok_invariants(&result);
        // The scanner accepts exactly the JSON arrays of numbers that fit in f32.
        let parsed = serde_json::from_str::<Vec<f64>>(&text);
        match &result {
            Ok(bytes) => {
                let values = parsed.unwrap();
                prop_assert_eq!(values.len() * 4, bytes.len());
            }
            Err(BadRowReason::InvalidJson { .. }) => {
                prop_assert!(serde_json::from_str::<serde_json::Value>(&text).is_err());
            }
            Err(_) => {
                let fits = |v: &Vec<f64>| !v.is_empty() && v.iter().all(|x| (*x as f32).is_finite());
                prop_assert!(!matches!(&parsed, Ok(v) if fits(v)));
            }
        }
    }

    #[test]
    fn prop_arbitrary_compressed_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = format!("{COMPRESSED_PREFIX}{}", String::from_utf8_lossy(&bytes));
        check_ok_invariants(&decode_embedding_data(&text));
    }

    #[test]
    fn prop_arbitrary_compressed_payloads_never_panic(
        algorithm in prop::sample::select(ALGORITHMS.to_vec()),
        size in prop_oneof![0usize..64, 0usize..100_000],
        compressed in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let text = payload_with_size(algorithm, &compressed, size);
        check_ok_invariants(&decode_embedding_data(&text));
    }

    #[test]
    fn prop_corrupted_compressed_payloads_never_panic(
        v in prop::collection::vec(any_finite_f32(), 1..64),
        algorithm in prop::sample::select(ALGORITHMS.to_vec()),
        flip in any::<prop::sample::Index>(),
        mask in 1u8..,
    ) {
        let raw = vector_to_le_bytes(&v);
        let mut compressed = compress(algorithm, &raw);
        let at = flip.index(compressed.len());
        compressed[at] ^= mask;
        let text = payload_with_size(algorithm, &compressed, raw.len());
        check_ok_invariants(&decode_embedding_data(&text));
    }

    /// The decoder's fast float parser rounds exactly like the standard
    /// library's (correctly rounded) one, on any JSON number: long digit
    /// strings near halfway points, exponents, subnormals, overflow.
    #[test]
    fn prop_numbers_round_like_std(
        negative in any::<bool>(),
        int in "(0|[1-9][0-9]{0,30})",
        frac in proptest::option::of("[0-9]{1,40}"),
        exp in proptest::option::of(-60i32..60),
    ) {
        let mut token = String::new();
        if negative {
            token.push('-');
        }
        token.push_str(&int);
        if let Some(f) = &frac {
            token.push('.');
            token.push_str(f);
        }
        if let Some(e) = exp {
            token.push_str(&format!("e{e}"));
        }
        let expected: f32 = token.parse().unwrap();
        let text = format!("[{token}]");
        match decode_embedding_data(&text) {
            Ok(bytes) => prop_assert_eq!(bytes, expected.to_le_bytes().to_vec(), "{}", token),
            Err(_) => prop_assert!(!expected.is_finite(), "{} rejected but parses to {}", token, expected),
        }
    }
}
