//! A window read from a remote server in one request: the legacy rows,
//! every target table, the quarantine record and the ledger, as steps of
//! one Hrana batch ([`crate::connect::pipeline`]). Read one query at a
//! time, as the `libsql` client does, a window cost 18 requests.
//!
//! Windows are read on a stream of their own, so the copy reads the next
//! window while the server writes a batch on the writing stream. A batch
//! written from a window is guarded by the writing stream's `PRAGMA
//! data_version`, read before the window was: it changes when any other
//! connection commits, and never with the stream's own commits, so an
//! unchanged value in the batch's transaction means nothing but this
//! migration's own batches (of other keys) was committed since the read.
//! While no value is held (the first window, or after a batch found it
//! changed), the window is read on the writing stream, after its `PRAGMA
//! data_version` in the same request.
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
//! per request follow the rows' size to keep answers near
//! [`ANSWER_BUDGET`], and halve, with the bytes aimed at, when the server
//! refuses an answer as too large. (A refused answer also leaves its
//! stream behind, and sqld keeps an abandoned stream's connection until
//! it expires: windows that grew back past the cap exhausted sqld's
//! connections, `429 Timed out while opening database connection`.)
//!
//! The first window, whose rows' size is not known yet, is small
//! ([`FIRST_WINDOW_ROWS`]): it is read before anything else can go on, and
//! the next one is read while it is written.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use libsql::Value;

use super::{readable, trim, Layout, LedgerEntry, Limits, Window};
use crate::connect::pipeline::{Failure, Observed, Outcome, Pipeline, Statement};
use crate::decode::row::{EmbeddingRow, Key};
use crate::error::DbContext;
use crate::schema::{LEDGER_TABLE, LEGACY_TABLE, QUARANTINE_TABLE};

use super::super::error::Result;

/// Bytes of rows an answer should carry at most: under sqld's default cap
/// of 10 MB (which counts a blob by its bytes), and under it on the wire
/// even in JSON, where base64 makes blobs a third larger (8 MiB). Fewer,
/// larger windows: at 4 MiB the copy over a 20 ms round trip ran about 7%
/// slower.
pub(crate) const ANSWER_BUDGET: usize = 6 << 20;

/// Rows of the first window read remotely.
pub(crate) const FIRST_WINDOW_ROWS: usize = 64;

/// A remote database's windows: the stream they are read on, the rows
/// per request the server's answers allow (learnt as windows are read),
/// and the writing stream's `data_version` they are guarded by (all
/// shared by clones of the layout).
#[derive(Debug, Clone)]
pub struct RemoteReads {
    /// The writing stream: batches, and the guard read on it.
    pub(crate) pipeline: Pipeline,
    /// The reading stream.
    reads: Pipeline,
    rows: Arc<AtomicUsize>,
    /// Bytes of rows an answer aims at: [`ANSWER_BUDGET`], halved by each
    /// answer the server refuses as too large (its cap is learnt, so the
    /// windows never grow back past it).
    budget: Arc<AtomicUsize>,
    guard: Arc<std::sync::Mutex<Option<Observed>>>,
}

impl RemoteReads {
    pub fn new(pipeline: Pipeline) -> Self {
        RemoteReads {
            reads: pipeline.fork(),
            pipeline,
            rows: Arc::new(AtomicUsize::new(FIRST_WINDOW_ROWS)),
            budget: Arc::new(AtomicUsize::new(ANSWER_BUDGET)),
            guard: Arc::default(),
        }
    }

    /// A new pass (the copy, the verification) starts again from a small
    /// window: its answers carry other tables' rows too (the verification's
    /// the migrated copies), so the rows per window learnt by the pass
    /// before would ask for answers of another size. Carried over from the
    /// copy, the verification's first answer was twice the budget, was
    /// refused, and halved the budget for the rest of the run: twice the
    /// requests. The bytes aimed at, learnt from the server, are kept.
    pub(crate) fn start_pass(&self) {
        self.rows.store(FIRST_WINDOW_ROWS, Ordering::Relaxed);
    }

