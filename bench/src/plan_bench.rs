//! The index plan beside libSQL's defaults, in one run: the same legacy
//! rows migrated twice — once by us with the planned indexes (the plan
//! included in the time), once copied without index and then indexed by
//! libSQL's own `CREATE INDEX … libsql_vector_idx(embedding_vector)` with
//! default options on every native table — and both measured the same
//! way: build seconds, index bytes (the shadow table), and recall@10 and
//! latency of the same queries (rows of the table, themselves left out),
//! ours as `EmbeddingStore::find_similar` searches, theirs through
//! `vector_top_k`.
//!
//! Disk: libSQL's default index is about 55× its vectors' bytes, 14 GiB
//! for 100,000 mixed rows. The reference measures each table's index and
//! then drops it, so the next one reuses its pages, and builds in rollback
//! journal mode (SQLite's default for a new file), so a `CREATE INDEX`
//! is not written twice, to the WAL and then the file. The run checks the
//! free space it will need before each side, and writes each table's
//! result as it is measured.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use libsql::{Connection, Value};
use memory_storage_turso::decode::cosine_searchable;
use memory_storage_turso::migration::report::{Pick, RecallOutcome};
use memory_storage_turso::migration::{
    run_migration, IndexMode, IndexPlanning, LocalFile, MigrationOptions, MigrationReport,
    NoopObserver,
};
use memory_storage_turso::sample::{generate_legacy_database, SampleSpec};
use memory_storage_turso::schema::{ScanBits, TargetTable};
use memory_storage_turso::store::EmbeddingStore;

use crate::legacy;
use crate::recall::{f32_blob, from_f32_blob, recall, SplitMix};

/// Queries per table.
const QUERIES: usize = 100;
const K: usize = 10;

/// One side's measure of one table.
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub build_seconds: f64,
    pub index_bytes: u64,
    pub recall: f64,
    pub query_ms: f64,
}

/// One table of the comparison.
#[derive(Debug, Clone)]
pub struct TableResult {
    pub table: TargetTable,
    pub rows: u64,
    /// What the plan chose, as the dry run prints it.
    pub pick: String,
    /// The plan's prediction: build seconds, index bytes, recall.
    pub predicted: Option<(f64, u64, f64)>,
    pub ours: Side,
    pub default: Side,
}

/// The whole comparison.
#[derive(Debug, Clone)]
pub struct PlanBench {
    pub rows: usize,
    pub layout: String,
    /// Seconds the plan took (sampling and scratch builds).
    pub plan_seconds: f64,
    /// Our run's verification: passed, or its discrepancies (a search
    /// check below the plan's recall among them).
    pub verdict: String,
    pub tables: Vec<TableResult>,
}

