//! A write transaction given as its list of statements: over the network
//! one Hrana request ([`Pipeline::transaction`]), on a connection one
//! statement after another inside `BEGIN IMMEDIATE` … `COMMIT`.
//!
//! Why the network path matters beyond its round trips: sqld interrupts
//! whatever its connection is running when an earlier request on the same
//! stream is cancelled. The `libsql` client reads every query through a
//! cursor and drops the cursor's HTTP answer at the query's last row, so
//! sqld cancels that request (90 of 150 such queries in a trace of its
//! log), and when the cancellation lands after the next request began, it
//! interrupts that one. A DiskANN insert so interrupted reports "vector
//! index(insert): failed to select start node for search", as SQLite's
//! generic error (seen once in CI, an index build failing its run). A
//! transaction sent as one pipeline request runs on a stream that never
//! saw a cursor.

use libsql::{Connection, Value};

use crate::connect::pipeline::{Failure, Outcome, Pipeline, Statement};

/// Runs `statements` as one transaction: through `remote` when given,
/// else on `conn`. Either way a failure names the statement (its index
/// in `statements`; `statements.len()` for the `COMMIT`) and nothing of
/// the transaction is committed, except possibly with
/// [`Failure::Request`], a lost answer.
pub(crate) async fn transaction(
    conn: &Connection,
    remote: Option<&Pipeline>,
    statements: Vec<Statement>,
) -> Result<Vec<Outcome>, Failure> {
    if let Some(pipeline) = remote {
        return pipeline.transaction(statements).await;
    }
    let failed = |step, error| Failure::Step { step, error };
    conn.execute("BEGIN IMMEDIATE", ())
        .await
        .map_err(|e| failed(0, e))?;
    let n = statements.len();
    let mut outcomes = Vec::with_capacity(n);
    for (step, statement) in statements.into_iter().enumerate() {
        match run(conn, statement).await {
            Ok(outcome) => outcomes.push(outcome),
            Err(error) => {
                let _ = conn.execute("ROLLBACK", ()).await;
                return Err(failed(step, error));
            }
        }
    }
    if let Err(error) = conn.execute("COMMIT", ()).await {
        let _ = conn.execute("ROLLBACK", ()).await;
        return Err(failed(n, error));
    }
    Ok(outcomes)
}

/// One statement: a `SELECT` returns its rows, anything else its count of
/// changed rows.
async fn run(conn: &Connection, statement: Statement) -> libsql::Result<Outcome> {
    let is_query = statement
        .sql
        .trim_start()
        .get(..6)
        .is_some_and(|head| head.eq_ignore_ascii_case("SELECT"));
    if !is_query {
        let affected = conn.execute(&statement.sql, statement.args).await?;
        return Ok(Outcome {
            rows: Vec::new(),
            affected,
        });
    }
    let mut rows = conn.query(&statement.sql, statement.args).await?;
    let columns = rows.column_count();
    let mut out = Vec::new();
    while let Some(row) = rows.next().await? {
        out.push(
            (0..columns)
                .map(|i| row.get_value(i))
                .collect::<libsql::Result<Vec<Value>>>()?,
        );
    }
    Ok(Outcome {
        rows: out,
        affected: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::pipeline::fail_unless;

    /// A database file with a table `t` (kept while the first value lives).
    async fn db() -> (test_support::TestDb, Connection) {
        let t = test_support::TestDb::empty().await;
        let conn = t.conn.clone();
        conn.execute("CREATE TABLE t (a INTEGER)", ())
            .await
            .unwrap();
        (t, conn)
    }

    async fn count(conn: &Connection) -> i64 {
        let mut rows = conn.query("SELECT count(*) FROM t", ()).await.unwrap();
        rows.next().await.unwrap().unwrap().get(0).unwrap()
    }

    #[tokio::test]
    async fn on_a_connection_each_statement_gives_its_rows_or_changes() {
        let (_db, conn) = db().await;
        let out = transaction(
            &conn,
            None,
            vec![
                Statement::new("INSERT INTO t VALUES (1), (2)", vec![]),
                Statement::new(
                    " select a, a * ?1 FROM t ORDER BY a",
                    vec![Value::Integer(10)],
                ),
            ],
        )
        .await
        .unwrap();
        assert_eq!(out[0].affected, 2);
        assert_eq!(
            out[1].rows,
            vec![
                vec![Value::Integer(1), Value::Integer(10)],
                vec![Value::Integer(2), Value::Integer(20)]
            ]
        );
        assert_eq!(count(&conn).await, 2);
    }

    #[tokio::test]
    async fn a_failing_statement_is_named_and_nothing_before_it_is_committed() {
        let (_db, conn) = db().await;
        let failure = transaction(
            &conn,
            None,
            vec![
                Statement::new("INSERT INTO t VALUES (1)", vec![]),
                Statement::new(fail_unless("(SELECT count(*) FROM t) = 2"), vec![]),
                Statement::new("INSERT INTO t VALUES (2)", vec![]),
            ],
        )
        .await
        .unwrap_err();
        assert!(
            matches!(failure, Failure::Step { step: 1, .. }),
            "{failure:?}"
        );
        assert_eq!(count(&conn).await, 0);
        // The connection is out of the transaction: the next one works.
        transaction(
            &conn,
            None,
            vec![Statement::new("INSERT INTO t VALUES (3)", vec![])],
        )
        .await
        .unwrap();
        assert_eq!(count(&conn).await, 1);
    }
}
