//! One benchmark run, start to finish: generate, measure every contender on
//! identical copies, plot, write the report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::args::Args;
use crate::report::{rate, thousands, Results, ScaleRun};
use crate::{disk, floor, index, legacy, machine, ours, plot, reference, remote, search};

/// Runs the whole benchmark and writes the report and the plot.
pub async fn run(args: &Args) -> Result<()> {
    if args.rows == 0 || args.index_rows == 0 || args.floor_rows == 0 {
        bail!("--rows, --index-rows and --floor-rows must be at least 1");
    }
    if args.scaling.contains(&0) {
        bail!("--scaling sizes must be at least 1");
    }
    let work = tempfile::Builder::new()
        .prefix("migrate-bench-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("making a work folder in {}", args.dir.display()))?;
    let w = work.path();
    let began = Instant::now();
    let checkout = machine::checkout();
    let mut results = Results {
        command: args.command_line(),
        optimized: !cfg!(debug_assertions),
        seed: args.seed,
        ..Default::default()
    };

    let source = w.join("legacy.db");
    say(
        began,
        &format!("generating {} legacy rows", thousands(args.rows as f64)),
    );
    let generated = legacy::generate(&source, args.rows, args.seed).await?;
    results.rows = generated.rows;
    results.per_dimension = generated.per_dimension.clone();
    results.legacy_bytes = generated.bytes;
    results.compressed = legacy::count_compressed(&source).await?;
    say(
        began,
        &format!(
            "generated {:.1} MB in {:.1} s",
            generated.bytes as f64 / 1e6,
            generated.seconds
        ),
    );

    let db = w.join("reference.db");
    legacy::copy(&source, &db)?;
    say(began, "reference: libSQL INSERT … SELECT vector32()");
    results.reference = reference::run(&db).await?;
    legacy::remove(&db)?;
    let r = &results.reference;
    say(
        began,
        &format!(
            "  {} rows in {:.2} s: {} rows/s",
            r.rows,
            r.seconds,
            thousands(rate(r.rows, r.seconds))
        ),
    );

    let ours_db = w.join("ours.db");
    legacy::copy(&source, &ours_db)?;
    say(
        began,
        "ours: run_migration, copy + verify, in a child process",
    );
    results.ours = ours::run_child(&ours_db)?;
    let o = &results.ours;
    say(
        began,
        &format!(
            "  {} rows: copy {:.2} s, verify {:.2} s, peak RSS {:.1} MiB",
            o.rows,
            o.copy_seconds,
            o.verify_seconds,
            o.peak_rss_bytes as f64 / (1u64 << 20) as f64
        ),
    );

    let db = w.join("floor.db");
    legacy::copy(&source, &db)?;
    say(
        began,
        &format!("floor: row at a time, first {} rows", args.floor_rows),
    );
    results.floor = floor::run(&db, args.floor_rows).await?;
    legacy::remove(&db)?;
    let f = &results.floor;
    say(began, &format!("  {} rows in {:.2} s", f.rows, f.seconds));

    say(
        began,
        &format!("vector index: {} rows of 384 dimensions", args.index_rows),
    );
    results.index = index::run(w, &ours_db, args.index_rows, args.seed).await?;
    legacy::remove(&ours_db)?;
    let sqlite = sqlite_version(&source).await;
    legacy::remove(&source)?;

    if args.search_rows > 0 {
        say(
            began,
            &format!(
                "search: {} rows per dimension, index against brute force",
                thousands(args.search_rows as f64)
            ),
        );
        results.search =
            Some(search::run(w, args.search_rows, &[384, 1536, 3072], args.seed).await?);
    }
    if !args.latencies.is_empty() {
        let db = w.join("remote-legacy.db");
        say(
            began,
            &format!(
                "remote: {} rows over Hrana HTTP at {:?} ms",
                thousands(args.remote_rows as f64),
                args.latencies
            ),
        );
        legacy::generate(&db, args.remote_rows, args.seed).await?;
        results.remote = Some(remote::run(w, &db, args.remote_rows, &args.latencies).await?);
        legacy::remove(&db)?;
    }

    for &size in &args.scaling {
        let db = w.join(format!("scaling-{size}.db"));
        say(
            began,
            &format!("scaling: generating {} rows", thousands(size as f64)),
        );
        let generated = legacy::generate(&db, size, args.seed).await?;
        // The reference on an identical copy, so the machine's own scaling
        // is measured beside ours.
        let copy = w.join(format!("scaling-{size}-reference.db"));
        legacy::copy(&db, &copy)?;
        legacy::warm(&copy)?;
        say(began, "  reference: libSQL INSERT … SELECT vector32()");
        let reference = reference::run(&copy).await?;
        legacy::remove(&copy)?;
        say(
            began,
            &format!("  {} rows in {:.2} s", reference.rows, reference.seconds),
        );
        legacy::warm(&db)?;
        say(began, "  ours: copy + verify");
        let ours = ours::run_child(&db)?;
        legacy::remove(&db)?;
        say(
            began,
            &format!(
                "  copy {:.2} s, verify {:.2} s, peak RSS {:.1} MiB",
                ours.copy_seconds,
                ours.verify_seconds,
                ours.peak_rss_bytes as f64 / (1u64 << 20) as f64
            ),
        );
        let mut run = ScaleRun {
            legacy_bytes: generated.bytes,
            ours,
            write_seconds: 0.0,
            reference,
        };
        run.write_seconds = disk::write_seconds(w, run.grown_bytes(), disk::SETTLE)?;
        say(
            began,
            &format!(
                "  machine: writing the {:.1} MB our run added takes {:.2} s",
                run.grown_bytes() as f64 / 1e6,
                run.write_seconds
            ),
        );
        results.scaling.push(run);
    }

    if !results.scaling.is_empty() {
        let points: Vec<plot::Point> = results
            .scaling
            .iter()
            .map(|s| plot::Point {
                rows: s.ours.source_rows,
                copy_seconds: s.ours.copy_seconds,
                copy_verify_seconds: s.ours.copy_verify_seconds(),
                reference_seconds: if s.reference.rows > 0 {
                    s.reference.seconds * s.ours.source_rows as f64 / s.reference.rows as f64
                } else {
                    0.0
                },
            })
            .collect();
        let font = plot::find_font(Path::new(plot::PREFERRED_FONT), Path::new(plot::FONT_ROOT));
        let drawn = plot::draw(&points, &args.plot, font.as_deref())?;
        match &drawn.font {
            Some(f) => say(
                began,
                &format!("plot: {} (font {})", args.plot.display(), f.display()),
            ),
            None => say(
                began,
                &format!(
                    "plot: {} drawn WITHOUT text: no usable .ttf under {}",
                    args.plot.display(),
                    plot::FONT_ROOT
                ),
            ),
        }
        results.plot = Some((
            link(&args.out, &args.plot),
            drawn.font.map(|f| f.display().to_string()),
        ));
    }

    results.machine = machine::read(sqlite);
    results.machine.git = checkout;
    std::fs::write(&args.out, results.markdown())
        .with_context(|| format!("writing {}", args.out.display()))?;
    drop(work);
    say(began, &format!("wrote {}", args.out.display()));
    for t in results.targets() {
        println!("{:8} {} — {}", t.verdict.as_str(), t.name, t.measured);
    }
    Ok(())
}

/// A progress line on stderr, with the time since the start.
fn say(began: Instant, what: &str) {
    eprintln!("[{:7.1} s] {what}", began.elapsed().as_secs_f64());
}

/// `sqlite_version()` of the libSQL in use.
async fn sqlite_version(path: &Path) -> Option<String> {
    let (_db, conn) = legacy::open(path).await.ok()?;
    let mut rows = conn.query("SELECT sqlite_version()", ()).await.ok()?;
    let row = rows.next().await.ok()??;
    row.get::<String>(0).ok()
}

/// How the report at `out` links to the plot at `plot`: relative when the
/// plot is inside the report's folder, else absolute.
fn link(out: &Path, plot: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    let absolute = |p: &Path| -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            cwd.join(p)
        }
    };
    let out_dir = absolute(out)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let plot = absolute(plot);
    plot.strip_prefix(&out_dir)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| plot.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plot_link_is_relative_to_the_report() {
        assert_eq!(
            link(Path::new("BENCHMARKS.md"), Path::new("docs/scaling.png")),
            "docs/scaling.png"
        );
        assert_eq!(
            link(Path::new("/r/B.md"), Path::new("/r/docs/s.png")),
            "docs/s.png"
        );
        assert_eq!(
            link(Path::new("/r/B.md"), Path::new("/elsewhere/s.png")),
            "/elsewhere/s.png"
        );
    }
}
