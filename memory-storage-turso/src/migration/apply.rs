//! Turning the findings of one window into writes (copy and repair).

use std::collections::BTreeMap;

use super::compare::{Finding, Ownership};
use super::error::{MigrateError, Result};
use super::observer::Observer;
pub use super::report::ConflictPolicy;
use super::write::BatchWriter;
use crate::db::{backoff, ErrorClass, Transient};
use crate::decode::row::Key;
use crate::decode::BadRowReason;
use crate::error::Error;

/// Rows the database refused during this run, with the reason.
pub type Rejected = BTreeMap<Key, BadRowReason>;

/// Turns the findings of rows the database refused into bad rows.
pub fn with_rejections(findings: Vec<Finding>, rejected: &Rejected) -> Vec<Finding> {
    if rejected.is_empty() {
        return findings;
    }
    findings
        .into_iter()
        .map(|f| match f {
            Finding::Valid(v) if rejected.contains_key(&v.row.key) => {
                let mut ours_in = v.misplaced.clone();
                if v.in_place_owner == Some(Ownership::Ours) {
                    ours_in.push(v.table);
                }
                Finding::Bad {
                    reason: rejected[&v.row.key].clone(),
                    row: v.row,
                    ours_in,
                    quarantined: v.quarantined,
                }
            }
            other => other,
        })
        .collect()
}

/// Decides what follows a failed window (whose transaction the caller has
/// rolled back): a refused row is remembered and the window retried
/// without it; a transient error waits with backoff and retries, at most
/// `max_retries` times; anything else ends the run.
pub async fn after_failure(
    error: MigrateError,
    attempt: &mut u32,
    max_retries: u32,
    rejected: &mut Rejected,
) -> Result<()> {
    match error {
        MigrateError::Core(Error::RowRejected {
            key, table, source, ..
        }) => {
            tracing::warn!(
                "the database refused embedding {} in {table}: {source}",
                crate::text::shown(&key.to_string())
            );
            rejected.insert(
                *key,
                BadRowReason::Rejected {
                    table,
                    detail: source.to_string(),
                },
            );
            Ok(())
        }
        e if e.class() == ErrorClass::Transient => {
            if *attempt >= max_retries {
                return Err(e.exhausted(*attempt + 1));
            }
            e.recover();
            *attempt += 1;
            let wait = backoff(*attempt);
            tracing::warn!(
                "{e}; retrying in {} ms (attempt {attempt} of {max_retries})",
                wait.as_millis()
            );
            tokio::time::sleep(wait).await;
            Ok(())
        }
        e => Err(e),
    }
}

/// How eagerly bad rows are (re-)recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quarantine {
    /// Record every bad row seen, refreshing its reason.
    Always,
    /// Record only bad rows not yet in the record.
    Missing,
}

/// What a window's writes amounted to.
#[derive(Debug, Default)]
pub struct Applied {
    /// Rows already identical in their table, per table name.
    pub already: BTreeMap<&'static str, u64>,
    /// Rows written.
    pub written: u64,
    /// Bad rows seen.
    pub bad: u64,
    /// Rows this migration had written whose legacy row is gone or bad now,
    /// removed.
    pub removed: u64,
}

/// Whether one finding calls for a write under `policy`.
pub fn needs_write(f: &Finding, policy: ConflictPolicy) -> bool {
    match f {
        Finding::Valid(v) if v.is_conflict() => v.quarantined || policy == ConflictPolicy::Legacy,
        Finding::Valid(v) => !v.is_done() || v.quarantined,
        Finding::Bad {
            quarantined,
            ours_in,
            ..
        } => !quarantined || !ours_in.is_empty(),
        Finding::Stale { .. } => true,
        Finding::Orphan { tables, .. } => tables.iter().any(|h| h.owner == Ownership::Ours),
    }
}

/// Whether a window's findings call for any write at all.
pub fn needs_writes(findings: &[Finding], policy: ConflictPolicy) -> bool {
    findings.iter().any(|f| needs_write(f, policy))
}

/// Writes what `findings` need, inside the writer's open transaction.
/// A target row whose legacy row was deleted or went bad is removed only
/// when the ledger says this migration wrote it; any other is reported,
/// never deleted.
pub async fn apply(
    findings: Vec<Finding>,
    writer: &mut BatchWriter<'_>,
    quarantine: Quarantine,
    observer: &dyn Observer,
) -> Result<Applied> {
    let policy = writer.policy();
    let mut applied = Applied::default();
    for finding in findings {
        match finding {
            Finding::Valid(v) if v.is_conflict() && policy == ConflictPolicy::Target => {
                // The target row wins: the legacy row is settled by it.
                if v.quarantined {
                    writer.unquarantine(&v.row.key).await?;
                }
            }
            Finding::Valid(v) => {
                let done = v.is_done();
                if v.quarantined {
                    writer.unquarantine(&v.row.key).await?;
                }
                // `--on-conflict legacy`: each row in the way is saved, in
                // this transaction, before it is replaced or removed.
                for held in &v.foreign {
                    writer.displace(held.table, &held.row).await?;
                    if held.table != v.table {
                        writer.delete(held.table, &v.row.key).await?;
                    }
                }
                for table in &v.misplaced {
                    writer.delete(*table, &v.row.key).await?;
                }
                if matches!(&v.in_place, Some(c) if c.is_empty()) {
                    if done {
                        *applied.already.entry(v.table.name()).or_default() += 1;
                    }
                } else {
                    writer.upsert(v.table, v.row, v.vector).await?;
                    applied.written += 1;
                }
            }
            Finding::Bad {
                row,
                reason,
                quarantined,
                ours_in,
                ..
            } => {
                applied.bad += 1;
                for t in ours_in {
                    writer.delete(t, &row.key).await?;
                    applied.removed += 1;
                }
                if !quarantined || quarantine == Quarantine::Always {
                    writer.quarantine(&row.key, &reason).await?;
                }
                if !quarantined {
                    observer.row_quarantined(&row.key.to_string(), &reason);
                }
            }
            Finding::Stale {
                key,
                quarantined,
                ledgered,
            } => {
                if quarantined {
                    writer.unquarantine(&key).await?;
                }
                if ledgered {
                    writer.forget(&key).await?;
                }
            }
            Finding::Orphan { key, tables } => {
                for held in tables.iter().filter(|h| h.owner == Ownership::Ours) {
                    writer.delete(held.table, &key).await?;
                    applied.removed += 1;
                }
            }
        }
    }
    Ok(applied)
}
