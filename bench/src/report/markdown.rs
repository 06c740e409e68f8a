//! The report as Markdown: how to reproduce, the machine, the targets, and
//! one table per measurement.

use std::fmt::Write as _;

use super::{mb, mbps, mib, rate, thousands, Results};
use crate::index::{K, NOISE};

impl Results {
    /// The whole report as Markdown.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        self.write_head(&mut md);
        self.write_targets(&mut md);
        self.write_results(&mut md);
        self.write_index(&mut md);
        self.write_scaling(&mut md);
        if let Some(search) = &self.search {
            md.push('\n');
            md.push_str(&search.markdown());
        }
        if let Some(remote) = &self.remote {
            md.push('\n');
            md.push_str(&remote.markdown());
        }
        md
    }

    fn write_head(&self, md: &mut String) {
        let m = &self.machine;
        let _ = writeln!(md, "# Benchmarks\n");
        let _ = writeln!(
            md,
            "Written by `migrate-bench` on {}; every number here comes from that one run.\n",
            m.date
        );
        if !self.optimized {
            let _ = writeln!(
                md,
                "**This run was built without `--release`: its times say nothing about the tool.**\n"
            );
        }
        let _ = writeln!(md, "## How to reproduce\n\n```sh\n{}\n```\n", self.command);
        let _ = writeln!(
            md,
            "The databases are made in a temporary folder under `--dir` (default `/tmp`) and \
             deleted at the end. Each contender starts from a byte-identical copy \
             (`std::fs::copy`) of one generated legacy database.\n"
        );
        let _ = writeln!(
            md,
            "The index plan beside libSQL's default `CREATE INDEX` (build time, index bytes, \
             recall@10, the plan's predictions against the measured) is its own run, \
             `cargo run --release -p migrate-bench -- index-plan --rows 100000 --clusters 1000`, \
             written to [docs/index-plan-bench.md](docs/index-plan-bench.md).\n"
        );
        let _ = writeln!(md, "## Machine\n\n| | |\n|---|---|");
        let _ = writeln!(md, "| CPUs | {} |", m.cpus);
        let _ = writeln!(md, "| CPU model | {} |", m.cpu_model);
        let _ = writeln!(
            md,
            "| memory | {:.1} GiB |",
            m.memory_bytes as f64 / (1u64 << 30) as f64
        );
        let _ = writeln!(
            md,
            "| rustc | {} |",
            m.rustc.as_deref().unwrap_or("unknown")
        );
        let _ = writeln!(
            md,
            "| libsql crate | {} (SQLite {}) |",
            m.libsql,
            m.sqlite.as_deref().unwrap_or("unknown")
        );
        if let Some(k) = &m.kernel {
            let _ = writeln!(md, "| Linux | {k} |");
        }
        if let Some(g) = &m.git {
            let _ = writeln!(md, "| checkout | `{g}` |");
        }
        let mix: Vec<String> = self
            .per_dimension
            .iter()
            .map(|(d, n)| format!("{} × {d}", thousands(*n as f64)))
            .collect();
        let _ = writeln!(
            md,
            "\n## Data\n\n{} rows from `generate_legacy_database` with `SampleSpec::realistic({}, {})` and \
             `bad_rows: 0`: {} dimensions; {} of them compressed payloads (which the reference \
             cannot copy). Legacy file: {}.\n",
            thousands(self.rows as f64),
            self.rows,
            self.seed,
            mix.join(", "),
            thousands(self.compressed as f64),
            mb(self.legacy_bytes),
        );
    }

    fn write_targets(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "## Targets\n\n| target | measured | result |\n|---|---:|---|"
        );
        for t in self.targets() {
            let _ = writeln!(
                md,
                "| {} | {} | **{}** |",
                t.name,
                t.measured,
                t.verdict.as_str()
            );
        }
        let mut runs = vec![&self.ours];
        runs.extend(self.scaling.iter().map(|s| &s.ours));
        let failed = runs
            .iter()
            .filter(|o| !o.verification_passed || o.quarantined > 0 || o.rows != o.source_rows)
            .count();
        let _ = writeln!(
            md,
            "\n{}\n",
            if failed == 0 {
                format!(
                    "Each of our {} runs copied every row and verified it (no quarantined row, no discrepancy).",
                    runs.len()
                )
            } else {
                format!(
                    "**{failed} of our {} runs did not copy and verify every row**: their numbers are not comparable.",
                    runs.len()
                )
            }
        );
    }

    fn write_results(&self, md: &mut String) {
        let r = &self.reference;
        let o = &self.ours;
        let f = &self.floor;
        let (copy, copy_verify) = self.our_rates();
        let legacy = self.legacy_bytes;
        let _ = writeln!(
            md,
            "## Copy and verification, {} rows\n\n\
             | run | rows | seconds | rows/s | ÷ reference | MB/s | peak RSS |\n\
             |---|---:|---:|---:|---:|---:|---:|",
            thousands(self.rows as f64)
        );
        let mut row =
            |name: &str, rows: u64, secs: f64, rate: f64, mbs: Option<f64>, rss: Option<u64>| {
                let _ = writeln!(
                    md,
                    "| {name} | {} | {secs:.2} | {} | {:.2}× | {} | {} |",
                    thousands(rows as f64),
                    thousands(rate),
                    self.ratio(rate),
                    mbs.map_or("—".into(), |v| format!("{v:.1}")),
                    rss.map_or("—".into(), mib),
                );
            };
        row(
            "libSQL `INSERT … SELECT vector32()` (reference, plain rows only)",
            r.rows,
            r.seconds,
            self.reference_rate(),
            Some(mbps(legacy, r.seconds)),
            None,
        );
        row(
            "ours: copy",
            o.rows,
            o.copy_seconds,
            copy,
            Some(mbps(legacy, o.copy_seconds)),
            Some(o.peak_rss_bytes),
        );
        row(
            "ours: verify",
            o.rows_verified,
            o.verify_seconds,
            rate(o.rows_verified, o.verify_seconds),
            Some(mbps(legacy, o.verify_seconds)),
            None,
        );
        row(
            "ours: copy + verify",
            o.rows,
            o.copy_verify_seconds(),
            copy_verify,
            Some(mbps(legacy, o.copy_verify_seconds())),
            Some(o.peak_rss_bytes),
        );
        row(
            &format!(
                "floor: row at a time, autocommit (first {} rows)",
                thousands((f.rows + f.skipped_compressed) as f64)
            ),
            f.rows,
            f.seconds,
            rate(f.rows, f.seconds),
            None,
            None,
        );
        let _ = writeln!(
            md,
            "\n- rows/s is rows written ÷ seconds; ÷ reference is that rate over the reference's. \
             The reference writes only the plain rows ({} of {}); ours writes all of them.\n\
             - MB/s is the legacy file ({}) ÷ seconds.\n\
             - ours is `run_migration` with `build_vector_index: false` in a child process; copy and \
             verify seconds are the report's `phases`; the process took {:.2} s from start to exit. \
             Peak RSS is the child's {}.\n\
             - The reference is one transaction per target table; its seconds exclude creating the tables.\n\
             - The floor parses each plain row with `serde_json::from_str::<Vec<f32>>` and writes it with \
             `INSERT OR REPLACE … vector32(?)` and the vector as decimal text, one transaction per row \
             ({} compressed rows among those read were skipped).\n",
            thousands(r.rows as f64),
            thousands(self.rows as f64),
            mb(legacy),
            o.process_seconds,
            o.rss_source,
            f.skipped_compressed,
        );
    }

    fn write_index(&self, md: &mut String) {
        let ix = &self.index;
        let raw = ix.raw_seconds().unwrap_or(0.0);
        let _ = writeln!(
            md,
            "## Vector index, {} rows of 384 dimensions\n\n\
             | build | seconds | ÷ `CREATE INDEX` | recall@{K} | ms per query |\n\
             |---|---:|---:|---:|---:|",
            thousands(ix.rows as f64)
        );
        for b in &ix.builds {
            let name = if b.ours {
                format!("ours, {}", b.label)
            } else {
                b.label.clone()
            };
            let ratio = if raw > 0.0 { b.seconds / raw } else { 0.0 };
            let _ = writeln!(
                md,
                "| {name} | {:.2} | {ratio:.2}× | {:.3} | {:.2} |",
                b.seconds, b.recall, b.query_ms
            );
        }
        let table: Vec<String> = ix
            .builds
            .iter()
            .filter_map(|b| b.table_seconds.map(|s| format!("{s:.2} s ({})", b.label)))
            .collect();
        let _ = writeln!(
            md,
            "\nThe rows are the first {} of `embeddings_384` after our run above, migrated by us into a \
             fresh database of which every build gets an identical copy. `CREATE INDEX` is \
             `CREATE INDEX i ON embeddings_384(libsql_vector_idx(embedding_vector))`; ours is the \
             `vector_index` phase of `run_migration` on the already migrated rows (all four native \
             tables, the three others empty; `embeddings_384` alone: {}). Recall@{K} is the mean over \
             {} queries, each a stored vector plus noise of {}% of its length, of the share of the \
             brute-force cosine top {K} (in Rust, over the same rows) that `vector_top_k` returned.\n",
            thousands(ix.rows as f64),
            table.join(", "),
            ix.queries,
            NOISE * 100.0,
        );
        if !ix.repeats.is_empty() {
            let list = |v: Vec<f64>| {
                v.iter()
                    .map(|s| format!("{s:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                md,
                "Timed {} times each, alternately (one build varies by about ±15% from run to \
                 run): `CREATE INDEX` {} s, ours with default options {} s. The `÷ CREATE INDEX` \
                 column divides by the median `CREATE INDEX`, and the target compares the two \
                 medians: {:.2}×.\n",
                ix.repeats.len() + 1,
                list(ix.raw_times()),
                list(ix.ours_times()),
                ix.ratio().unwrap_or(0.0),
            );
        }
    }

    fn write_scaling(&self, md: &mut String) {
        let _ = writeln!(md, "## Scaling\n");
        if self.scaling.is_empty() {
            let _ = writeln!(md, "Not run (no `--scaling`).");
            return;
        }
        let _ = writeln!(
            md,
            "Ours (copy + verify, no vector index) on a fresh legacy database of each size, and \
             the reference (libSQL's own `INSERT … SELECT vector32()`, plain rows only) on an \
             identical copy of it just before; each starts with its database file just read once from start to end, so in the page cache as a database in use is, whatever the step before left there. `÷ reference` is our copy's time per row over the \
             reference's time per row at the same size: if the machine slows down per row as the \
             data grows, both slow down, and this ratio stays flat while our own work scales \
             linearly. After each run, the bytes our run added are written to a fresh file as \
             plain 4 KiB writes and synced (`machine write s`); `CPU user` is the run's \
             user-space CPU time (our code, libSQL, the decoder), `CPU kernel` its system time \
             (file reads and writes, page cache). `first / last tenth` is our copy's µs per row over the first and over the last tenth of its rows, timed from its batches: whether the cost of a row grows as the run goes on.\n\n\
             | rows | legacy MB | added MB | reference copy s | reference µs per row | copy s | copy µs per row | first / last tenth | ÷ reference | verify s | copy + verify µs per row | machine write s | CPU user µs per row | CPU kernel µs per row | peak RSS |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for s in &self.scaling {
            let o = &s.ours;
            let per = |secs: f64, rows: u64| {
                if rows > 0 {
                    secs * 1e6 / rows as f64
                } else {
                    0.0
                }
            };
            let _ = writeln!(
                md,
                "| {} | {:.1} | {:.1} | {:.2} | {:.1} | {:.2} | {:.1} | {} | {} | {:.2} | {:.1} | {:.2} | {:.1} | {:.1} | {} |",
                thousands(o.source_rows as f64),
                s.legacy_bytes as f64 / 1e6,
                s.grown_bytes() as f64 / 1e6,
                s.reference.seconds,
                per(s.reference.seconds, s.reference.rows),
                o.copy_seconds,
                per(o.copy_seconds, o.rows),
                o.copy_tenths_us
                    .map_or("—".to_string(), |(a, b)| format!("{a:.1} / {b:.1}")),
                s.copy_to_reference()
                    .map_or("—".to_string(), |r| format!("{r:.2}")),
                o.verify_seconds,
                s.micros_per_row(),
                s.write_seconds,
                per(o.cpu_user_seconds, o.rows),
                per(o.cpu_system_seconds, o.rows),
                mib(o.peak_rss_bytes),
            );
        }
        match &self.plot {
            Some((link, Some(_))) => {
                let _ = writeln!(md, "\n![seconds against rows, log-log]({link})");
            }
            Some((link, None)) => {
                let _ = writeln!(
                    md,
                    "\n![seconds against rows, log-log]({link})\n\n(No TrueType font was found \
                     under /usr/share/fonts: the plot has no text. Blue: copy; red: copy + verify; \
                     grey: libSQL's INSERT … SELECT scaled to all rows; dashed: linear growth of the \
                     copy from the smallest size.)"
                );
            }
            None => {
                let _ = writeln!(md, "\nNo plot was drawn.");
            }
        }
    }
}
