//! Encoders of legacy `embedding_data` payloads and `F32_BLOB` bytes, written
//! independently of the decoder they are meant to test.

use std::io::Write;

use base64::Engine as _;

/// A compression algorithm of the legacy store's `embedding_data` payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A zstd frame (level 3).
    Zstd,
    /// An LZ4 block without size prefix (`lz4_flex::block::compress`).
    Lz4,
    /// A gzip stream.
    Gzip,
}

impl Compression {
    /// Every algorithm, in the order generated rows rotate through them.
    pub const ALL: [Compression; 3] = [Compression::Zstd, Compression::Lz4, Compression::Gzip];

    /// The name written in the payload header (`zstd`, `lz4`, `gzip`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
            Compression::Gzip => "gzip",
        }
    }
}

/// Encodes a vector as the plain JSON the legacy store wrote (`serde_json` of `Vec<f32>`).
///
/// Non-finite values come out as `null`, exactly as `serde_json` writes them.
pub fn encode_json(v: &[f32]) -> String {
    // Serializing a slice of f32 into a String cannot fail: serde_json writes
    // non-finite floats as `null` instead of erroring.
    serde_json::to_string(v).unwrap_or_default()
}

/// Encodes a vector as a compressed payload: its little-endian f32 bytes, compressed with `alg`.
pub fn encode_compressed(alg: Compression, v: &[f32]) -> String {
    let raw = vector_bytes(v);
    encode_compressed_raw(alg.as_str(), raw.len(), &raw)
}

/// Writes `__compressed__:{alg_name}:{original_size}\n{base64}` around `raw` compressed with
/// `alg_name`, for crafting bad payloads.
///
/// The header is written as given, even when it lies; an unknown `alg_name`
/// compresses with zstd.
///
/// # Panics
///
/// Only if in-memory compression fails, which zstd and flate2 do not do when
/// writing into a `Vec`.
pub fn encode_compressed_raw(alg_name: &str, original_size: usize, raw: &[u8]) -> String {
    let compressed = match alg_name {
        "lz4" => lz4_flex::block::compress(raw),
        "gzip" => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(raw)
                .and_then(|()| enc.finish())
                .expect("gzip into a Vec cannot fail")
        }
        _ => zstd::encode_all(raw, 3).expect("zstd into a Vec cannot fail"),
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(compressed);
    format!("__compressed__:{alg_name}:{original_size}\n{b64}")
}

/// The vector as libSQL stores an `F32_BLOB`: little-endian f32 values, no header.
pub fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
