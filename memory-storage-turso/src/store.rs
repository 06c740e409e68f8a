//! The multi-dimension embedding store: reading, writing and searching the
//! per-dimension tables, with a fallback to the legacy `embeddings` table
//! while a migration is not finished.
//!
//! ```no_run
//! use memory_storage_turso::init::{initialize_schema, SchemaOptions};
//! use memory_storage_turso::store::{Embedding, EmbeddingStore};
//!
//! # async fn run(conn: libsql::Connection) -> Result<(), Box<dyn std::error::Error>> {
//! initialize_schema(&conn, &SchemaOptions::default()).await?;
//! let store = EmbeddingStore::open(conn).await?;
//! store
//!     .store(&Embedding::new("e1", "item-1", "episode", "model-a", vec![0.1; 384]))
//!     .await?;
//! let hits = store.find_similar(&[0.1; 384], Some("episode"), 10, Some(0.5)).await?;
//! # Ok(()) }
//! ```
//!
//! **Transition.** While the legacy table holds rows that are in no
//! per-dimension table (not migrated yet):
//!
//! - `get_*` read the per-dimension tables first and fall back to the
//!   legacy table, decoding its `embedding_data` (plain or compressed) with
//!   the crate's one decoder;
//! - writes go to the per-dimension tables only. Storing or deleting a key
//!   the legacy table also holds removes that legacy row (and the
//!   migration's ledger entry), so neither a read nor a later migration
//!   brings the older version back;
//! - `find_similar` ranks the per-dimension table (index or brute force)
//!   and, merged into it, the unmigrated legacy rows of the query's
//!   dimension, decoded and compared here (brute force, so slower). The
//!   store checks whether such rows exist when it opens and again at most
//!   every [`TRANSITION_RECHECK`] while they do; once none are left it stops
//!   looking (call [`EmbeddingStore::refresh_transition`] after writing to
//!   the legacy table by other means).

mod read;
mod rows;
mod search;
mod transition;
mod twins;
mod types;
mod write;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use libsql::Connection;

pub use search::{SearchMethod, MAX_INDEX_CANDIDATES, OVERFETCH, OVERFETCH_MIN};
pub use transition::unmigrated_rows_exist;
pub use types::{Embedding, SimilarEmbedding, Source, StoredEmbedding};

use crate::error::{Error, Result};
use crate::schema::TargetTable;

/// How often a store in transition checks again whether unmigrated legacy
/// rows remain.
pub const TRANSITION_RECHECK: Duration = Duration::from_secs(30);

/// Retries of a search after a failure that may pass.
const READ_RETRIES: u32 = 5;

/// Reads, writes and searches embeddings of any dimension on one libSQL
/// connection. It can be shared between tasks (`Arc<EmbeddingStore>`): its
/// write transactions take turns on the connection. Reads made meanwhile on
/// the same connection see the write in flight; for isolation, open a store
/// per connection.
pub struct EmbeddingStore {
    conn: Connection,
    transition: Mutex<TransitionState>,
    /// One write transaction at a time on `conn`.
    writing: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone, Copy)]
struct TransitionState {
    unmigrated: bool,
    checked: Instant,
}

impl EmbeddingStore {
    /// A store on `conn`. The per-dimension tables must exist
    /// ([`crate::init::initialize_schema`] creates them); fails with
    /// [`Error::SchemaNotInitialized`] naming the missing ones otherwise.
    pub async fn open(conn: Connection) -> Result<Self> {
        let existing = transition::existing_targets(&conn).await?;
        let missing: Vec<String> = TargetTable::ALL
            .iter()
            .filter(|t| !existing.contains(t))
            .map(|t| t.name().to_string())
            .collect();
        if !missing.is_empty() {
            return Err(Error::SchemaNotInitialized { missing });
        }
        let unmigrated = unmigrated_rows_exist(&conn).await?;
        Ok(EmbeddingStore {
            conn,
            transition: Mutex::new(TransitionState {
                unmigrated,
                checked: Instant::now(),
            }),
            writing: tokio::sync::Mutex::new(()),
        })
    }

