//! Whole-database dumps, to prove a run (or a rollback) left a database
//! exactly as it was.

use std::collections::BTreeMap;

use libsql::Connection;

/// Every table of the database (SQLite's own excluded): its `CREATE`
/// statement and every row, each value tagged with its SQL type, rows in
/// a canonical order. Two dumps are equal when the schema and every value
/// of every table are.
pub async fn dump_database(conn: &Connection) -> BTreeMap<String, (String, Vec<String>)> {
    let mut tables = Vec::new();
    let mut rows = conn
        .query(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            (),
        )
        .await
        .unwrap();
    while let Some(row) = rows.next().await.unwrap() {
        tables.push((row.get::<String>(0).unwrap(), row.get::<String>(1).unwrap()));
    }
    let mut out = BTreeMap::new();
    for (name, sql) in tables {
        let mut rows = conn
            .query(&format!("SELECT * FROM \"{name}\""), ())
            .await
            .unwrap();
        let n = rows.column_count();
        let mut dumped = Vec::new();
        while let Some(row) = rows.next().await.unwrap() {
            let values: Vec<String> = (0..n)
                .map(|i| format!("{:?}", row.get_value(i).unwrap()))
                .collect();
            dumped.push(values.join(" | "));
        }
        dumped.sort();
        out.insert(name, (sql, dumped));
    }
    out
}

/// The names of every index and trigger of the database.
pub async fn schema_objects(conn: &Connection) -> Vec<String> {
    let mut rows = conn
        .query(
            "SELECT type || ' ' || name || ' ON ' || tbl_name || ': ' || coalesce(sql, '') FROM sqlite_master WHERE type IN ('index', 'trigger') ORDER BY name",
            (),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.unwrap() {
        out.push(row.get::<String>(0).unwrap());
    }
    out
}

/// Asserts two [`dump_database`] results are equal, naming the first table
/// and row that differ (shortened) instead of printing both dumps.
pub fn assert_same_database(
    expected: &BTreeMap<String, (String, Vec<String>)>,
    found: &BTreeMap<String, (String, Vec<String>)>,
    what: &str,
) {
    let short = |s: &str| s.chars().take(160).collect::<String>();
    let names = |d: &BTreeMap<String, (String, Vec<String>)>| d.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(found), names(expected), "{what}: the tables differ");
    for (table, (sql, rows)) in expected {
        let (found_sql, found_rows) = &found[table];
        assert_eq!(found_sql, sql, "{what}: the schema of {table} differs");
        assert_eq!(
            found_rows.len(),
            rows.len(),
            "{what}: {table} holds another number of rows"
        );
        for (a, b) in rows.iter().zip(found_rows) {
            assert!(
                a == b,
                "{what}: a row of {table} differs:\n  expected {}\n  found    {}",
                short(a),
                short(b)
            );
        }
    }
}
