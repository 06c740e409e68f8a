//! Sample *legacy* databases: the `embeddings` table as the old store wrote it.
//!
//! Used by the migration's `--demo`, by integration tests (as a builder of
//! precise fixtures) and by the benchmark. Everything here follows
//! `LEGACY-FORMATS.md`: every id format, plain and compressed payloads, the
//! optional `embedding_vector` column, and every kind of bad row. Generation is
//! deterministic (a seeded splitmix64, no `rand`) and streaming, so a million
//! rows need no more memory than one batch.
//!
//! The module is self-contained on purpose: it carries its own encoders, so a
//! fixture never depends on the decoder it is meant to test.
//!
//! Layout: `sample/encode.rs` writes payloads, `sample/spec.rs` says what a
//! sample holds, `sample/generate.rs` (with `sample/rng.rs`) builds the rows
//! and `sample/db.rs` writes them into a legacy table.

mod db;
mod encode;
mod generate;
pub(crate) mod rng;
mod spec;

pub use db::{create_legacy_table, generate_legacy_database, insert_legacy_rows};
pub use encode::{
    encode_compressed, encode_compressed_raw, encode_json, vector_bytes, Compression,
};
pub use generate::{generate_rows, summarize};
pub use spec::{BadKind, SampleSpec, SampleSummary};

/// One row of the legacy `embeddings` table, as a fixture.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyRow {
    /// Primary key, in one of the four id formats seen in the wild.
    pub embedding_id: String,
    /// The embedded item, usually a hyphenated UUID.
    pub item_id: String,
    /// `episode`, `pattern`, `embedding` or `unknown`.
    pub item_type: String,
    /// Plain JSON array or `__compressed__:{alg}:{size}\n{base64}` text.
    pub embedding_data: String,
    /// The legacy `F32_BLOB(384)` column; ignored when the table lacks it.
    pub embedding_vector: Option<Vec<u8>>,
    /// The `dimension` column as written (bad rows may lie here).
    pub dimension: i64,
    /// Model name, real or a placeholder such as `default`.
    pub model: String,
    /// Unix seconds.
    pub created_at: i64,
}

#[cfg(test)]
mod tests;