/// Runs the comparison on `rows` generated rows (`clusters` as in
/// [`SampleSpec::clusters`]) in `work`.
pub async fn run(
    work: &Path,
    rows: usize,
    clusters: u32,
    seed: u64,
    partial: &dyn Fn(&PlanBench),
    report_written: &dyn Fn(&MigrationReport) -> Result<()>,
) -> Result<PlanBench> {
    // Two copies of the rows and our index, at most, before the reference.
    need_free(work, rows as u64 * 16 * 1024, "our side")?;
    let source = work.join("legacy.db");
    {
        let (_db, conn) = legacy::open(&source).await?;
        let spec = SampleSpec {
            clusters,
            ..legacy::spec(rows, seed)
        };
        generate_legacy_database(&conn, &spec)
            .await
            .context("generating the legacy rows")?;
    }
    let (ours_path, theirs_path) = (work.join("ours.db"), work.join("theirs.db"));
    legacy::copy(&source, &ours_path)?;
    legacy::copy(&source, &theirs_path)?;
    legacy::remove(&source)?;

    eprintln!("plan bench: our migration with the index plan ({rows} rows)");
    let (_ours_db, ours) = legacy::open(&ours_path).await?;
    // As the binary runs on a local file (it sets `local_file` from the
    // path): without it the index phase takes the 2 s transactions meant
    // for a database another writer may be waiting on.
    let options = MigrationOptions {
        index: IndexPlanning {
            mode: IndexMode::Planned,
            ..IndexPlanning::default()
        },
        local_file: Some(LocalFile::new(&ours_path)),
        ..MigrationOptions::default()
    };
    let report = run_migration(&ours, &options, &NoopObserver)
        .await
        .context("our migration")?;
    // Kept now: the reference's hour of index builds may still fail.
    report_written(&report)?;
    let plan_seconds = report
        .phases
        .iter()
        .find(|p| p.phase == memory_storage_turso::migration::Phase::IndexPlan.name())
        .map_or(0.0, |p| p.seconds);

    eprintln!("plan bench: the same rows copied, then libSQL's default CREATE INDEX");
    let (_theirs_db, theirs) = legacy::open(&theirs_path).await?;
    let copy_only = MigrationOptions {
        build_vector_index: false,
        ..MigrationOptions::default()
    };
    run_migration(&theirs, &copy_only, &NoopObserver)
        .await
        .context("the copy of the reference")?;
    let mut largest = 0u64;
    for table in TargetTable::ALL.into_iter().filter(|t| t.is_native()) {
        let n = count(&theirs, &format!("SELECT count(*) FROM {}", table.name())).await? as u64;
        largest = largest.max(n * 4 * table.native_dimension().unwrap_or(0) as u64);
    }
    need_free(
        work,
        DEFAULT_INDEX_PER_VECTOR_BYTE * largest,
        "libSQL's default index of the largest table",
    )?;
    // One connection of its own: journal_mode changes only with no other.
    let mode: String = {
        let mut rows = theirs
            .query("PRAGMA journal_mode=DELETE", ())
            .await
            .context("the reference in rollback journal mode")?;
        let row = rows.next().await?.context("no journal mode")?;
        row.get(0)?
    };
    anyhow::ensure!(
        mode == "delete",
        "the reference stayed in {mode} journal mode"
    );

    let store = EmbeddingStore::open(ours.clone())
        .await
        .context("opening the store")?;
    let mut result = PlanBench {
        rows,
        layout: if clusters == 0 {
            "uniform on the sphere (the realistic mix)".into()
        } else {
            format!("clustered around {clusters} centres per dimension")
        },
        plan_seconds,
        verdict: verdict(&report),
        tables: Vec::new(),
    };
    for table in TargetTable::ALL.into_iter().filter(|t| t.is_native()) {
        let n = count(&ours, &format!("SELECT count(*) FROM {}", table.name())).await? as u64;
        if n == 0 {
            continue;
        }
        let plan = report
            .index_plan
            .as_ref()
            .and_then(|p| p.tables.iter().find(|t| t.table == table.name()));
        let (pick, predicted) = match plan.map(|p| (p, &p.pick)) {
            Some((p, Pick::Index { candidate, .. })) => {
                let c = &p.candidates[*candidate];
                let label = match (c.options.as_str(), ScanBits::from_options(&c.options)) {
                    ("", _) => "libSQL's defaults".to_string(),
                    (_, Some(ScanBits::Float8)) => "quantized scan index".to_string(),
                    (_, Some(ScanBits::Float1Bit)) => "1-bit scan index".to_string(),
                    (options, None) => options.to_string(),
                };
                (
                    format!("{label}, over-fetch {}", c.overfetch),
                    Some((
                        c.predicted.build_seconds,
                        c.predicted.index_bytes,
                        c.predicted.recall,
                    )),
                )
            }
            Some((_, Pick::ExactForRecall { .. })) => (
                "no index: exact search (no setting reaches the recall)".into(),
                None,
            ),
            Some((_, Pick::Exact { .. })) => ("no index: exact search is fast enough".into(), None),
            Some((_, other)) => (format!("{other:?}"), None),
            None => ("(not planned)".into(), None),
        };
        // What the built index measured, and what the run did with it.
        // (A 1-bit scan that gave way is followed by its 8-bit scan.)
        let measured: Vec<String> = report
            .built_recall
            .iter()
            .filter(|b| b.table == table.name())
            .map(|b| {
                format!(
                    "built, measured {:.3}: {}",
                    b.measured_recall,
                    match b.outcome {
                        RecallOutcome::Met => "kept",
                        RecallOutcome::SearchedExactly => "dropped, searched exactly",
                        RecallOutcome::BelowTarget => "kept below the target (exact too slow)",
                        RecallOutcome::GaveWay => "dropped for the 8-bit scan, then",
                    }
                )
            })
            .collect();
        let pick = if measured.is_empty() {
            pick
        } else {
            format!("{pick}; {}", measured.join(" "))
        };
        let index = table.vector_index_name().unwrap_or_default();
        let ours_seconds = report
            .vector_indexes
            .iter()
            .find(|s| s.table == table.name())
            .map_or(0.0, |s| s.seconds);
        eprintln!("plan bench: libSQL's default index on {table} ({n} rows)");
        let began = Instant::now();
        theirs
            .execute(
                &format!(
                    "CREATE INDEX {index} ON {}(libsql_vector_idx(embedding_vector))",
                    table.name()
                ),
                (),
            )
            .await
            .with_context(|| format!("libSQL's CREATE INDEX on {table}"))?;
        let default_seconds = began.elapsed().as_secs_f64();

        let queries = pick_queries(&ours, table, n, QUERIES).await?;
        let mut ours_side = Side {
            build_seconds: ours_seconds,
            index_bytes: shadow_bytes(&ours, index).await? + scan_bytes(&ours, table).await?,
            ..Side::default()
        };
        let mut default_side = Side {
            build_seconds: default_seconds,
            index_bytes: shadow_bytes(&theirs, index).await?,
            ..Side::default()
        };
        for (id, v) in &queries {
            let truth = exact(&ours, table, v, id).await?;
            let t = Instant::now();
            let hits = store
                .find_similar(v, None, K + 1, None)
                .await
                .context("our search")?;
            ours_side.query_ms += t.elapsed().as_secs_f64() * 1000.0;
            let found: Vec<String> = hits
                .into_iter()
                .map(|h| h.embedding.embedding_id)
                .filter(|h| h != id)
                .take(K)
                .collect();
            ours_side.recall += recall(&truth, &found);
            let t = Instant::now();
            let found = top_k(&theirs, table, index, v, id).await?;
            default_side.query_ms += t.elapsed().as_secs_f64() * 1000.0;
            default_side.recall += recall(&truth, &found);
        }
        for side in [&mut ours_side, &mut default_side] {
            side.recall /= queries.len().max(1) as f64;
            side.query_ms /= queries.len().max(1) as f64;
        }
        // Measured: its pages go back to the file's free list, for the
        // next table's index.
        theirs
            .execute(&format!("DROP INDEX {index}"), ())
            .await
            .with_context(|| format!("dropping the reference index of {table}"))?;
        result.tables.push(TableResult {
            table,
            rows: n,
            pick,
            predicted,
            ours: ours_side,
            default: default_side,
        });
        partial(&result);
    }
    Ok(result)
}

