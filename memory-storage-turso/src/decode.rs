//! Decoding of legacy `embedding_data` payloads into F32_BLOB bytes, and the
//! reasons a legacy row cannot be migrated.
//!
//! `embedding_data` is either a plain JSON array of numbers or a compressed
//! payload `__compressed__:{algorithm}:{original_size}\n{base64}`. Either way
//! the result is the vector as little-endian f32 bytes, which is exactly what
//! a libSQL `F32_BLOB(N)` column holds, so every bit (`-0.0`, subnormals,
//! `f32::MAX`) survives the migration.
//!
//! This file holds the entry points and the row-level checks; the JSON
//! scanner lives in `decode/json.rs`, the `__compressed__:` payloads in
//! `decode/compressed.rs`, the reasons in `decode/reason.rs`, and whether
//! cosine search can rank a vector in `decode/norm.rs`.

mod compressed;
mod json;
mod legacy;
mod norm;
mod reason;
pub mod row;

pub use legacy::check_legacy_row;
pub use norm::{cosine_distance, cosine_searchable, Unsearchable};
pub use reason::BadRowReason;

/// The prefix that marks a compressed `embedding_data` payload.
pub const COMPRESSED_PREFIX: &str = "__compressed__:";

/// How many characters of an input-derived string a reason keeps.
const EXCERPT_CHARS: usize = 40;

/// Decodes `embedding_data` (plain JSON array or `__compressed__:` payload) into the vector's
/// little-endian f32 bytes (length a non-zero multiple of 4, every value finite).
pub fn decode_embedding_data(text: &str) -> Result<Vec<u8>, BadRowReason> {
    match text.strip_prefix(COMPRESSED_PREFIX) {
        Some(rest) => compressed::decode_compressed(rest),
        None => json::decode_json(text),
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

#[cfg(test)]
mod tests;
