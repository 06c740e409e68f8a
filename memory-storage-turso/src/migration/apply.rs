//! Turning the findings of one window into writes (copy and repair).

use std::collections::BTreeMap;

use super::compare::Finding;
use super::observer::Observer;
use super::write::BatchWriter;
use crate::error::Result;

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
}

/// Whether a window's findings call for any write at all.
pub fn needs_writes(findings: &[Finding]) -> bool {
    findings.iter().any(|f| match f {
        Finding::Valid(v) => !v.is_done() || v.quarantined,
        Finding::Bad { quarantined, .. } => !quarantined,
        Finding::StaleQuarantine { .. } => true,
        Finding::Orphan { .. } => false,
    })
}

/// Writes what `findings` need, inside the writer's open transaction.
/// Target rows without a legacy row, and copies of rows that have since gone
/// bad, are left alone: they are reported, never deleted.
pub async fn apply(
    findings: Vec<Finding>,
    writer: &mut BatchWriter<'_>,
    quarantine: Quarantine,
    observer: &dyn Observer,
) -> Result<Applied> {
    let mut applied = Applied::default();
    for finding in findings {
        match finding {
            Finding::Valid(v) => {
                let done = v.is_done();
                if v.quarantined {
                    writer.unquarantine(&v.row.key).await?;
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
                ..
            } => {
                applied.bad += 1;
                if !quarantined || quarantine == Quarantine::Always {
                    writer.quarantine(&row.key, &reason).await?;
                }
                if !quarantined {
                    observer.row_quarantined(&row.key.to_string(), &reason);
                }
            }
            Finding::StaleQuarantine { key } => writer.unquarantine(&key).await?,
            Finding::Orphan { .. } => {}
        }
    }
    Ok(applied)
}
