//! Typed errors of the library. Bad rows are not errors: they are data in
//! the migration report.

use std::path::PathBuf;

/// Everything that can stop a library call. Each message says what
/// happened and, where there is one, what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A database statement failed; `context` says what we were doing.
    #[error("{context}: {source}")]
    Database {
        context: String,
        #[source]
        source: libsql::Error,
    },
    /// The local database file does not exist (nothing was created).
    #[error("no database file at {}: check the path (nothing was created)", path.display())]
    DatabaseNotFound { path: PathBuf },
    /// The file exists but is not a SQLite/libSQL database.
    #[error("{} is not a libSQL/SQLite database: {source}", path.display())]
    NotADatabase {
        path: PathBuf,
        #[source]
        source: libsql::Error,
    },
    /// The database could not be opened.
    #[error("cannot open the database {location}: {source}")]
    Open {
        location: String,
        #[source]
        source: libsql::Error,
    },
    /// There is no legacy `embeddings` table to migrate.
    #[error("the database has no `embeddings` table: there is nothing to migrate (was it already migrated and dropped?)")]
    MissingLegacyTable,
    /// The legacy table lacks columns the migration needs.
    #[error("the `embeddings` table lacks the column(s) {}: it is not a memory-storage-turso embeddings table", missing.join(", "))]
    LegacyTableShape { missing: Vec<String> },
    /// A target table exists with a different shape; it is never altered.
    #[error("the existing table {table} lacks the column(s) {}; the migration never alters an existing table: rename or fix it, then run again", missing.join(", "))]
    IncompatibleTargetTable { table: String, missing: Vec<String> },
    /// The options make no sense together.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
}

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds "what we were doing" to a libSQL error.
pub(crate) trait DbContext<T> {
    fn db_context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> DbContext<T> for std::result::Result<T, libsql::Error> {
    fn db_context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Database {
            context: context(),
            source,
        })
    }
}
