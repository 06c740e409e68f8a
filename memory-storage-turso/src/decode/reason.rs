//! Why a legacy row cannot be migrated: [`BadRowReason`], one sentence and
//! one stable code per reason.

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
    /// A text column holds bytes that are not valid UTF-8.
    #[error("the {column} column holds text that is not valid UTF-8")]
    InvalidUtf8 {
        /// The column name.
        column: &'static str,
    },
    /// The database refused to store the row (a constraint of an existing
    /// target table, a value too big…); the database's message in `detail`.
    #[error("the database refused to store the row in {table}: {detail}")]
    Rejected {
        /// The target table.
        table: String,
        /// The database's message.
        detail: String,
    },
    /// Several legacy rows share this `embedding_id` (a table without a
    /// primary key): none can be told to be the right one.
    #[error("{rows} rows of the legacy table share this embedding_id; none is migrated until only one is left")]
    DuplicateKey {
        /// How many rows share the id.
        rows: u64,
    },
    /// The `embedding_id` is NULL (a table without `NOT NULL`): the row
    /// has no key to be found by.
    #[error(
        "the embedding_id is NULL: the row has no key, so it cannot be migrated (give it an id)"
    )]
    NullKey,
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
            Self::Rejected { .. } => "rejected_by_database",
            Self::InvalidUtf8 { .. } => "invalid_utf8",
            Self::DuplicateKey { .. } => "duplicate_embedding_id",
            Self::NullKey => "null_embedding_id",
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
