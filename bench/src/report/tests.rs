use super::*;
use crate::index::Build;

fn ours(rows: u64, copy: f64, verify: f64, rss_mib: u64) -> Ours {
    Ours {
        source_rows: rows,
        rows,
        copy_seconds: copy,
        verify_seconds: verify,
        rows_verified: rows,
        verification_passed: true,
        quarantined: 0,
        process_seconds: copy + verify + 0.1,
        peak_rss_bytes: rss_mib << 20,
        rss_source: "VmHWM",
        cpu_user_seconds: copy + verify,
        cpu_system_seconds: 0.0,
        db_bytes: 0,
        copy_tenths_us: Some((copy * 1e6 / rows as f64, copy * 1e6 / rows as f64)),
    }
}

fn results() -> Results {
    Results {
        command: "cargo run --release -p migrate-bench -- --rows 1000".into(),
        optimized: true,
        machine: Machine {
            cpus: 2,
            cpu_model: "Test CPU".into(),
            memory_bytes: 24 << 30,
            rustc: Some("rustc 1.95.0".into()),
            libsql: "0.10.0".into(),
            sqlite: Some("3.45.1".into()),
            kernel: None,
            git: None,
            date: "2026-01-01".into(),
        },
        seed: 1,
        rows: 1000,
        per_dimension: [(384, 700), (1536, 300)].into(),
        legacy_bytes: 10_000_000,
        compressed: 200,
        // 800 rows in 1 s: 800 rows/s.
        reference: Reference {
            rows: 800,
            seconds: 1.0,
        },
        // 1000 rows in 0.25 s copy (4000/s = 5×), 0.5 s with verify (2000/s = 2.5×).
        ours: ours(1000, 0.25, 0.25, 30),
        floor: Floor {
            rows: 80,
            skipped_compressed: 20,
            seconds: 2.0,
        },
        index: IndexBench {
            rows: 300,
            queries: 100,
            builds: vec![
                Build {
                    label: "libSQL `CREATE INDEX`".into(),
                    ours: false,
                    seconds: 2.0,
                    table_seconds: None,
                    recall: 0.9,
                    query_ms: 1.0,
                },
                Build {
                    label: "default".into(),
                    ours: true,
                    seconds: 2.4,
                    table_seconds: Some(2.3),
                    recall: 0.91,
                    query_ms: 1.1,
                },
            ],
            repeats: vec![],
        },
        scaling: vec![
            ScaleRun {
                legacy_bytes: 1_000_000,
                ours: ours(100, 0.1, 0.05, 20),
                write_seconds: 0.05,
                // 500 µs per row against our 1,000: 2.00.
                reference: Reference {
                    rows: 80,
                    seconds: 0.04,
                },
            },
            ScaleRun {
                legacy_bytes: 10_000_000,
                ours: ours(1000, 0.3, 0.2, 70),
                write_seconds: 0.0,
                // 375 µs per row against our 300: 0.80.
                reference: Reference {
                    rows: 800,
                    seconds: 0.3,
                },
            },
        ],
        plot: Some(("docs/scaling.png".into(), Some("DejaVuSans.ttf".into()))),
        search: None,
        remote: None,
    }
}

#[test]
fn targets_compare_with_the_reference() {
    let targets = results().targets();
    let verdicts: Vec<(&str, Verdict)> = targets
        .iter()
        .map(|t| (t.measured.as_str(), t.verdict))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("5.00×", Verdict::Pass),
            ("2.50×", Verdict::Pass),
            ("1,000,000 was not in --scaling", Verdict::NotRun),
            // The largest peak of all runs, the scaling ones included.
            ("70.0 MiB", Verdict::Fail),
            ("1.20×", Verdict::Fail),
            ("2.50× (2.00, 0.80 at 100, 1,000)", Verdict::Fail),
        ]
    );
}

#[test]
fn the_index_target_compares_the_medians_of_the_timed_builds() {
    let mut r = results();
    // CREATE INDEX 2.0, 2.2, 1.8 s (median 2.0); ours 2.4, 2.0, 2.1 s
    // (median 2.1): 1.05×, where the first builds alone give 1.20×.
    r.index.repeats = vec![(2.2, 2.0), (1.8, 2.1)];
    let index = &r.targets()[4];
    assert_eq!(
        (index.measured.as_str(), index.verdict),
        ("1.05×", Verdict::Pass)
    );
    let md = r.markdown();
    assert!(
        md.contains(
            "`CREATE INDEX` 2.00, 2.20, 1.80 s, ours with default options 2.40, 2.00, 2.10 s"
        ),
        "{md}"
    );
}