/// Our run's verification in a sentence.
fn verdict(report: &MigrationReport) -> String {
    match &report.verification {
        Some(v) if v.passed => "passed".into(),
        Some(v) => {
            let details: Vec<String> = v
                .discrepancies
                .iter()
                .take(4)
                .map(|d| format!("{}: {}", d.table, d.detail))
                .collect();
            format!("**failed**: {}", details.join("; "))
        }
        None => "not run".into(),
    }
}

/// libSQL's default index bytes per byte of the vectors it indexes, with
/// a margin (55× measured).
const DEFAULT_INDEX_PER_VECTOR_BYTE: u64 = 64;

/// Fails unless the file system of `dir` has `bytes` free.
fn need_free(dir: &Path, bytes: u64, what: &str) -> Result<()> {
    let free = free_bytes(dir)?;
    anyhow::ensure!(
        free >= bytes,
        "{what} needs about {} GiB free in {}, and {:.1} GiB are",
        bytes.div_ceil(1 << 30),
        dir.display(),
        free as f64 / (1u64 << 30) as f64
    );
    Ok(())
}

/// Bytes free for an unprivileged writer on the file system of `dir`.
fn free_bytes(dir: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).context("a path with a NUL")?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `stat` is a valid out-pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("free space of {}", dir.display()));
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

async fn count(conn: &Connection, sql: &str) -> Result<i64> {
    let mut rows = conn.query(sql, ()).await.with_context(|| sql.to_string())?;
    let row = rows.next().await?.context("no row")?;
    Ok(row.get::<i64>(0)?)
}

/// Bytes of an index's shadow table (its node blocks and keys), 0 without.
async fn shadow_bytes(conn: &Connection, index: &str) -> Result<u64> {
    let exists = count(
        conn,
        &format!("SELECT count(*) FROM sqlite_master WHERE name = '{index}_shadow'"),
    )
    .await?;
    if exists == 0 {
        return Ok(0);
    }
    let bytes = count(
        conn,
        &format!("SELECT coalesce(sum(length(data)), 0) + 16 * count(*) FROM {index}_shadow"),
    )
    .await?;
    Ok(bytes.max(0) as u64)
}

/// Bytes of the pages of `table`'s quantized scan indexes (SQLite's
/// `dbstat`; one at most is built), 0 without.
async fn scan_bytes(conn: &Connection, table: TargetTable) -> Result<u64> {
    let mut bytes = 0;
    for index in ScanBits::ALL
        .into_iter()
        .filter_map(|b| table.scan_index_name(b))
    {
        let pages = count(
            conn,
            &format!("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = '{index}'"),
        )
        .await?;
        bytes += pages.max(0) as u64;
    }
    Ok(bytes)
}

