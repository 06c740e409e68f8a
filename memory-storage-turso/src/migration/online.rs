//! Online migration: triggers on the legacy table record the key of every
//! row an application inserts, updates or deletes while the migration runs,
//! and the engine mirrors those rows into the target tables through the same
//! judge and writer as the copy (so a bad row goes to the quarantine record,
//! never to a target, and vectors travel as bytes, never through SQL text).
//!
//! The triggers only log keys: decoding compressed payloads and checking
//! dimensions cannot be done in SQL, and one decoder is the rule. The log
//! is drained after the copy and after the verification; the last drain
//! runs in one write transaction (the application's writers wait for it),
//! which re-verifies the rows it mirrors and then removes the triggers and
//! the log, so no change can fall between the verification and the switch.

use libsql::{Connection, Value};

use super::apply::{
    after_failure, apply, needs_write, with_rejections, ConflictPolicy, Quarantine,
};
use super::compare::{judge, Finding, Ownership};
use super::error::Result;
use super::pass::Pass;
pub use super::report::OnlineReport;
use crate::connect::pipeline::Statement;
use crate::decode::row::Key;
use crate::error::DbContext;
use crate::schema::{object_exists, LEGACY_TABLE};

pub use crate::schema::{CHANGES_TABLE, TRIGGERS};

mod remote;
use remote::Turn;

/// Keys mirrored per transaction.
const KEYS_PER_BATCH: usize = 200;

fn ddl() -> Vec<String> {
    let log = |key: &str| {
        format!("INSERT OR REPLACE INTO {CHANGES_TABLE} (embedding_id) VALUES ({key});")
    };
    vec![
        format!("CREATE TABLE IF NOT EXISTS {CHANGES_TABLE} (embedding_id PRIMARY KEY NOT NULL)"),
        format!(
            "CREATE TRIGGER IF NOT EXISTS {} AFTER INSERT ON {LEGACY_TABLE} BEGIN {} END",
            TRIGGERS[0],
            log("NEW.embedding_id")
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS {} AFTER UPDATE ON {LEGACY_TABLE} BEGIN {} {} END",
            TRIGGERS[1],
            log("OLD.embedding_id"),
            log("NEW.embedding_id")
        ),
        format!(
            "CREATE TRIGGER IF NOT EXISTS {} AFTER DELETE ON {LEGACY_TABLE} BEGIN {} END",
            TRIGGERS[2],
            log("OLD.embedding_id")
        ),
    ]
}

/// Installs the log and the triggers (idempotent), in one transaction.
pub async fn install(conn: &Connection) -> Result<()> {
    super::write::in_transaction(conn, "installing the online-migration triggers", async {
        for sql in ddl() {
            conn.execute(&sql, ())
                .await
                .db_context(|| format!("running {sql}"))?;
        }
        Ok(())
    })
    .await
}

/// Whether changes are being logged (an online migration is under way).
pub async fn active(conn: &Connection) -> crate::Result<bool> {
    object_exists(conn, CHANGES_TABLE).await
}

/// The statements removing the triggers and the log.
fn remove_sql() -> Vec<String> {
    let mut sql: Vec<String> = TRIGGERS
        .iter()
        .map(|t| format!("DROP TRIGGER IF EXISTS {t}"))
        .collect();
    sql.push(format!("DROP TABLE IF EXISTS {CHANGES_TABLE}"));
    sql
}

/// Removes the triggers and the log, inside the caller's transaction.
async fn remove(conn: &Connection) -> Result<()> {
    for sql in remove_sql() {
        conn.execute(&sql, ())
            .await
            .db_context(|| format!("running {sql}"))?;
    }
    Ok(())
}

/// Removes the triggers and the log in a transaction of their own (rollback).
pub async fn uninstall(conn: &Connection) -> Result<()> {
    super::write::in_transaction(conn, "removing the online-migration triggers", remove(conn)).await
}

/// The statement reading up to `limit` logged changes, oldest first:
/// `(rowid, key)`.
fn logged_statement(limit: usize) -> Statement {
    Statement::new(
        format!("SELECT rowid, embedding_id FROM {CHANGES_TABLE} ORDER BY rowid LIMIT ?1"),
        vec![Value::Integer(limit.min(i64::MAX as usize) as i64)],
    )
}

/// Up to `limit` logged changes, oldest first: `(rowid, key)`.
async fn logged(conn: &Connection, limit: usize) -> Result<Vec<(i64, Key)>> {
    let ctx = || format!("reading {CHANGES_TABLE}");
    let statement = logged_statement(limit);
    let mut rows = conn
        .query(&statement.sql, statement.args)
        .await
        .db_context(ctx)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.db_context(ctx)? {
        out.push((
            row.get::<i64>(0).db_context(ctx)?,
            Key(row.get_value(1).db_context(ctx)?),
        ));
    }
    Ok(out)
}

