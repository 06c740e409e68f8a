//! The database and token come from `--db` / `--auth-token`, else from the
//! environment, in the order of `migrate_embeddings_cli::args::DB_ENV`.

mod common;

use common::{assert_exit, cli, json, sample, text};

/// A `--format json` dry run with `env` set (and `args` added).
fn dry_run(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = cli();
    cmd.args(["--format", "json", "migrate-embeddings", "--dry-run"])
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn assert_ran(out: &std::process::Output) {
    assert_exit(out, 0);
    assert_eq!(json(out)["mode"], "dry_run");
}

fn assert_missing(out: &std::process::Output) {
    assert_exit(out, 1);
    assert!(
        text(&out.stderr).contains("missing.db"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn database_env_precedence() {
    let (dir, db) = sample(100, 0);
    let missing = dir.path().join("missing.db");
    let missing = missing.to_str().unwrap();

    assert_ran(&dry_run(&[("TURSO_URL", &db)], &[]));
    assert_ran(&dry_run(&[("TURSO_DB_URL", &db)], &[]));
    assert_ran(&dry_run(&[("TURSO_DATABASE_URL", &db)], &[]));

    assert_missing(&dry_run(
        &[("TURSO_DATABASE_URL", missing), ("TURSO_URL", &db)],
        &[],
    ));
    assert_missing(&dry_run(
        &[("TURSO_DB_URL", missing), ("TURSO_URL", &db)],
        &[],
    ));
    assert_missing(&dry_run(
        &[("TURSO_DATABASE_URL", missing), ("TURSO_DB_URL", &db)],
        &[],
    ));

    let all_missing = [
        ("TURSO_DATABASE_URL", missing),
        ("TURSO_DB_URL", missing),
        ("TURSO_URL", missing),
    ];
    assert_ran(&dry_run(&all_missing, &["--db", &db]));
    assert!(!dir.path().join("missing.db").exists());

    // status reads the same variables.
    let out = cli()
        .args(["--format", "json", "migrate-embeddings", "status"])
        .env("TURSO_URL", &db)
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(json(&out)["state"], "not_started");
}

#[test]
fn token_env_names_are_accepted_for_a_local_file() {
    let (_dir, db) = sample(100, 0);
    assert_ran(&dry_run(
        &[("TURSO_URL", &db), ("TURSO_TOKEN", "t0ken")],
        &[],
    ));
    assert_ran(&dry_run(&[("TURSO_AUTH_TOKEN", "t0ken")], &["--db", &db]));
    assert_ran(&dry_run(&[], &["--db", &db, "--auth-token", "t0ken"]));
}

#[test]
fn no_database_anywhere_is_a_usage_error() {
    let out = dry_run(&[], &[]);
    assert_exit(&out, 2);
    assert!(
        text(&out.stderr).contains("TURSO_DATABASE_URL"),
        "{}",
        text(&out.stderr)
    );
}
