//! Plain database plumbing, below everything that knows embeddings: SQLite
//! result codes and their classes, retries with backoff, transactions, and
//! small query helpers. Nothing here names the schema, the engine or the
//! store.

pub(crate) mod codes;
mod query;
mod retry;
mod txn;

pub use codes::{classify, ErrorClass};
pub use query::{
    count, data_version, index_is_on, object_exists, query_i64, schema_object, table_columns,
    unix_now, SchemaObject,
};
pub use retry::{backoff, on_connection, renew_idle_stream, with_retries, Transient};
pub use txn::in_transaction;
