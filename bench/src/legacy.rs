//! The legacy databases every run starts from: generated once, then copied
//! file for file so each contender starts from identical bytes.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use libsql::{Builder, Connection, Database};
use memory_storage_turso::sample::{generate_legacy_database, SampleSpec};

/// A generated legacy database.
#[derive(Debug, Clone)]
pub struct Generated {
    /// Rows in its `embeddings` table.
    pub rows: u64,
    /// Rows per dimension.
    pub per_dimension: BTreeMap<i64, usize>,
    /// Size of the file, in bytes.
    pub bytes: u64,
    /// Time the generation took (not a measurement of the migration).
    pub seconds: f64,
}

/// The realistic mix of `SampleSpec::realistic`, without bad rows: every
/// contender must be able to copy every row.
pub fn spec(rows: usize, seed: u64) -> SampleSpec {
    SampleSpec {
        bad_rows: 0,
        ..SampleSpec::realistic(rows, seed)
    }
}

/// Opens (or creates) a local database file.
pub async fn open(path: &Path) -> Result<(Database, Connection)> {
    let db = Builder::new_local(path)
        .build()
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let conn = db
        .connect()
        .with_context(|| format!("connecting to {}", path.display()))?;
    Ok((db, conn))
}

/// Writes a legacy database of `rows` rows at `path`, which must not exist.
pub async fn generate(path: &Path, rows: usize, seed: u64) -> Result<Generated> {
    generate_clustered(path, rows, 0, seed).await
}

/// As [`generate`], the vectors around `clusters` centres per dimension
/// (0: uniform on the sphere, as the realistic mix draws them).
pub async fn generate_clustered(
    path: &Path,
    rows: usize,
    clusters: u32,
    seed: u64,
) -> Result<Generated> {
    if path.exists() {
        bail!("{} exists already", path.display());
    }
    let began = Instant::now();
    let summary = {
        let (_db, conn) = open(path).await?;
        let spec = SampleSpec {
            clusters,
            ..spec(rows, seed)
        };
        generate_legacy_database(&conn, &spec)
            .await
            .with_context(|| format!("generating {rows} legacy rows in {}", path.display()))?
    };
    settled(path)?;
    Ok(Generated {
        rows: summary.total_rows as u64,
        per_dimension: summary.valid_per_dimension,
        bytes: file_size(path)?,
        seconds: began.elapsed().as_secs_f64(),
    })
}

/// `LIKE` pattern of a compressed payload (`__compressed__:…`), with its escape.
pub const COMPRESSED_LIKE: &str = r"'\_\_compressed\_\_:%' ESCAPE '\'";

/// Rows of the legacy table whose payload is compressed.
pub async fn count_compressed(path: &Path) -> Result<u64> {
    let (_db, conn) = open(path).await?;
    let mut rows = conn
        .query(
            &format!("SELECT count(*) FROM embeddings WHERE embedding_data LIKE {COMPRESSED_LIKE}"),
            (),
        )
        .await
        .context("counting compressed rows")?;
    let row = rows
        .next()
        .await
        .context("counting compressed rows")?
        .context("count(*) returned no row")?;
    Ok(row.get::<i64>(0).context("count(*)")?.max(0) as u64)
}

/// Copies a closed database file: the contenders' identical starting points.
pub fn copy(from: &Path, to: &Path) -> Result<()> {
    settled(from)?;
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// Reads a closed database file once from start to end, so the contender
/// about to run on it starts with its database in the page cache (as a
/// database in use is), whatever the step before left there.
pub fn warm(path: &Path) -> Result<()> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    std::io::copy(&mut file, &mut std::io::sink())
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(())
}

/// Removes a database file and any journal beside it.
pub fn remove(path: &Path) -> Result<()> {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let file = path.with_file_name(format!(
            "{}{suffix}",
            path.file_name().unwrap_or_default().to_string_lossy()
        ));
        if file.exists() {
            std::fs::remove_file(&file).with_context(|| format!("removing {}", file.display()))?;
        }
    }
    Ok(())
}

/// Size of a file in bytes.
pub fn file_size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("reading the size of {}", path.display()))?
        .len())
}

/// Fails if the database still has a journal or WAL beside it: a copy of the
/// main file alone would then not be the whole database.
fn settled(path: &Path) -> Result<()> {
    for suffix in ["-journal", "-wal"] {
        let file = format!("{}{suffix}", path.display());
        if Path::new(&file).exists() {
            bail!("{file} exists: the database is still open or was not closed cleanly");
        }
    }
    Ok(())
}