/// `n` random rows of `table` of `rows`: (embedding_id, vector). Only
/// rows a cosine search can rank: a vector whose norm overflows f32 (the
/// realistic mix holds some) is at distance 1 from every row, so its
/// truth is any 10 rows, the first by embedding_id, and every search
/// "misses" it. Until 2026-11-29 such queries were drawn: the scan index
/// of `embeddings_384` read 0.960 here where the check after its build
/// (which counts a tie as a hit) read 1.000; a probe on 20,000 mixed rows
/// found its only misses among 199 queries were two such vectors.
async fn pick_queries(
    conn: &Connection,
    table: TargetTable,
    rows: u64,
    n: usize,
) -> Result<Vec<(String, Vec<f32>)>> {
    let mut rng = SplitMix::new(rows ^ 0x5eed);
    let mut out = Vec::new();
    let max = count(conn, &format!("SELECT max(rowid) FROM {}", table.name())).await?;
    let mut tries = 0;
    while out.len() < n.min(rows as usize) && tries < 100 * n.max(1) {
        tries += 1;
        let at = 1 + rng.below(max.max(1) as usize) as i64;
        let mut r = conn
            .query(
                &format!(
                    "SELECT embedding_id, embedding_vector FROM {} WHERE rowid >= ?1 \
                     ORDER BY rowid LIMIT 1",
                    table.name()
                ),
                [at],
            )
            .await?;
        if let Some(row) = r.next().await? {
            let id: String = row.get(0)?;
            let bytes = row.get::<Vec<u8>>(1)?;
            if cosine_searchable(&bytes).is_err() {
                continue;
            }
            let v = from_f32_blob(&bytes).context("a vector")?;
            if !out.iter().any(|(i, _)| *i == id) {
                out.push((id, v));
            }
        }
    }
    Ok(out)
}

/// The exact `K` nearest other rows of `table` to `v`.
async fn exact(conn: &Connection, table: TargetTable, v: &[f32], id: &str) -> Result<Vec<String>> {
    // A row whose distance is NULL (a zero vector: no cosine similarity)
    // is no one's neighbour; ranked by a bare ORDER BY it comes first
    // (until 2026-11-29 it did, and the exact search of `embeddings_384`
    // measured 0.966 against such a truth).
    let sql = format!(
        "SELECT embedding_id FROM {} WHERE embedding_id != ?2 \
         AND vector_distance_cos(embedding_vector, vector32(?1)) IS NOT NULL \
         ORDER BY vector_distance_cos(embedding_vector, vector32(?1)), embedding_id LIMIT {K}",
        table.name()
    );
    ids(
        conn,
        &sql,
        vec![Value::Blob(f32_blob(v)), Value::Text(id.into())],
    )
    .await
}

/// The `K` nearest other rows through `index`.
async fn top_k(
    conn: &Connection,
    table: TargetTable,
    index: &str,
    v: &[f32],
    id: &str,
) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT t.embedding_id FROM vector_top_k('{index}', vector32(?1), {}) AS v \
         JOIN {} AS t ON t.rowid = v.id WHERE t.embedding_id != ?2",
        K + 1,
        table.name()
    );
    let mut found = ids(
        conn,
        &sql,
        vec![Value::Blob(f32_blob(v)), Value::Text(id.into())],
    )
    .await?;
    found.truncate(K);
    Ok(found)
}

async fn ids(conn: &Connection, sql: &str, params: Vec<Value>) -> Result<Vec<String>> {
    let mut rows = conn.query(sql, params).await.context("a search")?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await? {
        out.push(row.get::<String>(0)?);
    }
    Ok(out)
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / 1048576.0)
}

/// Seconds, to the hundredth below ten (a scan index builds in less than
/// one).
fn secs(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.2} s")
    } else {
        format!("{s:.0} s")
    }
}

fn off(predicted: f64, measured: f64) -> String {
    if measured <= 0.0 {
        return "–".into();
    }
    format!("{:+.0}%", (predicted / measured - 1.0) * 100.0)
}

