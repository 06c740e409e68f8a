//! How `memory-cli` is called: usage errors, help, shell completions.

mod common;

use common::{assert_exit, cli, offered_flags, sample, text};

#[test]
fn usage_errors_exit_2() {
    let cases: [&[&str]; 6] = [
        &[],
        &["migrate-embeddings", "--db", "x.db"],
        &[
            "migrate-embeddings",
            "--db",
            "x.db",
            "--dry-run",
            "--execute",
        ],
        &[
            "migrate-embeddings",
            "--db",
            "x.db",
            "--execute",
            "--no-such-flag",
        ],
        &[
            "migrate-embeddings",
            "--db",
            "x.db",
            "--execute",
            "--batch-size",
            "0",
        ],
        &["no-such-command"],
    ];
    for args in cases {
        let out = cli().args(args).output().unwrap();
        assert_exit(&out, 2);
        assert!(!out.stderr.is_empty(), "{args:?}: nothing on stderr");
    }
    let out = cli()
        .args(["migrate-embeddings", "--db", "x.db"])
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("--dry-run, --execute, --verify or --rollback"),
        "{}",
        text(&out.stderr)
    );
    assert!(!std::path::Path::new("x.db").exists());
}

#[test]
fn every_help_has_examples_environment_and_exit_statuses() {
    for args in [
        &["--help"][..],
        &["migrate-embeddings", "--help"][..],
        &["migrate-embeddings", "status", "--help"][..],
    ] {
        let out = cli().args(args).output().unwrap();
        assert_exit(&out, 0);
        let help = text(&out.stdout);
        for needle in [
            "Examples:",
            "TURSO_DATABASE_URL",
            "TURSO_TOKEN",
            "Exit status: 0",
        ] {
            assert!(help.contains(needle), "{args:?} lacks {needle:?}:\n{help}");
        }
    }
    let out = cli().args(["completions", "--help"]).output().unwrap();
    assert_exit(&out, 0);
    assert!(text(&out.stdout).contains("Examples:"));
    let help = text(
        &cli()
            .args(["migrate-embeddings", "--help"])
            .output()
            .unwrap()
            .stdout,
    );
    assert!(
        help.contains("130") && help.contains("--no-vector-index"),
        "{help}"
    );
}

#[test]
fn completions_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = cli().args(["completions", shell]).output().unwrap();
        assert_exit(&out, 0);
        let script = text(&out.stdout);
        assert!(script.contains("migrate-embeddings"), "{shell}: {script}");
    }
    assert_exit(&cli().args(["completions", "tcsh"]).output().unwrap(), 2);
}

#[test]
fn status_help_offers_only_the_flags_status_uses() {
    let out = cli()
        .args(["migrate-embeddings", "status", "--help"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let help = text(&out.stdout);
    assert_eq!(
        offered_flags(&help),
        [
            "--auth-token",
            "--auth-token-file",
            "--db",
            "--format",
            "--help",
            "--log-file",
            "--quiet",
            "--verbose",
            "--version"
        ],
        "{help}"
    );
}

#[test]
fn a_usage_errors_suggestions_work_when_run() {
    let (_dir, db) = sample(120, 0);
    let out = cli()
        .args(["migrate-embeddings", "--db", &db])
        .output()
        .unwrap();
    assert_exit(&out, 2);
    let err = text(&out.stderr);
    let suggested: Vec<&str> = err
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| w.starts_with("--"))
        .collect();
    assert_eq!(
        suggested,
        [
            "--dry-run",
            "--execute",
            "--verify",
            "--rollback",
            "--status",
            "--demo"
        ],
        "{err}"
    );
    for flag in suggested {
        let args = match flag {
            "--demo" => vec!["migrate-embeddings", flag, "--demo-rows", "300"],
            // Off a terminal a rollback needs its confirmation.
            "--rollback" => vec!["migrate-embeddings", "--db", &db, flag, "--yes"],
            _ => vec!["migrate-embeddings", "--db", &db, flag],
        };
        let out = cli().args(&args).output().unwrap();
        assert_exit(&out, 0);
        if flag == "--demo" {
            let shown = text(&out.stdout);
            assert!(
                shown.contains("$ memory-cli migrate-embeddings --db ")
                    && shown.contains("quarantined rows make the run exit 3"),
                "{shown}"
            );
        }
    }
}
