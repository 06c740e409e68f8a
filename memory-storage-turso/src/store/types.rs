//! What the store reads and writes: an [`Embedding`], where a stored one was
//! found ([`Source`]), and a search hit ([`SimilarEmbedding`]).

use serde::Serialize;

use crate::schema::{route, TargetTable};

/// One embedding: the vector of an item, with its key and model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Embedding {
    /// Primary key, unique across every embedding table.
    pub embedding_id: String,
    /// The embedded item.
    pub item_id: String,
    /// The item's kind (`episode`, `pattern`, …); searches can filter on it.
    pub item_type: String,
    /// The model that produced the vector.
    pub model: String,
    /// The vector; its length is the dimension and picks the table.
    pub vector: Vec<f32>,
    /// Unix seconds.
    pub created_at: i64,
}

impl Embedding {
    /// An embedding created now.
    pub fn new(
        embedding_id: impl Into<String>,
        item_id: impl Into<String>,
        item_type: impl Into<String>,
        model: impl Into<String>,
        vector: Vec<f32>,
    ) -> Self {
        Embedding {
            embedding_id: embedding_id.into(),
            item_id: item_id.into(),
            item_type: item_type.into(),
            model: model.into(),
            vector,
            created_at: crate::db::unix_now(),
        }
    }

    /// The vector's length.
    pub fn dimension(&self) -> usize {
        self.vector.len()
    }

    /// The table this embedding lives in (the one routing function).
    pub fn table(&self) -> TargetTable {
        route(self.dimension())
    }
}

/// Where a stored embedding was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Source {
    /// One of the per-dimension tables.
    Table(TargetTable),
    /// The legacy `embeddings` table (a row not migrated yet).
    Legacy,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Table(t) => f.write_str(t.name()),
            Source::Legacy => f.write_str(crate::schema::LEGACY_TABLE),
        }
    }
}

/// An embedding as read back, with where it was found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEmbedding {
    pub embedding: Embedding,
    pub source: Source,
}

/// One search hit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimilarEmbedding {
    pub embedding: Embedding,
    /// Cosine similarity with the query, `1 - vector_distance_cos`.
    pub similarity: f64,
    pub source: Source,
}

/// Checks an embedding before it is written: a non-empty id, a non-empty
/// vector of finite values. Returns the reason it cannot be stored.
pub(crate) fn invalid_reason(e: &Embedding) -> Option<String> {
    if e.embedding_id.is_empty() {
        return Some("its embedding_id is empty".into());
    }
    if e.vector.is_empty() {
        return Some("its vector is empty".into());
    }
    e.vector
        .iter()
        .position(|x| !x.is_finite())
        .map(|i| format!("element {i} of its vector is NaN or infinite"))
}