    /// The first value of the first row `statement` reads, if an integer
    /// (as [`crate::db::query_i64`]), on the reading stream: one request,
    /// which goes beside the first window of a pass (that one is read on
    /// the writing stream).
    pub(crate) async fn query_i64(
        &self,
        statement: Statement,
        what: &str,
    ) -> crate::Result<Option<i64>> {
        let answers = self
            .reads
            .read(vec![statement])
            .await
            .map_err(|failure| failure.in_context(what))?;
        let first = answers
            .first()
            .and_then(|a| a.rows.first())
            .and_then(|r| r.first());
        Ok(match first {
            Some(Value::Integer(n)) => Some(*n),
            _ => None,
        })
    }

    /// Whether `seen` is still the guard windows are read with.
    pub(crate) fn guard_holds(&self, seen: Observed) -> bool {
        *self.held() == Some(seen)
    }

    /// Whether a guard is known (windows read now compare with it).
    pub(crate) fn has_guard(&self) -> bool {
        self.held().is_some()
    }

    /// A batch was not written as read (another connection committed or
    /// is about to, or the stream is gone): windows read from now on read
    /// the guard again, and those read before no longer count as current.
    pub(crate) fn forget_guard(&self) {
        *self.held() = None;
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<Observed>> {
        self.guard.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether a failed read was refused for the size of its answer.
pub(crate) fn too_large(e: &libsql::Error) -> bool {
    let text = e.to_string().to_lowercase();
    text.contains("too large") || text.contains("too_large") || text.contains("toolarge")
}

/// What one window's answer held: legacy rows, and the bytes of every
/// table's rows (the target rows of those keys included).
struct Answered {
    legacy_rows: usize,
    bytes: usize,
}

impl Answered {
    /// The legacy rows a window can ask for to keep its answer near
    /// `budget` bytes, at this answer's bytes per legacy row (none known
    /// from an answer without rows).
    fn rows_within(&self, budget: usize) -> Option<usize> {
        if self.legacy_rows == 0 || self.bytes == 0 {
            return None;
        }
        let fit = self.legacy_rows as u128 * budget as u128 / self.bytes as u128;
        Some(fit.clamp(1, usize::MAX as u128) as usize)
    }
}

impl Layout {
    /// [`Layout::next_window`] in one request, and the writing stream's
    /// `data_version` read before it: on the reading stream while a value
    /// is held, else on the writing stream after reading the value.
    pub(crate) async fn next_window_remote(
        &self,
        remote: &RemoteReads,
        after: Option<&Key>,
        limits: Limits,
    ) -> Result<(Window, Observed)> {
        loop {
            let rows = limits.rows.min(remote.rows.load(Ordering::Relaxed)).max(1);
            let statements = self.window_statements(after, rows);
            // A value read on a writing stream that is gone, or idle
            // long enough to be dropped, no longer compares: read again.
            let held = remote
                .held()
                .filter(|seen| remote.pipeline.on_live_stream(seen.stream));
            let read = match held {
                Some(seen) => remote.reads.read(statements).await.map(|a| (seen, a)),
                None => remote.pipeline.read_observed(statements).await,
            };
            match read {
                Ok((seen, answers)) => {
                    let (window, read) = self.assemble(answers, rows, limits)?;
                    if let Some(fit) = read.rows_within(remote.budget.load(Ordering::Relaxed)) {
                        remote.rows.store(fit, Ordering::Relaxed);
                    }
                    if held.is_none() {
                        *remote.held() = Some(seen);
                    }
                    return Ok((window, seen));
                }
                Err(Failure::Step { error, .. }) | Err(Failure::Request(error))
                    if too_large(&error) && rows > 1 =>
                {
                    tracing::debug!(rows, "the server refused an answer as too large: halving");
                    remote.rows.store(rows / 2, Ordering::Relaxed);
                    let budget = remote.budget.load(Ordering::Relaxed);
                    remote.budget.store((budget / 2).max(1), Ordering::Relaxed);
                }
                Err(failure) => {
                    return Err(failure.in_context("reading a window in one request").into())
                }
            }
        }
    }

    /// Every row of every table whose key is one of `keys`, as the
    /// statements of one request (read inside a held transaction,
    /// [`crate::connect::pipeline::Held`]); [`Layout::window_of`] makes
    /// the window of their answers.
    pub(crate) fn keys_statements(&self, keys: &[Key]) -> Vec<Statement> {
        self.span_statements(super::Span::Keys(keys))
    }

    /// Every row of every table in `(after, upper]`, as the statements of
    /// one request.
    pub(crate) fn range_statements(
        &self,
        after: Option<&Key>,
        upper: Option<&Key>,
    ) -> Vec<Statement> {
        self.span_statements(super::Span::Range(after, upper))
    }

    fn span_statements(&self, span: super::Span<'_>) -> Vec<Statement> {
        let (clause, args) = span.clause();
        let select = |table: &str, columns: &str| {
            Statement::new(
                format!("SELECT {columns} FROM {table}{clause} ORDER BY embedding_id"),
                args.clone(),
            )
        };
        let rows = |vector: &str| crate::decode::row::select_columns(vector);
        let mut statements = vec![select(LEGACY_TABLE, &rows(self.legacy_vector_col()))];
        for table in &self.targets {
            statements.push(select(table.name(), &rows("embedding_vector")));
        }
        if self.quarantine {
            statements.push(select(QUARANTINE_TABLE, "embedding_id"));
        }
        if self.ledger {
            statements.push(select(
                LEDGER_TABLE,
                "embedding_id, target_table, fingerprint",
            ));
        }
        statements
    }

    /// The window in the answers to [`Layout::keys_statements`] or
    /// [`Layout::range_statements`] (every row they read; `upper` as given).
    pub(crate) fn window_of(&self, answers: Vec<Outcome>, upper: Option<Key>) -> Result<Window> {
        let unlimited = Limits {
            rows: usize::MAX,
            bytes: usize::MAX,
        };
        let (mut window, _) = self.assemble(answers, usize::MAX, unlimited)?;
        window.upper = upper;
        Ok(window)
    }

    /// The window's statements, for one request.
    fn window_statements(&self, after: Option<&Key>, rows: usize) -> Vec<Statement> {
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
        let mut statements = vec![select(LEGACY_TABLE, self.legacy_vector_col(), None)];
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
        statements
    }

    /// The window in `answers` (to [`Layout::window_statements`]), cut as the
    /// one-by-one read cuts, and what the answer held.
    fn assemble(
        &self,
        answers: Vec<Outcome>,
        rows: usize,
        limits: Limits,
    ) -> Result<(Window, Answered)> {
        let mut answers = answers.into_iter().map(|a| a.rows);
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
        let legacy_rows = legacy.len();
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
        Ok((window, Answered { legacy_rows, bytes }))
    }
}

#[cfg(test)]
mod tests {
    use super::Answered;

    #[test]
    fn windows_follow_the_bytes_per_row_both_ways_and_only_from_rows_read() {
        let budget = 4 << 20;
        let answer = |legacy_rows, bytes| Answered { legacy_rows, bytes };
        // 9 KiB a row: 455 rows fill the budget.
        assert_eq!(answer(64, 64 * 9216).rows_within(budget), Some(455));
        // Rows of 46 KiB (3072 dimensions as JSON and bytes): fewer.
        assert_eq!(answer(455, 455 * 47104).rows_within(budget), Some(89));
        // Then small rows again: the windows grow back.
        assert_eq!(answer(89, 89 * 2048).rows_within(budget), Some(2048));
        // The end of the table: 10 rows where 455 were asked for says
        // nothing about rows that were never read.
        assert_eq!(answer(10, 10 * 9216).rows_within(budget), Some(455));
        assert_eq!(answer(0, 0).rows_within(budget), None);
        // A single row over the budget still makes a window of one.
        assert_eq!(answer(1, 2 * budget).rows_within(budget), Some(1));
    }
}
