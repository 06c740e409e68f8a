//! Decoding of legacy `embedding_data` payloads into F32_BLOB bytes, and the
//! reasons a legacy row cannot be migrated.
//!
//! `embedding_data` is either a plain JSON array of numbers or a compressed
//! payload `__compressed__:{algorithm}:{original_size}\n{base64}`. Either way
//! the result is the vector as little-endian f32 bytes, which is exactly what
//! a libSQL `F32_BLOB(N)` column holds, so every bit (`-0.0`, subnormals,
//! `f32::MAX`) survives the migration.

use std::io::Read;

use base64::Engine as _;

/// The prefix that marks a compressed `embedding_data` payload.
pub const COMPRESSED_PREFIX: &str = "__compressed__:";

/// Largest `original_size` a compressed payload may declare (256 MiB); larger
/// headers are refused before anything is allocated.
const MAX_ORIGINAL_SIZE: u64 = 256 * 1024 * 1024;

/// Upper bound of the initial output buffer of a streaming decompressor.
const MAX_PREALLOCATION: usize = 1024 * 1024;

/// An LZ4 block never expands by more than this factor (each extra length
/// byte adds at most 255 output bytes), plus a small constant.
const LZ4_MAX_RATIO: usize = 255;

/// How many characters of an input-derived string a reason keeps.
const EXCERPT_CHARS: usize = 40;

/// Why a legacy row cannot be migrated. Each variant's Display is one sentence an operator understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadRowReason {
    /// `embedding_data` is not JSON at all (serde_json's message in `detail`).
    #[error("embedding_data is not valid JSON: {detail}")]
    InvalidJson {
        /// The parser's message, with line and column.
        detail: String,
    },
    /// `embedding_data` is valid JSON but not an array.
    #[error("embedding_data is a JSON {found}, not an array of numbers")]
    NotAnArray {
        /// The JSON type found: null, boolean, number, string or object.
        found: &'static str,
    },
    /// An element of the array is not a number.
    #[error("element {index} of embedding_data is a JSON {found}, not a number")]
    NonNumericElement {
        /// Index of the first offending element.
        index: usize,
        /// The JSON type found: null, boolean, string, array or object.
        found: &'static str,
    },
    /// A number becomes ±infinity when narrowed to f32 (e.g. `1e39`).
    #[error("element {index} of embedding_data ({text}) is outside the f32 range")]
    OutOfRange {
        /// Index of the first offending element.
        index: usize,
        /// The number as written (shortened if very long).
        text: String,
    },
    /// A decompressed binary vector holds NaN or infinity.
    #[error("element {index} of the decompressed embedding_data is NaN or infinite")]
    NonFinite {
        /// Index of the first non-finite element.
        index: usize,
    },
    /// The vector has no elements.
    #[error("embedding_data holds an empty vector")]
    Empty,
    /// The `dimension` column is not a positive integer.
    #[error("the dimension column holds {found}, not a positive integer")]
    InvalidDimension {
        /// The value found, as text.
        found: String,
    },
    /// The `dimension` column disagrees with the decoded vector length.
    #[error("the dimension column says {declared} but embedding_data holds {actual} values")]
    DimensionMismatch {
        /// The `dimension` column.
        declared: i64,
        /// Number of f32 values decoded from `embedding_data`.
        actual: usize,
    },
    /// The compressed payload names an algorithm other than zstd, lz4 or gzip.
    #[error("embedding_data is compressed with unknown algorithm {algorithm:?} (expected zstd, lz4 or gzip)")]
    UnknownCompression {
        /// The algorithm named in the header (shortened if very long).
        algorithm: String,
    },
    /// The compressed payload does not have the shape `__compressed__:{alg}:{size}\n{base64}`.
    #[error("the header of the compressed embedding_data is malformed: {detail}")]
    MalformedCompressedHeader {
        /// What is wrong with the header.
        detail: String,
    },
    /// The compressed payload is not valid standard base64 with padding.
    #[error("the compressed embedding_data is not valid base64: {detail}")]
    InvalidBase64 {
        /// The base64 decoder's message.
        detail: String,
    },
    /// The decompressor rejected the payload.
    #[error("the {algorithm} payload of embedding_data does not decompress: {detail}")]
    DecompressionFailed {
        /// `zstd`, `lz4` or `gzip`.
        algorithm: &'static str,
        /// The decompressor's message.
        detail: String,
    },
    /// `original_size` disagrees with the decompressed length.
    #[error("{}", size_mismatch_message(*.declared, *.actual))]
    SizeMismatch {
        /// `original_size` from the header.
        declared: usize,
        /// Decompressed length; `declared + 1` means "more than declared"
        /// (decompression stops there).
        actual: usize,
    },
    /// The decompressed byte length is not a whole number of f32 values.
    #[error(
        "the decompressed embedding_data is {len} bytes, not a multiple of 4 (one f32 is 4 bytes)"
    )]
    NotMultipleOf4 {
        /// The decompressed length in bytes.
        len: usize,
    },
    /// The legacy `embedding_vector` column disagrees with `embedding_data` (which is the truth).
    #[error("the legacy embedding_vector disagrees with embedding_data: {detail}")]
    LegacyVectorMismatch {
        /// Which length or first element differs.
        detail: String,
    },
    /// A column that must hold text holds another type.
    #[error("the {column} column holds {found}, not text")]
    NotText {
        /// The column name.
        column: &'static str,
        /// The SQLite type found (e.g. "a blob", "NULL").
        found: &'static str,
    },
    /// A column the target tables require (NOT NULL) holds NULL.
    #[error("the {column} column is NULL, and the target tables require a value")]
    NullColumn {
        /// The column name.
        column: &'static str,
    },
}

