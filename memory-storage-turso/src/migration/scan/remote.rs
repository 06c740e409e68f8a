//! A window read from a remote server in one request: `PRAGMA
//! data_version`, the legacy rows, every target table, the quarantine
//! record and the ledger, as steps of one Hrana batch
//! ([`crate::connect::pipeline`]). Read one query at a time, as the
//! `libsql` client does, a window cost 18 requests.
//!
//! The window's upper key is found on the server: the `rows`-th legacy key
//! after `after` (none when fewer rows are left: the window reaches the
//! end). Every table is read up to it — the legacy table without a limit
//! (so a key shared by several legacy rows is never split), the target
//! tables each at most `rows` — and the same cuts as the one-by-one read
//! are then made here: at the byte limit, and at the last key of a target
//! table that filled its page.
//!
//! An answer is capped by the server (sqld: 10 MB by default): the rows
//! per request shrink to keep answers near [`ANSWER_BUDGET`], and halve
//! when the server refuses an answer as too large.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use libsql::Value;

use super::{readable, trim, Layout, LedgerEntry, Limits, Window};
use crate::connect::pipeline::{Failure, Outcome, Pipeline, Statement};
use crate::decode::row::{EmbeddingRow, Key};
use crate::error::DbContext;
use crate::schema::{LEDGER_TABLE, LEGACY_TABLE, QUARANTINE_TABLE};

use super::super::error::Result;

/// Bytes of rows an answer should carry at most (base64 makes them a
/// third larger on the wire): well under sqld's default cap of 10 MB.
pub(crate) const ANSWER_BUDGET: usize = 4 << 20;

/// The rows per request the server's answers allow, learnt as windows are
/// read (shared by clones of the layout).
#[derive(Debug, Clone)]
pub struct RemoteReads {
    pub(crate) pipeline: Pipeline,
    rows: Arc<AtomicUsize>,
}

impl RemoteReads {
    pub fn new(pipeline: Pipeline) -> Self {
        RemoteReads {
            pipeline,
            rows: Arc::new(AtomicUsize::new(usize::MAX)),
        }
    }
}

/// Whether a failed read was refused for the size of its answer.
fn too_large(e: &libsql::Error) -> bool {
    let text = e.to_string().to_lowercase();
    text.contains("too large") || text.contains("too_large") || text.contains("toolarge")
}

impl Layout {
    /// [`Layout::next_window`] in one request, with the `data_version` of
    /// the stream it was read on.
    pub(crate) async fn next_window_remote(
        &self,
        remote: &RemoteReads,
        after: Option<&Key>,
        limits: Limits,
    ) -> Result<(Window, i64)> {
        loop {
            let rows = limits.rows.min(remote.rows.load(Ordering::Relaxed)).max(1);
            match self.read_remote(&remote.pipeline, after, rows).await {
                Ok(answers) => {
                    let (window, version, bytes) = self.assemble(answers, rows, limits)?;
                    if bytes > ANSWER_BUDGET && rows > 1 {
                        let fit = (rows as u128 * ANSWER_BUDGET as u128 / bytes as u128) as usize;
                        remote.rows.store(fit.max(1), Ordering::Relaxed);
                    }
                    return Ok((window, version));
                }
                Err(Failure::Step { error, .. }) | Err(Failure::Request(error))
                    if too_large(&error) && rows > 1 =>
                {
                    tracing::debug!(rows, "the server refused an answer as too large: halving");
                    remote.rows.store(rows / 2, Ordering::Relaxed);
                }
                Err(failure) => {
                    return Err(failure.in_context("reading a window in one request").into())
                }
            }
        }
    }

    /// One request: the window's statements, and what they returned.
    async fn read_remote(
        &self,
        pipeline: &Pipeline,
        after: Option<&Key>,
        rows: usize,
    ) -> std::result::Result<Vec<Outcome>, Failure> {
        // Plain ranges, so that every read walks the key's index.
        let (from, args) = match after {
            Some(k) => ("embedding_id > ?1", vec![k.0.clone()]),
            None => ("embedding_id IS NOT NULL", vec![]),
        };
        let upper = format!(
            "(SELECT embedding_id FROM {LEGACY_TABLE} WHERE {from} \
             ORDER BY embedding_id LIMIT 1 OFFSET {})",
            rows - 1
        );
        let within = |table: &str| {
            format!(
                "{from} AND embedding_id <= coalesce({upper}, \
                 (SELECT max(embedding_id) FROM {table}))"
            )
        };
        let select = |table: &str, vector: &str, limit: Option<usize>| {
            Statement::new(
                format!(
                    "SELECT {} FROM {table} WHERE {} ORDER BY embedding_id{}",
                    crate::decode::row::select_columns(vector),
                    within(table),
                    limit.map_or(String::new(), |n| format!(" LIMIT {n}"))
                ),
                args.clone(),
            )
        };
        let mut statements = vec![
            Statement::new("PRAGMA data_version", vec![]),
            select(LEGACY_TABLE, self.legacy_vector_col(), None),
        ];
        for table in &self.targets {
            statements.push(select(table.name(), "embedding_vector", Some(rows)));
        }
        if self.quarantine {
            statements.push(Statement::new(
                format!(
                    "SELECT embedding_id FROM {QUARANTINE_TABLE} WHERE {} ORDER BY embedding_id",
                    within(QUARANTINE_TABLE)
                ),
                args.clone(),
            ));
        }
        if self.ledger {
            statements.push(Statement::new(
                format!(
                    "SELECT embedding_id, target_table, fingerprint FROM {LEDGER_TABLE} \
                     WHERE {} ORDER BY embedding_id",
                    within(LEDGER_TABLE)
                ),
                args.clone(),
            ));
        }
        pipeline.read(statements).await
    }

