//! The vector-index phase beside libSQL's own `CREATE INDEX` on the same
//! rows, and the effect of the index options on build time and recall@10.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use libsql::{Connection, Value};
use memory_storage_turso::migration::{run_migration, MigrationOptions, NoopObserver};
use memory_storage_turso::sample::create_legacy_table;
use memory_storage_turso::schema::{NeighborCompression, TargetTable, VectorIndexOptions};

use crate::legacy;
use crate::recall::{f32_blob, from_f32_blob, noisy_queries, recall, top_k, SplitMix};

/// Queries of the recall measurement.
pub const QUERIES: usize = 100;
/// Neighbours asked for and compared.
pub const K: usize = 10;
/// Length of a query's noise, relative to the row it was made from.
pub const NOISE: f32 = 0.05;
/// Builds timed of each of libSQL's `CREATE INDEX` and our default phase,
/// alternating: one build of about 15 s varies by ±15% from run to run.
pub const TIMED_BUILDS: usize = 3;
/// The table indexed.
const TABLE: TargetTable = TargetTable::D384;
/// Name of the raw `CREATE INDEX`'s index.
const RAW_INDEX: &str = "i";
const RAW_CREATE_INDEX: &str =
    "CREATE INDEX i ON embeddings_384(libsql_vector_idx(embedding_vector))";
/// Copies the legacy rows of the first `?1` migrated 384-dimension rows.
const COPY_LEGACY_ROWS: &str = "INSERT INTO embeddings SELECT * FROM src.embeddings \
     WHERE embedding_id IN (SELECT embedding_id FROM src.embeddings_384 ORDER BY rowid LIMIT ?1)";

/// One index build and what it gives.
#[derive(Debug, Clone)]
pub struct Build {
    /// What was built (`libSQL CREATE INDEX`, or our phase with options).
    pub label: String,
    /// Whether this is our index phase (else the raw `CREATE INDEX`).
    pub ours: bool,
    /// Seconds of the build (ours: the whole vector-index phase).
    pub seconds: f64,
    /// Seconds of the `embeddings_384` index alone within our phase.
    pub table_seconds: Option<f64>,
    /// Mean recall@10 over the queries.
    pub recall: f64,
    /// Mean time of one `vector_top_k` query, milliseconds.
    pub query_ms: f64,
}

/// The whole comparison.
#[derive(Debug, Clone, Default)]
pub struct IndexBench {
    /// Rows indexed.
    pub rows: u64,
    pub queries: usize,
    /// First the raw `CREATE INDEX`, then ours with each option set.
    pub builds: Vec<Build>,
    /// Seconds of further builds, `(CREATE INDEX, ours with default
    /// options)`, made alternately after `builds`.
    pub repeats: Vec<(f64, f64)>,
}

impl IndexBench {
    /// Seconds of libSQL's own `CREATE INDEX`: the median of its builds.
    pub fn raw_seconds(&self) -> Option<f64> {
        median(&self.raw_times())
    }

    /// Seconds of every build of libSQL's `CREATE INDEX`.
    pub fn raw_times(&self) -> Vec<f64> {
        let first = self.builds.iter().find(|b| !b.ours).map(|b| b.seconds);
        first
            .into_iter()
            .chain(self.repeats.iter().map(|r| r.0))
            .collect()
    }

    /// Seconds of every build of our phase with default options.
    pub fn ours_times(&self) -> Vec<f64> {
        let first = self.ours_default().map(|b| b.seconds);
        first
            .into_iter()
            .chain(self.repeats.iter().map(|r| r.1))
            .collect()
    }

    /// Our default phase's median over `CREATE INDEX`'s median.
    pub fn ratio(&self) -> Option<f64> {
        match (median(&self.ours_times()), self.raw_seconds()) {
            (Some(ours), Some(raw)) if raw > 0.0 => Some(ours / raw),
            _ => None,
        }
    }

    /// Our phase with default options.
    pub fn ours_default(&self) -> Option<&Build> {
        self.builds.iter().find(|b| b.ours)
    }
}