impl BadRowReason {
    /// A short stable snake_case code for grouping in reports, e.g. "invalid_json", "dimension_mismatch".
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson { .. } => "invalid_json",
            Self::NotAnArray { .. } => "not_an_array",
            Self::NonNumericElement { .. } => "non_numeric_element",
            Self::OutOfRange { .. } => "out_of_range",
            Self::NonFinite { .. } => "non_finite",
            Self::Empty => "empty",
            Self::InvalidDimension { .. } => "invalid_dimension",
            Self::DimensionMismatch { .. } => "dimension_mismatch",
            Self::UnknownCompression { .. } => "unknown_compression",
            Self::MalformedCompressedHeader { .. } => "malformed_compressed_header",
            Self::InvalidBase64 { .. } => "invalid_base64",
            Self::DecompressionFailed { .. } => "decompression_failed",
            Self::SizeMismatch { .. } => "size_mismatch",
            Self::NotMultipleOf4 { .. } => "not_multiple_of_4",
            Self::LegacyVectorMismatch { .. } => "legacy_vector_mismatch",
            Self::NotText { .. } => "not_text",
            Self::NullColumn { .. } => "null_column",
        }
    }
}

fn size_mismatch_message(declared: usize, actual: usize) -> String {
    if actual > declared {
        format!("the compressed embedding_data declares {declared} bytes but decompresses to more")
    } else {
        format!(
            "the compressed embedding_data declares {declared} bytes but decompresses to {actual} bytes"
        )
    }
}

/// Decodes `embedding_data` (plain JSON array or `__compressed__:` payload) into the vector's
/// little-endian f32 bytes (length a non-zero multiple of 4, every value finite).
pub fn decode_embedding_data(text: &str) -> Result<Vec<u8>, BadRowReason> {
    match text.strip_prefix(COMPRESSED_PREFIX) {
        Some(rest) => decode_compressed(rest),
        None => scan_json_array(text).map_err(|rejection| classify_rejected_json(text, rejection)),
    }
}