    /// The window in `answers` (of [`Layout::read_remote`]), cut as the
    /// one-by-one read cuts, its `data_version` and the bytes of its rows.
    fn assemble(
        &self,
        answers: Vec<Outcome>,
        rows: usize,
        limits: Limits,
    ) -> Result<(Window, i64, usize)> {
        let mut answers = answers.into_iter().map(|a| a.rows);
        let version = match answers.next().and_then(|r| r.into_iter().next()) {
            Some(row) => match row.first() {
                Some(Value::Integer(v)) => *v,
                _ => return Err(malformed("data_version is not an integer")),
            },
            None => return Err(malformed("no data_version")),
        };
        let mut bytes = 0usize;
        let mut decode = |table: &str, values: Vec<Vec<Value>>| -> Result<Vec<EmbeddingRow>> {
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                let row = EmbeddingRow::from_values(v).db_context(|| format!("reading {table}"))?;
                let row = readable(row, table)?;
                bytes += row.size();
                out.push(row);
            }
            Ok(out)
        };
        let mut legacy = decode(LEGACY_TABLE, answers.next().unwrap_or_default())?;
        let mut targets = Vec::with_capacity(self.targets.len());
        for &table in &self.targets {
            targets.push((
                table,
                decode(table.name(), answers.next().unwrap_or_default())?,
            ));
        }
        // The window's end: the rows-th legacy key, or the end of the table.
        let mut end = if legacy.len() >= rows {
            legacy.get(rows - 1).map(|r| r.key.clone())
        } else {
            None
        };
        let mut lower_to = |k: Option<Key>| {
            if let Some(k) = k {
                if end.as_ref().is_none_or(|e| &k < e) {
                    end = Some(k);
                }
            }
        };
        // The byte limit, cut as the one-by-one read cuts: at the row that
        // crosses it (all rows of its key kept); and a target table that
        // filled its page ends the window at its last key.
        let cut_at_bytes = |rows: &[EmbeddingRow]| {
            let mut sum = 0usize;
            rows.iter()
                .find(|r| {
                    sum += r.size();
                    sum >= limits.bytes
                })
                .map(|r| r.key.clone())
        };
        lower_to(cut_at_bytes(&legacy));
        for (_, found) in &targets {
            let full = (found.len() >= rows)
                .then(|| found.last().map(|r| r.key.clone()))
                .flatten();
            lower_to(cut_at_bytes(found).or(full));
        }
        trim(&mut legacy, &end);
        for (_, found) in &mut targets {
            trim(found, &end);
        }
        let keep = |k: &Key| end.as_ref().is_none_or(|e| k <= e);
        let quarantined = if self.quarantine {
            answers
                .next()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|v| v.into_iter().next().map(Key))
                .filter(|k| keep(k))
                .collect()
        } else {
            Vec::new()
        };
        let ledger = if self.ledger {
            answers
                .next()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|v| {
                    let mut v = v.into_iter();
                    let key = Key(v.next()?);
                    let Value::Text(table) = v.next()? else {
                        return None;
                    };
                    let fingerprint = match v.next()? {
                        Value::Integer(f) => Some(f),
                        _ => None,
                    };
                    Some(LedgerEntry {
                        key,
                        table,
                        fingerprint,
                    })
                })
                .filter(|e| keep(&e.key))
                .collect()
        } else {
            Vec::new()
        };
        let window = Window {
            legacy,
            targets,
            quarantined,
            ledger,
            upper: end,
        };
        Ok((window, version, bytes))
    }
}

fn malformed(what: &str) -> super::super::error::MigrateError {
    crate::Error::Database {
        context: "reading a window in one request".to_string(),
        source: libsql::Error::Hrana(format!("json error: {what}").into()),
    }
    .into()
}