/// Forgets the changes that were mirrored (a key changed again since has a
/// new rowid and stays), one statement a batch's worth. A statement per
/// change cost a round trip each inside the catch-up's write transaction:
/// over an 80 ms round trip a turn of about fifty changes outlasted sqld's
/// 5 s transaction limit every time an application waited to write.
async fn forget(conn: &Connection, done: &[(i64, Key)]) -> Result<()> {
    for (chunk, statement) in done.chunks(KEYS_PER_BATCH).zip(forget_statements(done)) {
        conn.execute(&statement.sql, statement.args)
            .await
            .db_context(|| {
                format!(
                    "clearing {} mirrored change(s) ({} to {}) from {CHANGES_TABLE}",
                    chunk.len(),
                    chunk[0].1,
                    chunk[chunk.len() - 1].1
                )
            })?;
    }
    Ok(())
}

/// Statements forgetting the mirrored `changes`, a batch's worth each:
/// `DELETE FROM {CHANGES_TABLE} WHERE rowid = ? AND embedding_id = ? OR …`.
fn forget_statements(changes: &[(i64, Key)]) -> Vec<Statement> {
    let one = "(rowid = ? AND embedding_id = ?)";
    changes
        .chunks(KEYS_PER_BATCH)
        .map(|chunk| {
            let sql = format!(
                "DELETE FROM {CHANGES_TABLE} WHERE rowid = ? AND embedding_id = ?{}",
                format!(" OR {one}").repeat(chunk.len() - 1)
            );
            let args = chunk
                .iter()
                .flat_map(|(rowid, key)| [Value::Integer(*rowid), key.0.clone()])
                .collect();
            Statement::new(sql, args)
        })
        .collect()
}

/// The keys of `changes` and `also`, deduplicated and sorted.
fn keys(changes: &[(i64, Key)], also: &[Key]) -> Vec<Key> {
    let mut keys: Vec<Key> = changes.iter().map(|(_, k)| k.clone()).collect();
    keys.extend(also.iter().cloned());
    keys.sort();
    keys.dedup();
    keys
}

/// Mirrors logged changes, a batch per transaction, until a turn finds
/// fewer than a batch's worth: it took all the log held when it began, and
/// what the application logged since is left to the next drain or to the
/// final step ([`finish`]), which takes the whole log under the write
/// lock. Draining until the log was empty never ended while the
/// application logged a change faster than a turn took (a turn is a dozen
/// round trips: over 20 ms, a row every 100 ms was enough). Returns how
/// many changes were mirrored.
pub async fn catch_up(mut pass: Pass<'_, '_>) -> Result<u64> {
    let mut mirrored = 0u64;
    let mut attempt = 0;
    loop {
        if pass.observer.stop_requested() {
            return Ok(mirrored);
        }
        match turn(pass.reborrow()).await {
            Ok(Some(n)) if n == KEYS_PER_BATCH => mirrored += n as u64,
            Ok(Some(n)) => return Ok(mirrored + n as u64),
            Ok(None) => return Ok(mirrored),
            Err(e) => {
                pass.writer.rollback().await;
                after_failure(e, &mut attempt, pass.max_retries, pass.rejected).await?;
            }
        }
    }
}

/// One transaction of the catch-up: over the network under a held write
/// lock ([`remote`]), else (or where that way cannot go) through the
/// connection. Returns how many changes it mirrored (`None`: none logged).
async fn turn(mut pass: Pass<'_, '_>) -> Result<Option<usize>> {
    let layout = pass.layout;
    if let Some(remote) = &layout.remote {
        match remote::mirror(pass.reborrow(), remote, KEYS_PER_BATCH, &[], false).await? {
            Turn::Done(n) => return Ok(Some(n as usize)),
            Turn::Empty => return Ok(None),
            Turn::Slow | Turn::Unsettled(_) => pass.writer.rollback().await,
        }
    }
    let Pass {
        conn,
        writer,
        rejected,
        observer,
        ..
    } = pass;
    let changes = logged(conn, KEYS_PER_BATCH).await?;
    if changes.is_empty() {
        return Ok(None);
    }
    // Read under the write lock: nothing can change in between.
    writer.begin().await?;
    let window = layout.keys_window(conn, &keys(&changes, &[])).await?;
    let findings = with_rejections(judge(window), rejected);
    apply(findings, writer, Quarantine::Always, observer).await?;
    forget(conn, &changes).await?;
    writer.commit().await?;
    Ok(Some(changes.len()))
}

/// How the final step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// Settled: the triggers and the log are gone; this many logged
    /// changes were mirrored in the final transaction.
    Done(u64),
    /// This key still differs after mirroring: nothing of the final step
    /// was kept, the triggers stay.
    Unsettled(String),
}

