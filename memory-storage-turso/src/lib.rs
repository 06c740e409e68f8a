//! Multi-dimension embedding tables on libSQL / Turso, and the migration
//! that moves a legacy `embeddings` table into them.
//!
//! The library never prints: progress leaves it through
//! [`migration::Observer`], results through [`migration::MigrationReport`],
//! and failures as a typed [`Error`].
//!
//! Applications call [`init::initialize_schema`] at start, then read, write
//! and search through [`store::EmbeddingStore`].

pub mod connect;
mod db;
pub mod decode;
pub mod error;
pub mod init;
pub mod migration;
pub mod sample;
pub mod scan_index;
pub mod schema;
pub mod search_plan;
pub mod store;
mod stored_sql;
pub mod text;

pub use error::{Error, Result};