/// The option sets compared.
pub fn variants() -> Vec<(String, VectorIndexOptions)> {
    let float8 = Some(NeighborCompression::Float8);
    [
        VectorIndexOptions::default(),
        VectorIndexOptions {
            compress_neighbors: float8,
            ..Default::default()
        },
        VectorIndexOptions {
            max_neighbors: Some(16),
            ..Default::default()
        },
        VectorIndexOptions {
            compress_neighbors: float8,
            max_neighbors: Some(16),
            ..Default::default()
        },
        VectorIndexOptions {
            search_l: Some(40),
            ..Default::default()
        },
    ]
    .into_iter()
    .map(|o| (label(&o), o))
    .collect()
}

/// The median of `values` (`None` if empty).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// `default`, or the options as libSQL spells them.
pub fn label(options: &VectorIndexOptions) -> String {
    let mut parts = Vec::new();
    if let Some(c) = options.compress_neighbors {
        parts.push(format!("compress_neighbors={}", c.as_str()));
    }
    if let Some(n) = options.max_neighbors {
        parts.push(format!("max_neighbors={n}"));
    }
    if let Some(n) = options.search_l {
        parts.push(format!("search_l={n}"));
    }
    if parts.is_empty() {
        "default".to_string()
    } else {
        parts.join(", ")
    }
}

/// Runs the comparison on `rows` 384-dimension rows taken from the migrated
/// database `source`, in databases made under `work`.
pub async fn run(work: &Path, source: &Path, rows: usize, seed: u64) -> Result<IndexBench> {
    let prep = work.join("index-prep.db");
    prepare(&prep, source, rows).await?;
    let (ids, vectors) = read_vectors(&prep).await?;
    if vectors.is_empty() {
        bail!("no 384-dimension rows to index");
    }
    let queries = noisy_queries(&vectors, QUERIES, NOISE, &mut SplitMix::new(seed));
    let truth: Vec<Vec<String>> = queries
        .iter()
        .map(|q| {
            top_k(&vectors, q, K)
                .into_iter()
                .map(|i| ids[i].clone())
                .collect()
        })
        .collect();
    let mut bench = IndexBench {
        rows: ids.len() as u64,
        queries: queries.len(),
        builds: Vec::new(),
        repeats: Vec::new(),
    };

    let db = work.join("index-raw.db");
    legacy::copy(&prep, &db)?;
    {
        let (_d, conn) = legacy::open(&db).await?;
        eprintln!("  libSQL CREATE INDEX…");
        let seconds = raw_build(&conn).await?;
        let (recall, query_ms) = measure(&conn, RAW_INDEX, &queries, &truth).await?;
        bench.builds.push(Build {
            label: "libSQL `CREATE INDEX`".into(),
            ours: false,
            seconds,
            table_seconds: None,
            recall,
            query_ms,
        });
    }
    legacy::remove(&db)?;

    let index_name = TABLE.vector_index_name().unwrap_or_default();
    for (label, options) in variants() {
        let db = work.join("index-ours.db");
        legacy::copy(&prep, &db)?;
        {
            let (_d, conn) = legacy::open(&db).await?;
            eprintln!("  our index phase, {label}…");
            let (seconds, table_seconds) = our_phase(&conn, options).await?;
            let (recall, query_ms) = measure(&conn, index_name, &queries, &truth).await?;
            bench.builds.push(Build {
                label,
                ours: true,
                seconds,
                table_seconds: Some(table_seconds),
                recall,
                query_ms,
            });
        }
        legacy::remove(&db)?;
    }
    for i in 1..TIMED_BUILDS {
        eprintln!(
            "  timed again ({}/{TIMED_BUILDS}): CREATE INDEX, then ours…",
            i + 1
        );
        let db = work.join("index-raw.db");
        legacy::copy(&prep, &db)?;
        let raw = {
            let (_d, conn) = legacy::open(&db).await?;
            raw_build(&conn).await?
        };
        legacy::remove(&db)?;
        let db = work.join("index-ours.db");
        legacy::copy(&prep, &db)?;
        let ours = {
            let (_d, conn) = legacy::open(&db).await?;
            our_phase(&conn, VectorIndexOptions::default()).await?.0
        };
        legacy::remove(&db)?;
        bench.repeats.push((raw, ours));
    }
    legacy::remove(&prep)?;
    Ok(bench)
}

/// Seconds of libSQL's own `CREATE INDEX` on `conn`.
async fn raw_build(conn: &Connection) -> Result<f64> {
    let began = Instant::now();
    conn.execute(RAW_CREATE_INDEX, ())
        .await
        .context("libSQL's CREATE INDEX")?;
    Ok(began.elapsed().as_secs_f64())
}