/// A finding that still calls for a change after the final mirror: the
/// target tables would not equal the legacy table.
fn unsettled(findings: &[Finding], policy: ConflictPolicy) -> Option<String> {
    findings.iter().find_map(|f| {
        let unsettled = match f {
            // The application's own rows in the new tables are settled.
            Finding::Orphan { tables, .. } => {
                !super::compare::is_application_row(tables)
                    && (tables.iter().all(|h| h.owner != Ownership::Ours) || needs_write(f, policy))
            }
            _ => needs_write(f, policy),
        };
        unsettled.then(|| match f {
            Finding::Valid(v) => v.row.key.to_string(),
            Finding::Bad { row, .. } => row.key.to_string(),
            Finding::Stale { key, .. } | Finding::Orphan { key, .. } => key.to_string(),
        })
    })
}

/// The final step, in one write transaction: mirrors what is left in the
/// log and the rows in `also` (the verification's discrepancies, which an
/// application's writes during the verification can cause), judges those
/// rows again (the verification of every row not proven settled by the full
/// verification), and removes the triggers and the log. Writers
/// of the legacy table wait for this transaction; nothing changes between
/// its verification and the removal of the triggers.
pub async fn finish(mut pass: Pass<'_, '_>, also: &[Key]) -> Result<Finish> {
    let mut attempt = 0;
    loop {
        match final_step(pass.reborrow(), also, attempt > 0).await {
            Ok(Finish::Done(n)) => return Ok(Finish::Done(n)),
            Ok(unsettled) => {
                pass.writer.rollback().await;
                return Ok(unsettled);
            }
            Err(e) => {
                pass.writer.rollback().await;
                after_failure(e, &mut attempt, pass.max_retries, pass.rejected).await?;
            }
        }
    }
}

/// One attempt at the final step: over the network under a held write
/// lock ([`remote`]), else (or where that way cannot go) through the
/// connection.
async fn final_step(mut pass: Pass<'_, '_>, also: &[Key], retrying: bool) -> Result<Finish> {
    if retrying && !active(pass.conn).await? {
        // An attempt whose answer was lost had committed: only the final
        // step drops the log while the run holds its lock.
        return Ok(Finish::Done(0));
    }
    let layout = pass.layout;
    if let Some(remote) = &layout.remote {
        match remote::mirror(pass.reborrow(), remote, usize::MAX >> 1, also, true).await? {
            Turn::Done(n) => return Ok(Finish::Done(n)),
            Turn::Unsettled(key) => return Ok(Finish::Unsettled(key)),
            Turn::Slow | Turn::Empty => pass.writer.rollback().await,
        }
    }
    let Pass {
        conn,
        writer,
        rejected,
        observer,
        ..
    } = pass;
    writer.begin().await?;
    let changes = logged(conn, usize::MAX >> 1).await?;
    let keys = keys(&changes, also);
    for chunk in keys.chunks(KEYS_PER_BATCH) {
        let findings = with_rejections(judge(layout.keys_window(conn, chunk).await?), rejected);
        apply(findings, writer, Quarantine::Always, observer).await?;
    }
    writer.flush().await?;
    for chunk in keys.chunks(KEYS_PER_BATCH) {
        let findings = with_rejections(judge(layout.keys_window(conn, chunk).await?), rejected);
        if let Some(key) = unsettled(&findings, writer.policy()) {
            return Ok(Finish::Unsettled(key));
        }
    }
    remove(conn).await?;
    writer.commit().await?;
    Ok(Finish::Done(changes.len() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_sorted_and_unique() {
        let k = |s: &str| Key(Value::Text(s.into()));
        let changes = vec![(3, k("b")), (1, k("a")), (5, k("b"))];
        assert_eq!(
            keys(&changes, &[k("c"), k("a")]),
            vec![k("a"), k("b"), k("c")]
        );
    }

    #[tokio::test]
    async fn mirrored_changes_are_forgotten_in_one_statement_and_later_ones_stay() {
        let t = test_support::TestDb::empty().await;
        let conn = t.conn.clone();
        conn.execute_batch(&format!(
            "CREATE TABLE {CHANGES_TABLE} (embedding_id PRIMARY KEY NOT NULL); \
             INSERT INTO {CHANGES_TABLE} (embedding_id) VALUES ('a'), ('b'), ('c'), ('d');"
        ))
        .await
        .unwrap();
        let k = |s: &str| Key(Value::Text(s.into()));
        let seen = logged(&conn, 10).await.unwrap();
        assert_eq!(seen.len(), 4);
        // 'b' changed again after it was read: its new entry stays.
        conn.execute(
            &format!("INSERT OR REPLACE INTO {CHANGES_TABLE} (embedding_id) VALUES ('b')"),
            (),
        )
        .await
        .unwrap();
        forget(&conn, &seen[..3]).await.unwrap();
        let left: Vec<Key> = logged(&conn, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, key)| key)
            .collect();
        assert_eq!(left, vec![k("d"), k("b")]);
    }

    #[test]
    fn the_update_trigger_logs_both_keys() {
        let update = &ddl()[2];
        assert!(update.contains("VALUES (OLD.embedding_id)"));
        assert!(update.contains("VALUES (NEW.embedding_id)"));
    }
}
