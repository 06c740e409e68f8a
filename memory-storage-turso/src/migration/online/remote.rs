//! The online mirror over the network: a turn of the catch-up, or the
//! final step, in a few requests on the writing stream under one write
//! lock ([`Held`]), instead of a request per statement through the
//! `libsql` connection. The final step over an 80 ms round trip took
//! about forty requests (3 s for a handful of keys), near sqld's 5 s
//! limit for a transaction an application's writer waits on; a turn of
//! the catch-up about fourteen.
//!
//! A turn: `BEGIN IMMEDIATE` and the log, in one request; the rows of
//! each [`KEYS_PER_BATCH`] logged keys in one more; the writes, what the
//! log forgets and `COMMIT` in the last. The final step writes each
//! [`KEYS_PER_BATCH`] keys' rows and reads them again in one request,
//! inside the transaction, and judges them again before it removes the
//! triggers and the log (four requests for up to 200 keys): the same checks as
//! the step through the `libsql` connection, which still makes a turn
//! where this way cannot (a row the database refused, which it names; an
//! answer too large for the server).

use libsql::Value;

use super::{
    forget_statements, keys, logged_statement, remove_sql, unsettled, CHANGES_TABLE, KEYS_PER_BATCH,
};
use crate::connect::pipeline::{Held, Outcome, Statement};
use crate::decode::row::Key;
use crate::migration::apply::{apply, with_rejections, Quarantine};
use crate::migration::compare::judge;
use crate::migration::error::{MigrateError, Result};
use crate::migration::locked;
use crate::migration::observer::Withheld;
use crate::migration::pass::Pass;
use crate::migration::scan::{Layout, RemoteReads, Window};

/// How a turn over the network ended.
pub(super) enum Turn {
    /// Committed: this many logged changes were mirrored.
    Done(u64),
    /// Nothing was logged: nothing was written (a catch-up turn).
    Empty,
    /// The final step found this key unsettled: nothing of it was kept.
    Unsettled(String),
    /// Nothing was kept; to be made through the `libsql` connection.
    Slow,
}

/// Mirrors up to `limit` logged changes and the rows of `also` under one
/// write lock; `last`: the final step (the rows judged again, the
/// triggers and the log removed), else a catch-up turn (the mirrored
/// changes forgotten).
pub(super) async fn mirror(
    pass: Pass<'_, '_>,
    remote: &RemoteReads,
    limit: usize,
    also: &[Key],
    last: bool,
) -> Result<Turn> {
    let Pass {
        conn,
        layout,
        writer,
        rejected,
        observer,
        ..
    } = pass;
    let (mut held, answers) = remote
        .pipeline
        .begin_held(vec![logged_statement(limit)])
        .await
        .map_err(|f| f.in_context(format!("reading {CHANGES_TABLE} under the write lock")))?;
    writer.begin_deferred();
    let told = Withheld::default();
    let prepared = async {
        let changes = changes_of(answers)?;
        let keys = keys(&changes, also);
        if keys.is_empty() && !last {
            return Ok(Err(Turn::Empty));
        }
        for chunk in keys.chunks(KEYS_PER_BATCH) {
            let Some(window) = read(&mut held, layout, Vec::new(), chunk).await? else {
                return Ok(Err(Turn::Slow));
            };
            let findings = with_rejections(judge(window), rejected);
            apply(findings, writer, Quarantine::Always, &told).await?;
            if last {
                // The final step writes these keys' rows and reads them
                // again in one request (what is written and judged is
                // keyed: other keys' writes cannot change them).
                let writes = writer.take_deferred().await?;
                let Some(window) = read(&mut held, layout, writes, chunk).await? else {
                    return Ok(Err(Turn::Slow));
                };
                let findings = with_rejections(judge(window), rejected);
                if let Some(key) = unsettled(&findings, writer.policy()) {
                    return Ok(Err(Turn::Unsettled(key)));
                }
            }
        }
        let extra = if last {
            remove_sql()
                .into_iter()
                .map(|sql| Statement::new(sql, vec![]))
                .collect()
        } else {
            forget_statements(&changes)
        };
        Ok::<_, MigrateError>(Ok((changes.len() as u64, extra)))
    }
    .await;
    // What ends the turn without a commit, or the commit to make.
    let (prepared, instead) = match prepared {
        Ok(Ok(ready)) => (Ok(Some(ready)), Turn::Slow),
        Ok(Err(turn)) => (Ok(None), turn),
        Err(e) => (Err(e), Turn::Slow),
    };
    let settled = locked::settle(conn, writer, held, prepared, (told, observer)).await?;
    Ok(settled.map_or(instead, Turn::Done))
}

/// `writes`, then the rows of `keys` in every table, in one request of
/// the transaction (`None`: to be made the slow way).
async fn read(
    held: &mut Held<'_>,
    layout: &Layout,
    writes: Vec<Statement>,
    keys: &[Key],
) -> Result<Option<Window>> {
    let context = format!(
        "reading the rows of {} logged change(s) ({} to {})",
        keys.len(),
        keys[0],
        keys[keys.len() - 1]
    );
    let reads = layout.keys_statements(keys);
    locked::write_and_read(held, layout, writes, reads, None, &context).await
}

/// The log's `(rowid, key)` pairs in an answer.
fn changes_of(answers: Vec<Outcome>) -> Result<Vec<(i64, Key)>> {
    let rows = answers.into_iter().next().unwrap_or_default().rows;
    rows.into_iter()
        .map(|row| {
            let mut row = row.into_iter();
            let rowid = row.next().unwrap_or(Value::Null);
            let key = Key(row.next().unwrap_or(Value::Null));
            match rowid {
                Value::Integer(rowid) => Ok((rowid, key)),
                other => Err(crate::Error::UnreadableColumn {
                    table: CHANGES_TABLE.to_string(),
                    embedding_id: key.to_string(),
                    column: "rowid",
                    found: format!("{other:?}"),
                }
                .into()),
            }
        })
        .collect()
}