/// Full check of one legacy row: decode, then `dimension` > 0 and equal to the decoded length,
/// then, if the legacy `embedding_vector` is present (Some), it must equal the decoded bytes exactly.
/// Returns the bytes to write into the vector column.
pub fn validate_row(
    embedding_data: &str,
    dimension: i64,
    legacy_vector: Option<&[u8]>,
) -> Result<Vec<u8>, BadRowReason> {
    let bytes = decode_embedding_data(embedding_data)?;
    if dimension <= 0 {
        return Err(BadRowReason::InvalidDimension {
            found: dimension.to_string(),
        });
    }
    let actual = bytes.len() / 4;
    if usize::try_from(dimension).ok() != Some(actual) {
        return Err(BadRowReason::DimensionMismatch {
            declared: dimension,
            actual,
        });
    }
    if let Some(legacy) = legacy_vector {
        if let Some(detail) = describe_difference(legacy, &bytes) {
            return Err(BadRowReason::LegacyVectorMismatch { detail });
        }
    }
    Ok(bytes)
}

/// f32 values -> little-endian bytes (what an F32_BLOB holds).
pub fn vector_to_le_bytes(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 4);
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// Little-endian bytes (an F32_BLOB) -> f32 values; `None` if the length is not a multiple of 4.
pub fn vector_from_le_bytes(b: &[u8]) -> Option<Vec<f32>> {
    let chunks = b.chunks_exact(4);
    if !chunks.remainder().is_empty() {
        return None;
    }
    Some(chunks.filter_map(f32_from_chunk).collect())
}

fn f32_from_chunk(chunk: &[u8]) -> Option<f32> {
    match *chunk {
        [a, b, c, d] => Some(f32::from_le_bytes([a, b, c, d])),
        _ => None,
    }
}

/// `None` if equal, else which length or first element differs.
fn describe_difference(legacy: &[u8], decoded: &[u8]) -> Option<String> {
    if legacy.len() != decoded.len() {
        return Some(format!(
            "the legacy vector is {} bytes, embedding_data decodes to {} bytes ({} values)",
            legacy.len(),
            decoded.len(),
            decoded.len() / 4
        ));
    }
    let (index, (old, new)) = legacy
        .chunks(4)
        .zip(decoded.chunks(4))
        .enumerate()
        .find(|(_, (old, new))| old != new)?;
    Some(match (f32_from_chunk(old), f32_from_chunk(new)) {
        (Some(old), Some(new)) => {
            format!("element {index} differs (legacy {old:?}, embedding_data {new:?})")
        }
        _ => format!("element {index} differs"),
    })
}

/// At most [`EXCERPT_CHARS`] characters of `s`, for messages about huge inputs.
fn excerpt(s: &str) -> String {
    match s.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", s.get(..cut).unwrap_or_default()),
        None => s.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Plain JSON: a hand-rolled scanner for `[num, num, ...]`, serde_json only to
// explain a rejection.
// ---------------------------------------------------------------------------

/// Why the fast scanner did not produce a vector.
enum Rejection {
    /// The whole text is a well-formed JSON array of number tokens, so the
    /// reason is final (out of range, empty).
    Final(BadRowReason),
    /// The text is not known to be valid JSON; `hint` is the reason if it is.
    Unverified(Option<BadRowReason>),
}

fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The JSON type of a value that starts with `b`.
fn json_kind(b: u8) -> Option<&'static str> {
    match b {
        b'n' => Some("null"),
        b't' | b'f' => Some("boolean"),
        b'"' => Some("string"),
        b'[' => Some("array"),
        b'{' => Some("object"),
        b'-' | b'0'..=b'9' => Some("number"),
        _ => None,
    }
}

struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(is_json_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.pos += 1;
        }
        hit
    }

    /// Consumes digits; true if there was at least one.
    fn digits(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Consumes one token of `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<&'a str> {
        let start = self.pos;
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return None,
        }
        if self.eat(b'.') && !self.digits() {
            return None;
        }
        if self.eat(b'e') || self.eat(b'E') {
            let _sign = self.eat(b'+') || self.eat(b'-');
            if !self.digits() {
                return None;
            }
        }
        self.text.get(start..self.pos)
    }
}

/// The fast path: a JSON array of numbers straight into little-endian f32
/// bytes, each token correctly rounded by `str::parse::<f32>`.
fn scan_json_array(text: &str) -> Result<Vec<u8>, Rejection> {
    let mut s = Scanner { text, pos: 0 };
    s.skip_whitespace();
    if !s.eat(b'[') {
        let found = s.peek().and_then(json_kind);
        return Err(Rejection::Unverified(
            found.map(|found| BadRowReason::NotAnArray { found }),
        ));
    }
    s.skip_whitespace();
    if s.eat(b']') {
        s.skip_whitespace();
        return Err(if s.peek().is_none() {
            Rejection::Final(BadRowReason::Empty)
        } else {
            Rejection::Unverified(None)
        });
    }

    // Exact for well-formed input; bounded by the text length for junk.
    let commas = text.bytes().filter(|&b| b == b',').count();
    let elements = commas.saturating_add(1).min(text.len() / 2 + 1);
    let mut out = Vec::with_capacity(elements.saturating_mul(4));
    let mut out_of_range: Option<BadRowReason> = None;
    let mut index = 0usize;
    loop {
        let start = s.peek();
        let Some(token) = s.number() else {
            let non_numeric = start
                .and_then(json_kind)
                .filter(|&found| found != "number")
                .map(|found| BadRowReason::NonNumericElement { index, found });
            return Err(Rejection::Unverified(out_of_range.or(non_numeric)));
        };
        match token.parse::<f32>() {
            Ok(value) if value.is_finite() => out.extend_from_slice(&value.to_le_bytes()),
            Ok(_) => {
                if out_of_range.is_none() {
                    out_of_range = Some(BadRowReason::OutOfRange {
                        index,
                        text: excerpt(token),
                    });
                }
            }
            Err(_) => return Err(Rejection::Unverified(out_of_range)),
        }
        index += 1;
        s.skip_whitespace();
        if s.eat(b',') {
            s.skip_whitespace();
        } else if s.eat(b']') {
            break;
        } else {
            return Err(Rejection::Unverified(out_of_range));
        }
    }
    s.skip_whitespace();
    if s.peek().is_some() {
        return Err(Rejection::Unverified(out_of_range));
    }
    match out_of_range {
        Some(reason) => Err(Rejection::Final(reason)),
        None => Ok(out),
    }
}

/// Says why the scanner rejected `text`; never says "fine".
fn classify_rejected_json(text: &str, rejection: Rejection) -> BadRowReason {
    let hint = match rejection {
        Rejection::Final(reason) => return reason,
        Rejection::Unverified(hint) => hint,
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Err(e) => BadRowReason::InvalidJson {
            detail: e.to_string(),
        },
        Ok(value) => hint.unwrap_or_else(|| classify_value(&value)),
    }
}

fn value_kind(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Fallback for valid JSON the scanner gave no reason for (should not happen:
/// the scanner accepts every JSON array of in-range numbers).
fn classify_value(value: &serde_json::Value) -> BadRowReason {
    let serde_json::Value::Array(items) = value else {
        return BadRowReason::NotAnArray {
            found: value_kind(value),
        };
    };
    if items.is_empty() {
        return BadRowReason::Empty;
    }
    for (index, item) in items.iter().enumerate() {
        match item {
            serde_json::Value::Number(n) => {
                if n.as_f64().is_some_and(|x| (x as f32).is_infinite()) {
                    return BadRowReason::OutOfRange {
                        index,
                        text: excerpt(&n.to_string()),
                    };
                }
            }
            other => {
                return BadRowReason::NonNumericElement {
                    index,
                    found: value_kind(other),
                }
            }
        }
    }
    BadRowReason::InvalidJson {
        detail: "the array of numbers could not be read".to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Compressed payloads.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Zstd,
    Gzip,
    Lz4,
}

impl Algorithm {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "zstd" => Some(Self::Zstd),
            "gzip" => Some(Self::Gzip),
            "lz4" => Some(Self::Lz4),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
            Self::Lz4 => "lz4",
        }
    }
}

fn malformed(detail: impl Into<String>) -> BadRowReason {
    BadRowReason::MalformedCompressedHeader {
        detail: detail.into(),
    }
}

/// `rest` is the payload after [`COMPRESSED_PREFIX`].
fn decode_compressed(rest: &str) -> Result<Vec<u8>, BadRowReason> {
    let (header, payload) = rest.split_once('\n').ok_or_else(|| {
        malformed("no newline between `{algorithm}:{original_size}` and the base64 data")
    })?;
    let (name, size) = header.split_once(':').ok_or_else(|| {
        malformed(format!(
            "expected `{{algorithm}}:{{original_size}}`, found {:?}",
            excerpt(header)
        ))
    })?;
    let algorithm = Algorithm::from_name(name).ok_or_else(|| BadRowReason::UnknownCompression {
        algorithm: excerpt(name),
    })?;
    let declared = parse_original_size(size)?;
    let compressed = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .map_err(|e| BadRowReason::InvalidBase64 {
            detail: e.to_string(),
        })?;
    let bytes = decompress(algorithm, &compressed, declared)?;
    if bytes.len() != declared {
        return Err(BadRowReason::SizeMismatch {
            declared,
            actual: bytes.len(),
        });
    }
    check_binary_vector(bytes)
}

fn parse_original_size(size: &str) -> Result<usize, BadRowReason> {
    let invalid = || {
        malformed(format!(
            "original_size {:?} is not a decimal byte count",
            excerpt(size)
        ))
    };
    if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let too_large = || {
        malformed(format!(
            "original_size {} is larger than the {MAX_ORIGINAL_SIZE}-byte limit",
            excerpt(size)
        ))
    };
    let value = size.parse::<u64>().map_err(|_| too_large())?;
    if value > MAX_ORIGINAL_SIZE {
        return Err(too_large());
    }
    usize::try_from(value).map_err(|_| too_large())
}

/// Decompresses at most `declared + 1` bytes, so a payload that expands
/// beyond its header cannot exhaust memory.
fn decompress(
    algorithm: Algorithm,
    compressed: &[u8],
    declared: usize,
) -> Result<Vec<u8>, BadRowReason> {
    let failed = |detail: String| BadRowReason::DecompressionFailed {
        algorithm: algorithm.name(),
        detail,
    };
    let limit = declared.saturating_add(1);
    match algorithm {
        Algorithm::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(compressed)
                .map_err(|e| failed(e.to_string()))?;
            read_bounded(decoder, declared).map_err(|e| failed(e.to_string()))
        }
        Algorithm::Gzip => read_bounded(flate2::read::GzDecoder::new(compressed), declared)
            .map_err(|e| failed(e.to_string())),
        Algorithm::Lz4 => {
            let cap = limit.min(
                compressed
                    .len()
                    .saturating_mul(LZ4_MAX_RATIO)
                    .saturating_add(64),
            );
            match lz4_flex::block::decompress(compressed, cap) {
                Ok(bytes) => Ok(bytes),
                Err(lz4_flex::block::DecompressError::OutputTooSmall { .. }) if cap == limit => {
                    Err(BadRowReason::SizeMismatch {
                        declared,
                        actual: limit,
                    })
                }
                Err(e) => Err(failed(e.to_string())),
            }
        }
    }
}

fn read_bounded(reader: impl Read, declared: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(declared.min(MAX_PREALLOCATION));
    let limit = u64::try_from(declared)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    reader.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

/// Checks decompressed bytes: whole f32 values, at least one, all finite.
fn check_binary_vector(bytes: Vec<u8>) -> Result<Vec<u8>, BadRowReason> {
    let mut chunks = bytes.chunks_exact(4);
    if !chunks.remainder().is_empty() {
        return Err(BadRowReason::NotMultipleOf4 { len: bytes.len() });
    }
    if bytes.is_empty() {
        return Err(BadRowReason::Empty);
    }
    let non_finite =
        chunks.position(|chunk| !matches!(f32_from_chunk(chunk), Some(x) if x.is_finite()));
    match non_finite {
        Some(index) => Err(BadRowReason::NonFinite { index }),
        None => Ok(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

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

    // --- plain JSON ----------------------------------------------------

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

    // --- compressed ----------------------------------------------------

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

    // --- validate_row and helpers -------------------------------------

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

    // --- properties ----------------------------------------------------

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
    }
}
