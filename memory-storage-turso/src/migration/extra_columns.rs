//! Columns of the legacy table that the target tables do not have: their
//! values are not carried over, so a run says so before it writes.

use libsql::{Connection, Value};

use super::report::ExtraColumn;
use crate::error::{DbContext, Result};
use crate::schema::{COLUMNS, LEGACY_TABLE};

/// `name` as an SQL identifier: double-quoted, inner quotes doubled.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The columns of `legacy_columns` (as `pragma_table_info` lists those of
/// the legacy table) that are not in [`COLUMNS`], each with the number of
/// rows holding a non-NULL value in it (one scan of the table).
pub(crate) async fn find(conn: &Connection, legacy_columns: &[String]) -> Result<Vec<ExtraColumn>> {
    let extra: Vec<&String> = legacy_columns
        .iter()
        .filter(|c| !COLUMNS.iter().any(|known| known.eq_ignore_ascii_case(c)))
        .collect();
    if extra.is_empty() {
        return Ok(Vec::new());
    }
    let counts: Vec<String> = extra
        .iter()
        .map(|c| format!("count({})", quote_ident(c)))
        .collect();
    let ctx = || format!("counting the values of the extra columns of {LEGACY_TABLE}");
    let mut rows = conn
        .query(
            &format!("SELECT {} FROM {LEGACY_TABLE}", counts.join(", ")),
            (),
        )
        .await
        .db_context(ctx)?;
    let row = rows.next().await.db_context(ctx)?;
    let mut out = Vec::with_capacity(extra.len());
    for (i, name) in extra.into_iter().enumerate() {
        let n = match &row {
            Some(r) => match r.get_value(i as i32).db_context(ctx)? {
                Value::Integer(n) => n.max(0) as u64,
                _ => 0,
            },
            None => 0,
        };
        out.push(ExtraColumn {
            name: name.clone(),
            rows_with_data: n,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_with_inner_quotes_doubled() {
        assert_eq!(quote_ident("note"), "\"note\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("x y; --"), "\"x y; --\"");
    }

    #[tokio::test]
    async fn only_unknown_columns_are_counted_by_their_values() {
        let t = test_support::TestDb::empty().await;
        let conn = t.conn.clone();
        conn.execute(
            "CREATE TABLE embeddings (embedding_id TEXT, Model TEXT, \"odd \"\"name\" TEXT, spare INTEGER)",
            (),
        )
        .await
        .unwrap();
        conn.execute(
            "INSERT INTO embeddings VALUES ('a', 'm', 'x', NULL), ('b', NULL, NULL, NULL), ('c', 'm', '', NULL)",
            (),
        )
        .await
        .unwrap();
        let columns = crate::schema::table_columns(&conn, "embeddings")
            .await
            .unwrap();
        let found = find(&conn, &columns).await.unwrap();
        assert_eq!(
            found,
            vec![
                ExtraColumn {
                    name: "odd \"name".into(),
                    rows_with_data: 2
                },
                ExtraColumn {
                    name: "spare".into(),
                    rows_with_data: 0
                },
            ]
        );
        assert!(find(&conn, &columns[..2]).await.unwrap().is_empty());
    }
}
