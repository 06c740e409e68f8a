//! `memory-cli migrate-embeddings status`: where a migration stands, read
//! without changing a byte.

mod common;

use common::{assert_exit, cli, expected_status, json, sample, text};

#[test]
fn status_before_and_after_execute_changes_nothing() {
    let (_dir, db) = sample(200, 0);

    let before = std::fs::read(&db).unwrap();
    let out = cli()
        .args(["migrate-embeddings", "status", "--db", &db])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains("not started"),
        "{}",
        text(&out.stdout)
    );
    let out = cli()
        .args([
            "--format",
            "json",
            "migrate-embeddings",
            "--db",
            &db,
            "status",
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert_eq!(json(&out)["state"], "not_started");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "status wrote to the database"
    );

    let out = cli()
        .args([
            "migrate-embeddings",
            "--db",
            &db,
            "--execute",
            "--no-vector-index",
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0);

    let after = std::fs::read(&db).unwrap();
    let out = cli()
        .args(["migrate-embeddings", "status", "--db", &db])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(
        text(&out.stdout).contains("completed"),
        "{}",
        text(&out.stdout)
    );
    let out = cli()
        .args([
            "migrate-embeddings",
            "status",
            "--db",
            &db,
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let status = json(&out);
    assert_eq!(status["state"], "completed", "{status}");
    assert_eq!(status["rows_left"], 0, "{status}");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        after,
        "status wrote to the database"
    );
}

#[test]
fn status_of_a_missing_database_exits_1_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    let out = cli()
        .args([
            "migrate-embeddings",
            "status",
            "--db",
            path.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_exit(&out, 1);
    assert!(
        text(&out.stderr).contains("missing.db"),
        "{}",
        text(&out.stderr)
    );
    assert!(!path.exists());
}

#[test]
fn status_and_dash_dash_status_print_the_same_as_migrate_embeddings() {
    let (_dir, db) = sample(300, 5);
    let spellings: [&[&str]; 3] = [
        &["migrate-embeddings", "--db", &db, "--status"],
        &["migrate-embeddings", "status", "--db", &db],
        &["migrate-embeddings", "--db", &db, "status"],
    ];
    // `migrate_embeddings`'s tests compare its output with the same
    // rendering of the library's status.
    let (human, _) = expected_status(&db);
    assert!(human.contains("not started"), "{human}");
    for args in spellings {
        let out = cli().args(args).output().unwrap();
        assert_exit(&out, 0);
        assert_eq!(text(&out.stdout), human, "{args:?}");
    }

    let out = cli()
        .args([
            "migrate-embeddings",
            "--db",
            &db,
            "--execute",
            "--no-vector-index",
            "-q",
        ])
        .output()
        .unwrap();
    assert_exit(&out, 3);
    // JSON after a run: the human summary says "… s ago", which moves.
    let (_, expected) = expected_status(&db);
    assert_eq!(expected["quarantined"], 5, "{expected:#}");
    for args in spellings {
        let out = cli()
            .args(args)
            .args(["--format", "json"])
            .output()
            .unwrap();
        assert_exit(&out, 0);
        assert_eq!(json(&out), expected, "{args:?}");
    }
}