#[test]
fn linearity_is_judged_against_the_machines_own_scaling() {
    let mut r = results();
    // Our per-row copy cost doubles (1,000 → 2,000 µs), and so does the
    // reference's on the same machine: our work scales linearly.
    r.scaling = vec![
        ScaleRun {
            legacy_bytes: 0,
            ours: ours(1000, 1.0, 0.4, 20),
            write_seconds: 0.0,
            reference: Reference {
                rows: 800,
                seconds: 2.0,
            },
        },
        ScaleRun {
            legacy_bytes: 0,
            ours: ours(10_000, 20.0, 8.0, 20),
            write_seconds: 0.0,
            reference: Reference {
                rows: 8000,
                seconds: 40.0,
            },
        },
    ];
    let linear = r.targets().pop().expect("the linearity target");
    assert_eq!(linear.measured, "1.00× (0.40, 0.40 at 1,000, 10,000)");
    assert_eq!(linear.verdict, Verdict::Pass);
    // The reference keeping its pace while ours doubles is not linear.
    r.scaling[1].reference.seconds = 20.0;
    let linear = r.targets().pop().expect("the linearity target");
    assert_eq!(linear.verdict, Verdict::Fail);
    // One size proves nothing.
    r.scaling.truncate(1);
    assert_eq!(r.targets().pop().map(|t| t.verdict), Some(Verdict::NotRun));
}

#[test]
fn the_million_target_uses_the_million_row_run() {
    let mut r = results();
    r.scaling.push(ScaleRun {
        legacy_bytes: 0,
        ours: ours(1_000_000, 200.0, 150.0, 40),
        write_seconds: 0.0,
        reference: Reference::default(),
    });
    let million = &r.targets()[2];
    assert_eq!(million.measured, "350.0 s");
    assert_eq!(million.verdict, Verdict::Fail);
}

#[test]
fn markdown_has_every_section_and_number() {
    let md = results().markdown();
    for expected in [
        "# Benchmarks",
        "```sh\ncargo run --release -p migrate-bench -- --rows 1000\n```",
        "| CPU model | Test CPU |",
        "| libsql crate | 0.10.0 (SQLite 3.45.1) |",
        "| copy ≥ 3× reference rows/s | 5.00× | **PASS** |",
        "| peak RSS < 64 MiB (largest of our runs) | 70.0 MiB | **FAIL** |",
        "| libSQL `INSERT … SELECT vector32()` (reference, plain rows only) | 800 | 1.00 | 800 | 1.00× | 10.0 | — |",
        "| ours: copy | 1,000 | 0.25 | 4,000 | 5.00× | 40.0 | 30.0 MiB |",
        "| ours: copy + verify | 1,000 | 0.50 | 2,000 | 2.50× | 20.0 | 30.0 MiB |",
        "| floor: row at a time, autocommit (first 100 rows) | 80 | 2.00 | 40 | 0.05× | — | — |",
        "| libSQL `CREATE INDEX` | 2.00 | 1.00× | 0.900 | 1.00 |",
        "| ours, default | 2.40 | 1.20× | 0.910 | 1.10 |",
        "| 1,000 | 10.0 | 0.0 | 0.30 | 375.0 | 0.30 | 300.0 | 300.0 / 300.0 | 0.80 | 0.20 | 500.0 | 0.00 | 500.0 | 0.0 | 70.0 MiB |",
        "![seconds against rows, log-log](docs/scaling.png)",
        "700 × 384, 300 × 1536 dimensions; 200 of them compressed payloads",
        "Each of our 3 runs copied every row and verified it",
    ] {
        assert!(md.contains(expected), "missing {expected:?} in\n{md}");
    }
}

#[test]
fn a_run_that_did_not_verify_is_called_out() {
    let mut r = results();
    r.scaling[0].ours.verification_passed = false;
    assert!(r
        .markdown()
        .contains("**1 of our 3 runs did not copy and verify every row**"));
}

#[test]
fn scaling_and_plot_absent() {
    let mut r = results();
    r.scaling.clear();
    r.plot = None;
    let md = r.markdown();
    assert!(md.contains("## Scaling\n\nNot run (no `--scaling`)."));
}

#[test]
fn a_debug_build_is_called_out() {
    let mut r = results();
    assert!(!r.markdown().contains("without `--release`"));
    r.optimized = false;
    assert!(r.markdown().contains("built without `--release`"));
}

#[test]
fn thousands_separators() {
    assert_eq!(thousands(0.0), "0");
    assert_eq!(thousands(999.4), "999");
    assert_eq!(thousands(1000.0), "1,000");
    assert_eq!(thousands(1_234_567.0), "1,234,567");
}
