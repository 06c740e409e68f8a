//! Plain JSON payloads: accepted shapes, bit exactness and every rejection.

use super::*;

#[test]
fn json_round_trips_serde_output() {
    let v = vec![0.1f32, -2.5, 3.0, 1.0e-7, 12345.678];
    let text = serde_json::to_string(&v).unwrap();
    assert_eq!(
        decode_embedding_data(&text).unwrap(),
        vector_to_le_bytes(&v)
    );
}

#[test]
fn json_whitespace_variants() {
    let expected = vector_to_le_bytes(&[1.0, 2.0, 3.0]);
    for text in [
        "[1,2,3]",
        " [1,2,3]",
        "[1,2,3] ",
        "\t\r\n[ 1 , 2 , 3 ]\n",
        "[\n  1,\n  2,\n  3\n]",
        "[1\t,\r2\n,  3]",
    ] {
        assert_eq!(decode_embedding_data(text).unwrap(), expected, "{text:?}");
    }
    let pretty = serde_json::to_string_pretty(&[1.0f32, 2.0, 3.0]).unwrap();
    assert_eq!(decode_embedding_data(&pretty).unwrap(), expected);
}

#[test]
fn json_integers_and_exponents() {
    let cases: [(&str, f32); 10] = [
        ("[0]", 0.0),
        ("[42]", 42.0),
        ("[-7]", -7.0),
        ("[1e3]", 1000.0),
        ("[1E3]", 1000.0),
        ("[2.5e+2]", 250.0),
        ("[2.5E-2]", 0.025),
        ("[0e0]", 0.0),
        ("[16777217]", 16_777_216.0),
        ("[-0.5e1]", -5.0),
    ];
    for (text, value) in cases {
        assert_eq!(
            bits(&decode_embedding_data(text).unwrap()),
            [value.to_bits()],
            "{text}"
        );
    }
}

#[test]
fn json_special_values_are_bit_exact() {
    let cases: [(&str, f32); 8] = [
        ("[-0.0]", -0.0),
        ("[-0]", -0.0),
        ("[1e-45]", f32::from_bits(1)),
        ("[-1e-45]", -f32::from_bits(1)),
        ("[3.4028235e38]", f32::MAX),
        ("[-3.4028235e38]", f32::MIN),
        ("[1.1754944e-38]", f32::MIN_POSITIVE),
        ("[1e-50]", 0.0),
    ];
    for (text, value) in cases {
        assert_eq!(
            bits(&decode_embedding_data(text).unwrap()),
            [value.to_bits()],
            "{text}"
        );
    }
}

#[test]
fn json_tokens_are_rounded_once() {
    // Just below the midpoint between 1+2^-23 and 1+2^-22: f64 rounds it
    // to the midpoint and a second rounding to f32 would go up.
    let text = "[1.0000001788139343261718749]";
    assert_eq!(bits(&decode_embedding_data(text).unwrap()), [0x3f80_0001]);
    assert_ne!(
        ("1.0000001788139343261718749".parse::<f64>().unwrap() as f32).to_bits(),
        0x3f80_0001
    );
}

#[test]
fn invalid_json() {
    for text in [
        "",
        "   ",
        "[1,",
        "[1,]",
        "[01]",
        "[.5]",
        "[1.]",
        "[+1]",
        "[-]",
        "[1e]",
        "[NaN]",
        "[Infinity]",
        "[1 2]",
        "[1]]",
        "[1] x",
        "nope",
        "[1,2",
        "{",
    ] {
        let reason = decode_err(text);
        assert!(
            matches!(reason, BadRowReason::InvalidJson { .. }),
            "{text:?}: {reason:?}"
        );
        assert_eq!(reason.code(), "invalid_json");
    }
    let BadRowReason::InvalidJson { detail } = decode_err("[1,]") else {
        unreachable!()
    };
    assert!(detail.contains("line 1"), "{detail}");
}

#[test]
fn not_an_array() {
    for (text, found) in [
        ("null", "null"),
        ("true", "boolean"),
        (" false ", "boolean"),
        ("1.5", "number"),
        ("\"[1,2]\"", "string"),
        ("{\"a\": [1]}", "object"),
    ] {
        let reason = decode_err(text);
        assert_eq!(reason, BadRowReason::NotAnArray { found }, "{text}");
        assert_eq!(reason.code(), "not_an_array");
    }
}

#[test]
fn non_numeric_element() {
    for (text, index, found) in [
        ("[null]", 0, "null"),
        ("[1, true]", 1, "boolean"),
        ("[1, 2, \"3\"]", 2, "string"),
        ("[[1]]", 0, "array"),
        ("[1, {}]", 1, "object"),
        ("[1, null, 1e39]", 1, "null"),
    ] {
        let reason = decode_err(text);
        assert_eq!(
            reason,
            BadRowReason::NonNumericElement { index, found },
            "{text}"
        );
        assert_eq!(reason.code(), "non_numeric_element");
    }
    // Structure is checked before content.
    assert_eq!(decode_err("[1, null").code(), "invalid_json");
}

#[test]
fn out_of_range() {
    for (text, index, token) in [
        ("[1e39]", 0, "1e39"),
        ("[1, -1e39]", 1, "-1e39"),
        ("[3.4028236e38]", 0, "3.4028236e38"),
        ("[1e400, 2]", 0, "1e400"),
        ("[1e39, null]", 0, "1e39"),
    ] {
        let reason = decode_err(text);
        let expected = BadRowReason::OutOfRange {
            index,
            text: token.to_owned(),
        };
        assert_eq!(reason, expected, "{text}");
        assert_eq!(reason.code(), "out_of_range");
    }
    assert_eq!(decode_err("[1e39, ").code(), "invalid_json");
    let long = format!("[1{}]", "0".repeat(100));
    let BadRowReason::OutOfRange { text, .. } = decode_err(&long) else {
        unreachable!()
    };
    assert!(text.chars().count() <= EXCERPT_CHARS + 1, "{text}");
}

#[test]
fn empty_array() {
    for text in ["[]", " [ \n ] "] {
        assert_eq!(decode_err(text), BadRowReason::Empty);
    }
    assert_eq!(BadRowReason::Empty.code(), "empty");
    assert_eq!(decode_err("[] []").code(), "invalid_json");
}
