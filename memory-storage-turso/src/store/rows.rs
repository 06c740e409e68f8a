//! Reading stored rows back as [`Embedding`]s: from a per-dimension table
//! (the vector from its `F32_BLOB`) or from the legacy table (the vector
//! decoded from `embedding_data` by the crate's one decoder).

use libsql::Value;

use super::types::Embedding;
use crate::decode::check_legacy_row;
use crate::decode::row::{type_name, EmbeddingRow};
use crate::decode::{vector_from_le_bytes, BadRowReason};
use crate::error::{DbContext, Error, Result};
use crate::schema::{TargetTable, LEGACY_TABLE};

/// The eight columns (text read as exact bytes, in
/// [`crate::schema::COLUMNS`] order) and then any `extra` expressions;
/// `vector_col` is `embedding_vector`, or `NULL` for a legacy table
/// without that column.
pub(crate) fn select_sql(vector_col: &str, extra: &str) -> String {
    let columns = crate::decode::row::select_columns(vector_col);
    if extra.is_empty() {
        columns
    } else {
        format!("{columns}, {extra}")
    }
}

/// [`select_sql`] for a per-dimension table, where `embedding_data` is
/// only read when the vector column cannot be used (the API never returns
/// the payload, and at 3072 dimensions it is ~27 KB of JSON a row).
pub(crate) fn select_target_sql(extra: &str) -> String {
    select_sql("embedding_vector", extra).replace(
        "embedding_data",
        "(CASE WHEN typeof(embedding_vector) = 'blob' AND typeof(dimension) = 'integer' \
         AND length(embedding_vector) = 4 * dimension THEN NULL ELSE embedding_data END)",
    )
}

/// Reads one row selected with [`select_sql`] or [`select_target_sql`].
pub(crate) fn read_row(row: &libsql::Row, what: &str) -> Result<EmbeddingRow> {
    EmbeddingRow::from_row(row).db_context(|| format!("reading {what}"))
}

fn undecodable(table: &str, row: &EmbeddingRow, reason: BadRowReason) -> Error {
    Error::UndecodableEmbedding {
        table: table.to_string(),
        embedding_id: row.key.to_string(),
        reason,
    }
}

fn text(value: &Value, column: &'static str) -> std::result::Result<String, BadRowReason> {
    match value {
        Value::Text(s) => Ok(s.clone()),
        Value::Null => Err(BadRowReason::NullColumn { column }),
        other => Err(BadRowReason::NotText {
            column,
            found: type_name(other),
        }),
    }
}

/// `created_at` as stored: an integer, or a whole real or decimal text
/// some legacy writers left.
fn created_at(table: &str, row: &EmbeddingRow) -> Result<i64> {
    let whole = |r: f64| (r.fract() == 0.0 && r.abs() < 9.0e15).then_some(r as i64);
    let found = match &row.created_at {
        Value::Integer(i) => return Ok(*i),
        Value::Real(r) => whole(*r),
        Value::Text(t) => t.trim().parse::<i64>().ok(),
        _ => None,
    };
    found.ok_or_else(|| Error::UnreadableColumn {
        table: table.to_string(),
        embedding_id: row.key.to_string(),
        column: "created_at",
        found: match &row.created_at {
            Value::Text(t) => format!("the text {t:?}"),
            other => type_name(other).to_string(),
        },
    })
}

fn columns(table: &str, row: &EmbeddingRow, vector: Vec<f32>) -> Result<Embedding> {
    let text = |v: &Value, c| text(v, c).map_err(|r| undecodable(table, row, r));
    Ok(Embedding {
        embedding_id: text(&row.key.0, "embedding_id")?,
        item_id: text(&row.item_id, "item_id")?,
        item_type: text(&row.item_type, "item_type")?,
        model: text(&row.model, "model")?,
        vector,
        created_at: created_at(table, row)?,
    })
}

/// The bytes of a well-formed vector column: a blob of `4 × dimension`.
fn blob_vector(row: &EmbeddingRow) -> Option<Vec<f32>> {
    let (Value::Blob(bytes), Value::Integer(dim)) = (&row.embedding_vector, &row.dimension) else {
        return None;
    };
    let dim = usize::try_from(*dim).ok()?;
    (dim > 0 && bytes.len() == 4 * dim)
        .then(|| vector_from_le_bytes(bytes))
        .flatten()
}

/// A row of a per-dimension table. The vector is the `F32_BLOB` as stored;
/// a row without one (written by something else) is decoded from its
/// `embedding_data`, compressed or not.
pub(crate) fn from_target(row: EmbeddingRow, table: TargetTable) -> Result<Embedding> {
    let vector = match blob_vector(&row) {
        Some(v) => v,
        None => {
            let mut probe = row.clone();
            probe.embedding_vector = Value::Null;
            let bytes = check_legacy_row(&probe).map_err(|r| undecodable(table.name(), &row, r))?;
            vector_from_le_bytes(&bytes).unwrap_or_default()
        }
    };
    columns(table.name(), &row, vector)
}

/// A row of the legacy table, checked exactly as the migration checks it
/// (a row the migration would quarantine is an error here too), the vector
/// decoded from `embedding_data`.
pub(crate) fn from_legacy(row: EmbeddingRow) -> Result<Embedding> {
    let bytes = check_legacy_row(&row).map_err(|r| undecodable(LEGACY_TABLE, &row, r))?;
    let vector = vector_from_le_bytes(&bytes).unwrap_or_default();
    columns(LEGACY_TABLE, &row, vector)
}