/// The Markdown of one comparison.
pub fn markdown(b: &PlanBench) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### {} rows, vectors {}\n\n\
         | table | rows | our plan | build: ours / default | index: ours / default | \
         recall@10: ours / default | query: ours / default |\n|---|---:|---|---:|---:|---:|---:|",
        b.rows, b.layout
    );
    let (mut ours_s, mut def_s, mut ours_b, mut def_b) = (b.plan_seconds, 0.0, 0u64, 0u64);
    for t in &b.tables {
        ours_s += t.ours.build_seconds;
        def_s += t.default.build_seconds;
        ours_b += t.ours.index_bytes;
        def_b += t.default.index_bytes;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} / {} | {} / {} | {:.3} / {:.3} | {:.1} ms / {:.1} ms |",
            t.table,
            t.rows,
            t.pick,
            secs(t.ours.build_seconds),
            secs(t.default.build_seconds),
            mib(t.ours.index_bytes),
            mib(t.default.index_bytes),
            t.ours.recall,
            t.default.recall,
            t.ours.query_ms,
            t.default.query_ms
        );
    }
    let faster = if ours_s < 1.0 {
        "no index built".to_string()
    } else {
        format!("{:.1}× faster", def_s / ours_s)
    };
    let smaller = if ours_b == 0 {
        "no index bytes".to_string()
    } else {
        format!("1/{:.1} of the bytes", def_b as f64 / ours_b as f64)
    };
    let _ = writeln!(out, "\nOur run's verification: {}.", b.verdict);
    let _ = writeln!(
        out,
        "\nIn all: ours {:.0} s (the plan's {:.0} s included) and {}, libSQL's defaults {:.0} s \
         and {}: **{faster}, {smaller}**.\n",
        ours_s,
        b.plan_seconds,
        mib(ours_b),
        def_s,
        mib(def_b),
    );
    let predicted: Vec<&TableResult> = b.tables.iter().filter(|t| t.predicted.is_some()).collect();
    if !predicted.is_empty() {
        let _ = writeln!(
            out,
            "The plan's predictions against what was measured:\n\n\
             | table | build predicted / measured | index predicted / measured | recall predicted / measured |\n\
             |---|---:|---:|---:|"
        );
        for t in predicted {
            let Some((s, bytes, r)) = t.predicted else {
                continue;
            };
            let _ = writeln!(
                out,
                "| {} | {} / {} ({}) | {} / {} ({}) | {:.3} / {:.3} |",
                t.table,
                secs(s),
                secs(t.ours.build_seconds),
                off(s, t.ours.build_seconds),
                mib(bytes),
                mib(t.ours.index_bytes),
                off(bytes as f64, t.ours.index_bytes as f64),
                r,
                t.ours.recall
            );
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `embeddings_384` in a file in `dir`, holding `rows` (id, vector).
    async fn table_of(dir: &Path, rows: &[(String, Vec<f32>)]) -> (libsql::Database, Connection) {
        let (db, conn) = legacy::open(&dir.join("t.db")).await.unwrap();
        conn.execute(
            "CREATE TABLE embeddings_384 (embedding_id TEXT, embedding_vector F32_BLOB(384))",
            (),
        )
        .await
        .unwrap();
        for (id, v) in rows {
            conn.execute(
                "INSERT INTO embeddings_384 VALUES (?1, ?2)",
                vec![Value::Text(id.clone()), Value::Blob(f32_blob(v))],
            )
            .await
            .unwrap();
        }
        (db, conn)
    }

    #[tokio::test]
    async fn no_query_is_a_vector_no_cosine_search_can_rank() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<(String, Vec<f32>)> = (0..60)
            .map(|i| {
                let mut v = vec![0.5f32; 384];
                v[i % 384] = 1.0;
                if i % 3 == 0 {
                    // Its norm overflows f32: at distance 1 from every row.
                    v = vec![f32::MAX; 384];
                }
                (format!("r{i}"), v)
            })
            .collect();
        let (_db, conn) = table_of(dir.path(), &rows).await;
        let queries = pick_queries(&conn, TargetTable::D384, 60, 30)
            .await
            .unwrap();
        assert_eq!(queries.len(), 30);
        for (id, v) in &queries {
            assert!(v[0] < f32::MAX, "{id} was drawn");
        }
        // Fewer rankable rows than asked for: as many as there are.
        let all = pick_queries(&conn, TargetTable::D384, 60, 60)
            .await
            .unwrap();
        assert_eq!(all.len(), 40);
    }

    #[tokio::test]
    async fn the_truth_holds_no_row_without_a_cosine_distance() {
        let dir = tempfile::tempdir().unwrap();
        let unit = |i: usize| {
            let mut v = vec![0.0f32; 384];
            v[i] = 1.0;
            v
        };
        let rows = [
            ("a".to_string(), unit(0)),
            ("b".to_string(), unit(1)),
            ("zero".to_string(), vec![0.0; 384]),
        ];
        let (_db, conn) = table_of(dir.path(), &rows).await;
        let truth = exact(&conn, TargetTable::D384, &unit(0), "q")
            .await
            .unwrap();
        assert_eq!(truth, ["a", "b"]);
    }
}
