//! The check of a legacy row before it is decoded: the types of its
//! columns, valid UTF-8, then its vector.

use libsql::Value;

use super::{validate_row, BadRowReason};
use crate::decode::row::{type_name, EmbeddingRow};

/// Checks the types of a legacy row's columns, then decodes its vector
/// (little-endian f32 bytes).
pub fn check_legacy_row(row: &EmbeddingRow) -> Result<Vec<u8>, BadRowReason> {
    if row.invalid_utf8 != 0 {
        let column = crate::decode::row::COLUMNS
            .iter()
            .enumerate()
            .find(|(i, _)| row.invalid_utf8 & (1 << i) != 0)
            .map_or("?", |(_, c)| *c);
        return Err(BadRowReason::InvalidUtf8 { column });
    }
    for (column, value) in [
        ("item_id", &row.item_id),
        ("item_type", &row.item_type),
        ("model", &row.model),
        ("created_at", &row.created_at),
    ] {
        if matches!(value, Value::Null) {
            return Err(BadRowReason::NullColumn { column });
        }
    }
    let data = match &row.embedding_data {
        Value::Text(s) => s.as_str(),
        other => {
            return Err(BadRowReason::NotText {
                column: "embedding_data",
                found: type_name(other),
            })
        }
    };
    let dimension = match &row.dimension {
        Value::Integer(d) => *d,
        Value::Text(s) => {
            return Err(BadRowReason::InvalidDimension {
                found: format!("text {s:?}"),
            })
        }
        other => {
            return Err(BadRowReason::InvalidDimension {
                found: type_name(other).to_string(),
            })
        }
    };
    let legacy_vector = match &row.embedding_vector {
        Value::Null => None,
        Value::Blob(b) => Some(b.as_slice()),
        other => {
            return Err(BadRowReason::LegacyVectorMismatch {
                detail: format!(
                    "embedding_vector holds {}, not vector bytes",
                    type_name(other)
                ),
            })
        }
    };
    validate_row(data, dimension, legacy_vector)
}