/// A database holding the legacy rows of the first `rows` migrated
/// 384-dimension rows of `source`, migrated by us without vector index.
async fn prepare(prep: &Path, source: &Path, rows: usize) -> Result<()> {
    let (_db, conn) = legacy::open(prep).await?;
    create_legacy_table(&conn, true)
        .await
        .context("creating the legacy table of the index database")?;
    conn.execute(
        "ATTACH DATABASE ?1 AS src",
        [source.to_string_lossy().as_ref()],
    )
    .await
    .with_context(|| format!("attaching {}", source.display()))?;
    conn.execute(COPY_LEGACY_ROWS, [rows as i64])
        .await
        .context("copying the rows to index")?;
    conn.execute("DETACH DATABASE src", ())
        .await
        .context("detaching the source")?;
    let options = MigrationOptions {
        build_vector_index: false,
        ..Default::default()
    };
    let report = run_migration(&conn, &options, &NoopObserver)
        .await
        .context("migrating the rows to index")?;
    if !report.verification.as_ref().is_some_and(|v| v.passed) {
        bail!("the index database did not verify");
    }
    Ok(())
}

/// `(embedding_id, vector)` of every row of `embeddings_384`, in rowid order.
async fn read_vectors(path: &Path) -> Result<(Vec<String>, Vec<Vec<f32>>)> {
    let (_db, conn) = legacy::open(path).await?;
    let mut rows = conn
        .query(
            "SELECT embedding_id, embedding_vector FROM embeddings_384 ORDER BY rowid",
            (),
        )
        .await
        .context("reading the indexed rows")?;
    let (mut ids, mut vectors) = (Vec::new(), Vec::new());
    while let Some(row) = rows.next().await.context("reading an indexed row")? {
        ids.push(row.get::<String>(0).context("embedding_id")?);
        let blob = row.get::<Vec<u8>>(1).context("embedding_vector")?;
        vectors.push(from_f32_blob(&blob).context("a vector that is not f32s")?);
    }
    Ok((ids, vectors))
}

/// Our vector-index phase with `options` on a migrated database: seconds of
/// the phase, and of the `embeddings_384` index within it.
async fn our_phase(conn: &Connection, options: VectorIndexOptions) -> Result<(f64, f64)> {
    let run = MigrationOptions {
        build_vector_index: true,
        vector_index: options,
        ..Default::default()
    };
    let report = run_migration(conn, &run, &NoopObserver)
        .await
        .context("our vector-index phase")?;
    let phase = report
        .phases
        .iter()
        .find(|p| p.phase == "vector_index")
        .map(|p| p.seconds)
        .context("the report has no vector_index phase")?;
    let table = report
        .vector_indexes
        .iter()
        .find(|i| i.table == TABLE.name() && i.status == "built")
        .map(|i| i.seconds)
        .context("the index of embeddings_384 was not built")?;
    Ok((phase, table))
}

/// Mean recall@K of `index` over the queries, and mean milliseconds per query.
async fn measure(
    conn: &Connection,
    index: &str,
    queries: &[Vec<f32>],
    truth: &[Vec<String>],
) -> Result<(f64, f64)> {
    let sql = format!(
        "SELECT e.embedding_id FROM vector_top_k('{index}', ?1, {K}) v \
         JOIN embeddings_384 e ON e.rowid = v.id"
    );
    let mut total = 0.0;
    let began = Instant::now();
    for (query, truth) in queries.iter().zip(truth) {
        let mut rows = conn
            .query(&sql, [Value::Blob(f32_blob(query))])
            .await
            .context("vector_top_k")?;
        let mut found = Vec::new();
        while let Some(row) = rows.next().await.context("reading vector_top_k")? {
            found.push(row.get::<String>(0).context("embedding_id")?);
        }
        total += recall(truth, &found);
    }
    let n = queries.len().max(1) as f64;
    Ok((total / n, began.elapsed().as_secs_f64() * 1000.0 / n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_middle_value_or_the_mean_of_the_two() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn option_sets_are_labelled_as_libsql_spells_them() {
        let labels: Vec<String> = variants().into_iter().map(|(l, _)| l).collect();
        assert_eq!(
            labels,
            [
                "default",
                "compress_neighbors=float8",
                "max_neighbors=16",
                "compress_neighbors=float8, max_neighbors=16",
                "search_l=40"
            ]
        );
    }
}