    /// The connection the store uses.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Stores one embedding in the table of its dimension (replacing any
    /// embedding with the same `embedding_id`, in whichever table).
    pub async fn store(&self, embedding: &Embedding) -> Result<()> {
        self.store_batch(std::slice::from_ref(embedding)).await
    }

    /// Stores many embeddings of any mix of dimensions in one transaction,
    /// grouped per table into multi-row `INSERT`s. When a key appears twice
    /// the last one wins. Nothing is written if any embedding is invalid.
    pub async fn store_batch(&self, embeddings: &[Embedding]) -> Result<()> {
        let _turn = self.writing.lock().await;
        write::store_batch(&self.conn, embeddings).await
    }

    /// The embedding stored under `embedding_id`: from its per-dimension
    /// table, else (not migrated yet) from the legacy table.
    pub async fn get_by_id(&self, embedding_id: &str) -> Result<Option<StoredEmbedding>> {
        read::get_by_id(&self.conn, embedding_id).await
    }

    /// Every embedding of an item (one per model or dimension), oldest
    /// first, unmigrated legacy rows included.
    pub async fn get_by_item(
        &self,
        item_id: &str,
        item_type: &str,
    ) -> Result<Vec<StoredEmbedding>> {
        read::get_by_item(&self.conn, item_id, item_type).await
    }

    /// Deletes `embedding_id` wherever it is (the legacy table included);
    /// returns whether anything was deleted.
    pub async fn delete(&self, embedding_id: &str) -> Result<bool> {
        let _turn = self.writing.lock().await;
        write::delete(&self.conn, embedding_id).await
    }

    /// The `k` embeddings of the query's dimension most similar to `query`
    /// by cosine, best first (ties by `embedding_id`), optionally only of
    /// `item_type` and only with a similarity of at least `min_similarity`.
    ///
    /// A native table with its DiskANN index is searched through
    /// `vector_top_k`; with an `item_type` filter it over-fetches
    /// ([`OVERFETCH`] × k, at least k + [`OVERFETCH_MIN`], then more, sized
    /// by the share that survived, while too few survive; scanning instead
    /// when the index has no more candidates to give or past
    /// [`MAX_INDEX_CANDIDATES`]).
    /// `embeddings_other`, and a native table without its index, are
    /// scanned with `vector_distance_cos`. During a transition the
    /// unmigrated legacy rows are ranked in as well (see the module docs).
    pub async fn find_similar(
        &self,
        query: &[f32],
        item_type: Option<&str>,
        k: usize,
        min_similarity: Option<f32>,
    ) -> Result<Vec<SimilarEmbedding>> {
        let include_legacy = self.in_transition().await?;
        let q = search::Query {
            vector: query,
            item_type,
            k,
            min_similarity,
        };
        // A search only reads: after a failure that may pass (a lost
        // request, a statement the server interrupted) it is asked again.
        crate::db::with_retries(READ_RETRIES, || {
            search::find_similar(&self.conn, &q, include_legacy)
        })
        .await
    }

    /// How a query of `dimension` is answered now: through the DiskANN
    /// index of its table, or by scanning it.
    pub async fn search_method(&self, dimension: usize) -> Result<SearchMethod> {
        Ok(search::method(&self.conn, crate::schema::route(dimension))
            .await?
            .0)
    }

    /// Whether unmigrated legacy rows exist, as last checked (checked again
    /// when the last check said yes and is older than
    /// [`TRANSITION_RECHECK`]).
    pub async fn in_transition(&self) -> Result<bool> {
        let state = *self.state();
        if state.unmigrated && state.checked.elapsed() >= TRANSITION_RECHECK {
            return self.refresh_transition().await;
        }
        Ok(state.unmigrated)
    }

    /// Checks now whether unmigrated legacy rows exist, and remembers it.
    pub async fn refresh_transition(&self) -> Result<bool> {
        let unmigrated = unmigrated_rows_exist(&self.conn).await?;
        *self.state() = TransitionState {
            unmigrated,
            checked: Instant::now(),
        };
        Ok(unmigrated)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, TransitionState> {
        // The state is two plain fields: a panic elsewhere cannot leave it
        // half written, so a poisoned lock is still good.
        self.transition
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
