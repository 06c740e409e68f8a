//! Compressed `embedding_data`: `__compressed__:{algorithm}:{original_size}\n{base64}`
//! with zstd, lz4 or gzip, decompressed with a bound so no header can exhaust
//! memory.

use std::io::Read;

use base64::Engine as _;

use super::{excerpt, f32_from_chunk, BadRowReason};

/// Largest `original_size` a compressed payload may declare (256 MiB); larger
/// headers are refused before anything is allocated.
const MAX_ORIGINAL_SIZE: u64 = 256 * 1024 * 1024;

/// Upper bound of the initial output buffer of a streaming decompressor.
const MAX_PREALLOCATION: usize = 1024 * 1024;

/// An LZ4 block never expands by more than this factor (each extra length
/// byte adds at most 255 output bytes), plus a small constant.
const LZ4_MAX_RATIO: usize = 255;

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

/// `rest` is the payload after [`COMPRESSED_PREFIX`](super::COMPRESSED_PREFIX).
pub(super) fn decode_compressed(rest: &str) -> Result<Vec<u8>, BadRowReason> {
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
