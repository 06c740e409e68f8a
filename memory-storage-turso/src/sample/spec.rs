//! What a sample database holds: the [`SampleSpec`] asked for, the
//! [`BadKind`]s of rows a decoder must reject, and the [`SampleSummary`] of
//! what was generated.

use std::collections::BTreeMap;

use super::LegacyRow;

/// What a generated sample database holds.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    /// Total rows, bad ones included.
    pub rows: usize,
    /// Seed of the generator: the same spec always yields the same rows.
    pub seed: u64,
    /// How many bad rows, spread evenly through the rows and cycling through every [`BadKind`]
    /// (capped at `rows`).
    pub bad_rows: usize,
    /// Whether the table has the legacy `embedding_vector` column.
    pub with_vector_column: bool,
    /// `(dimension, weight)` of valid rows; entries with a zero weight or a dimension ≤ 0 are
    /// skipped, and a mix left empty means 384 only.
    pub dimension_mix: Vec<(i64, u32)>,
    /// Percent of valid rows whose payload is compressed (the algorithm rotates
    /// zstd / lz4 / gzip); only payloads whose JSON is at least 1024 bytes are compressed.
    pub compressed_percent: u32,
    /// Valid vectors lie around this many centres per dimension (a centre
    /// plus noise 0.6 its length: neighbours at cosine similarity about
    /// 0.7, as text embeddings have them); 0 draws them uniformly on the
    /// sphere, where nearest neighbours are hardly nearer than the rest.
    pub clusters: u32,
}

impl SampleSpec {
    /// The realistic mix: ~70% 384, 20% 1536, 5% 1024, 3% 3072, 2% 768 dimensions; 20% compressed;
    /// `bad_rows = max(rows / 2000, 15)` capped at `rows`; vector column present.
    pub fn realistic(rows: usize, seed: u64) -> Self {
        Self {
            rows,
            seed,
            bad_rows: (rows / 2000).max(15).min(rows),
            with_vector_column: true,
            dimension_mix: vec![(384, 70), (1536, 20), (1024, 5), (3072, 3), (768, 2)],
            compressed_percent: 20,
            clusters: 0,
        }
    }
}

/// A kind of row that is not an embedding; a decoder must reject each for its own reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadKind {
    /// JSON that does not parse: `[0.1, 0.2`.
    InvalidJson,
    /// JSON `null`.
    JsonNull,
    /// An array of strings: `["a","b"]`.
    StringArray,
    /// An array of arrays: `[[0.1],[0.2]]`.
    NestedArray,
    /// A JSON object: `{"v":[1]}`.
    Object,
    /// A number outside f32 range: `[1e39, 0.5]`.
    OutOfRange,
    /// `NaN` in the text: `[NaN, 1.0]`.
    NanText,
    /// An empty array `[]` (dimension 1).
    Empty,
    /// A valid 384 vector whose `dimension` column says 385.
    DimensionMismatch,
    /// A valid 384 vector whose `dimension` column is 0 or -4.
    DimensionNotPositive,
    /// A compressed payload with algorithm `brotli`.
    UnknownAlgorithm,
    /// A zstd header followed by text that is not base64.
    BadBase64,
    /// A real zstd payload of a 384 vector whose `original_size` is 4 too large.
    WrongOriginalSize,
    /// An lz4 payload of 10 raw bytes (size 10): not a whole number of f32.
    NotMultipleOf4,
    /// A gzip payload of a 384 vector that contains a NaN.
    NanInPayload,
    /// Valid 384 JSON with an `embedding_vector` that differs in one element
    /// (only when the table has the vector column).
    LegacyVectorMismatch,
}

impl BadKind {
    /// Every kind, in the order bad rows cycle through them.
    pub const ALL: [BadKind; 16] = [
        BadKind::InvalidJson,
        BadKind::JsonNull,
        BadKind::StringArray,
        BadKind::NestedArray,
        BadKind::Object,
        BadKind::OutOfRange,
        BadKind::NanText,
        BadKind::Empty,
        BadKind::DimensionMismatch,
        BadKind::DimensionNotPositive,
        BadKind::UnknownAlgorithm,
        BadKind::BadBase64,
        BadKind::WrongOriginalSize,
        BadKind::NotMultipleOf4,
        BadKind::NanInPayload,
        BadKind::LegacyVectorMismatch,
    ];

    /// The kinds a table can hold: all of them, minus [`BadKind::LegacyVectorMismatch`]
    /// when there is no vector column.
    pub(super) fn available(with_vector_column: bool) -> &'static [BadKind] {
        if with_vector_column {
            &Self::ALL
        } else {
            &Self::ALL[..15]
        }
    }
}

/// Summary of what was generated, for tests and the demo to check against.
#[derive(Debug, Clone, Default)]
pub struct SampleSummary {
    /// Rows generated, bad ones included.
    pub total_rows: usize,
    /// Valid rows per dimension.
    pub valid_per_dimension: BTreeMap<i64, usize>,
    /// `(embedding_id, kind)` of every bad row, sorted by id.
    pub bad: Vec<(String, BadKind)>,
    /// Sum of `4 * dimension` over valid rows: the bytes the target tables will hold.
    pub bytes_of_vectors: u64,
}

impl SampleSummary {
    pub(super) fn record(&mut self, row: &LegacyRow, bad: Option<BadKind>) {
        self.total_rows += 1;
        match bad {
            Some(kind) => self.bad.push((row.embedding_id.clone(), kind)),
            None => {
                *self.valid_per_dimension.entry(row.dimension).or_default() += 1;
                self.bytes_of_vectors += 4 * row.dimension.unsigned_abs();
            }
        }
    }

    pub(super) fn finish(mut self) -> Self {
        self.bad.sort();
        self
    }
}
