//! Small queries every layer asks: does an object exist (and what it is),
//! which columns has a table, one integer, a count, the connection's data version, the time.

use libsql::{Connection, Value};

use crate::error::{DbContext, Result};

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The first column of the first row of `sql`, when it is an integer.
/// `what` names the work for the error ("counting the rows of x").
pub async fn query_i64(
    conn: &Connection,
    sql: &str,
    params: Vec<Value>,
    what: impl Fn() -> String,
) -> Result<Option<i64>> {
    let mut rows = conn.query(sql, params).await.db_context(&what)?;
    match rows.next().await.db_context(&what)? {
        Some(row) => match row.get_value(0).db_context(&what)? {
            Value::Integer(i) => Ok(Some(i)),
            _ => Ok(None),
        },
        None => Ok(None),
    }
}

/// Rows of `table` (a name from the schema, never from input).
pub async fn count(conn: &Connection, table: &str) -> Result<u64> {
    let n = query_i64(
        conn,
        &format!("SELECT count(*) FROM {table}"),
        vec![],
        || format!("counting the rows of {table}"),
    )
    .await?;
    Ok(n.unwrap_or(0).max(0) as u64)
}

/// SQLite's `data_version` of this connection: it changes when another
/// connection commits. Read before a window is read and again inside the
/// transaction that writes it, it tells whether anyone (an application, the
/// store) wrote in between, in which case the window is read again under
/// the write lock instead of overwriting a newer write with an older one.
pub async fn data_version(conn: &Connection) -> Result<i64> {
    let v = query_i64(conn, "PRAGMA data_version", vec![], || {
        "reading PRAGMA data_version".to_string()
    })
    .await?;
    Ok(v.unwrap_or(0))
}

/// Whether a table (or index, or any schema object) named `name` exists.
pub async fn object_exists(conn: &Connection, name: &str) -> Result<bool> {
    let mut rows = conn
        .query("SELECT 1 FROM sqlite_master WHERE name = ?1", [name])
        .await
        .db_context(|| format!("looking up {name} in the schema"))?;
    Ok(rows
        .next()
        .await
        .db_context(|| format!("looking up {name} in the schema"))?
        .is_some())
}

/// One entry of the schema (`sqlite_master`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaObject {
    /// `table`, `index`, `trigger` or `view`.
    pub kind: String,
    /// The table it belongs to (its own name, for a table).
    pub table: String,
    /// Its SQL as the database keeps it (none for an automatic index).
    pub sql: Option<String>,
}

/// The schema object named `name`, if there is one.
pub async fn schema_object(conn: &Connection, name: &str) -> Result<Option<SchemaObject>> {
    let ctx = || format!("looking up {name} in the schema");
    let mut rows = conn
        .query(
            "SELECT type, tbl_name, sql FROM sqlite_master WHERE name = ?1",
            [name],
        )
        .await
        .db_context(ctx)?;
    let Some(row) = rows.next().await.db_context(ctx)? else {
        return Ok(None);
    };
    Ok(Some(SchemaObject {
        kind: row.get::<String>(0).db_context(ctx)?,
        table: row.get::<String>(1).db_context(ctx)?,
        sql: row.get::<Option<String>>(2).db_context(ctx)?,
    }))
}

/// Whether an index named `index` is on `table` itself (one of that name
/// on another table is not: a user's, or a build's under way beside it).
pub async fn index_is_on(conn: &Connection, index: &str, table: &str) -> Result<bool> {
    Ok(schema_object(conn, index)
        .await?
        .is_some_and(|o| o.kind == "index" && o.table == table))
}

/// The column names of a table, in declaration order (empty if it does not
/// exist). `table` must be a name from the schema, never input.
pub async fn table_columns(conn: &Connection, table: &str) -> Result<Vec<String>> {
    let sql = format!("SELECT name FROM pragma_table_info('{table}')");
    let what = || format!("reading the columns of {table}");
    let mut rows = conn.query(&sql, ()).await.db_context(what)?;
    let mut names = Vec::new();
    while let Some(row) = rows.next().await.db_context(what)? {
        names.push(row.get::<String>(0).db_context(what)?);
    }
    Ok(names)
}
