//! Writes a sample legacy database (the realistic mix of dimensions, formats
//! and a few bad rows) for trying the migration or measuring it:
//!
//! ```text
//! cargo run --release -p memory-storage-turso --example make_sample -- /tmp/legacy.db 100000
//! ```
//!
//! A fourth argument, `clustered`, draws the vectors around 1,000 centres
//! per dimension instead of uniformly on the sphere.

use memory_storage_turso::sample::{generate_legacy_database, SampleSpec};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(rows)) = (args.next(), args.next()) else {
        eprintln!("usage: make_sample PATH ROWS [SEED [clustered]]");
        std::process::exit(2);
    };
    let rows: usize = rows.parse()?;
    let seed: u64 = args.next().map_or(Ok(1), |s| s.parse())?;
    let clusters = match args.next().as_deref() {
        None => 0,
        Some("clustered") => 1000,
        Some(other) => {
            eprintln!("unknown vector layout {other:?}: give `clustered` or nothing");
            std::process::exit(2);
        }
    };
    if std::path::Path::new(&path).exists() {
        eprintln!("{path} exists already: refusing to overwrite it");
        std::process::exit(1);
    }
    let db = libsql::Builder::new_local(&path).build().await?;
    let conn = db.connect()?;
    let started = std::time::Instant::now();
    let summary = generate_legacy_database(
        &conn,
        &SampleSpec {
            clusters,
            ..SampleSpec::realistic(rows, seed)
        },
    )
    .await?;
    println!(
        "{path}: {} rows ({} bad on purpose) in {:.1} s; per dimension: {:?}",
        summary.total_rows,
        summary.bad.len(),
        started.elapsed().as_secs_f64(),
        summary.valid_per_dimension
    );
    Ok(())
}
