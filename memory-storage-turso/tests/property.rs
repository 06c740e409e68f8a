//! Property: for any legacy table — random dimensions, special floats, any
//! id, plain and compressed payloads, bad rows mixed in — a migration
//! copies every good row exactly, quarantines every bad one, verifies, and a
//! rollback (after a drop or not) leaves the legacy table byte for byte as
//! it was.

use memory_storage_turso::migration::{run_migration, MigrationOptions, NoopObserver};
use memory_storage_turso::sample::{
    encode_compressed, encode_compressed_raw, encode_json, insert_legacy_rows, vector_bytes,
    Compression, LegacyRow,
};
use proptest::prelude::*;
use test_support::*;

fn special_f32() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -1.0f32..1.0,
        1 => Just(-0.0f32),
        1 => Just(f32::from_bits(1)),
        1 => Just(-f32::from_bits(0x007f_ffff)),
        1 => Just(f32::MAX),
        1 => Just(-f32::MAX),
        1 => Just(f32::MIN_POSITIVE),
    ]
}

#[derive(Debug, Clone)]
enum Payload {
    Json,
    Compressed(Compression),
}

#[derive(Debug, Clone)]
enum Defect {
    None,
    OutOfRange,
    Null,
    Empty,
    DimensionOff,
    WrongSize,
}

#[derive(Debug, Clone)]
struct RowSpec {
    id: String,
    dim: usize,
    values: Vec<f32>,
    payload: Payload,
    defect: Defect,
    with_vector: bool,
}

fn row_spec() -> impl Strategy<Value = RowSpec> {
    let id = prop_oneof![
        "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        "(episode|pattern|embedding|unknown)_[0-9a-f]{8}",
        "[0-9a-f]{1,16}",
        "\\PC{1,12}",
    ];
    let dim =
        prop_oneof![4 => 1usize..8, 1 => Just(384usize), 1 => Just(768usize), 1 => Just(1024usize)];
    let payload = prop_oneof![
        2 => Just(Payload::Json),
        1 => Just(Payload::Compressed(Compression::Zstd)),
        1 => Just(Payload::Compressed(Compression::Lz4)),
        1 => Just(Payload::Compressed(Compression::Gzip)),
    ];
    let defect = prop_oneof![
        12 => Just(Defect::None),
        1 => Just(Defect::OutOfRange),
        1 => Just(Defect::Null),
        1 => Just(Defect::Empty),
        1 => Just(Defect::DimensionOff),
        1 => Just(Defect::WrongSize),
    ];
    (id, dim, payload, defect, any::<bool>(), any::<u64>()).prop_flat_map(
        |(id, dim, payload, defect, with_vector, _)| {
            proptest::collection::vec(special_f32(), dim).prop_map(move |values| RowSpec {
                id: id.clone(),
                dim,
                values,
                payload: payload.clone(),
                defect: defect.clone(),
                with_vector,
            })
        },
    )
}

fn legacy_row(spec: &RowSpec, n: usize) -> (LegacyRow, bool) {
    let good_data = match &spec.payload {
        Payload::Json => encode_json(&spec.values),
        Payload::Compressed(alg) => encode_compressed(*alg, &spec.values),
    };
    let mut dimension = spec.dim as i64;
    let (data, bad) = match spec.defect {
        Defect::None => (good_data, false),
        Defect::OutOfRange => ("[1e39, 0.5]".to_string(), true),
        Defect::Null => ("null".to_string(), true),
        Defect::Empty => ("[]".to_string(), true),
        Defect::DimensionOff => {
            dimension += 1;
            (good_data, true)
        }
        Defect::WrongSize => {
            let raw = vector_bytes(&spec.values);
            (encode_compressed_raw("zstd", raw.len() + 4, &raw), true)
        }
    };
    let row = LegacyRow {
        embedding_id: spec.id.clone(),
        item_id: format!("item-{n}"),
        item_type: ["episode", "pattern", "embedding", "unknown"][n % 4].to_string(),
        embedding_data: data,
        embedding_vector: (spec.with_vector && !bad).then(|| vector_bytes(&spec.values)),
        dimension,
        model: "local".to_string(),
        created_at: 1_700_000_000 + n as i64,
    };
    (row, bad)
}

async fn scenario(specs: Vec<RowSpec>, batch: usize, drop: bool) {
    let t = TestDb::empty().await;
    memory_storage_turso::sample::create_legacy_table(&t.conn, true)
        .await
        .unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let mut rows = Vec::new();
    let mut bad = Vec::new();
    for (n, spec) in specs.iter().enumerate() {
        if !seen.insert(spec.id.clone()) {
            continue;
        }
        let (row, is_bad) = legacy_row(spec, n);
        if is_bad {
            bad.push(row.embedding_id.clone());
        }
        rows.push(row);
    }
    insert_legacy_rows(&t.conn, &rows, true).await.unwrap();
    let before = read_table(&t.conn, "embeddings", true).await;
    let digest_before = memory_storage_turso::migration::digest(&t.conn, "embeddings")
        .await
        .unwrap();

    let report = run_migration(
        &t.conn,
        &MigrationOptions {
            batch_size: batch,
            build_vector_index: false,
            backup: drop,
            drop_old_table: drop,
            allow_quarantined: drop,
            ..Default::default()
        },
        &NoopObserver,
    )
    .await
    .unwrap();
    assert!(
        report.verification.as_ref().unwrap().passed,
        "{:?}",
        report.verification
    );
    assert_eq!(report.quarantined_count as usize, bad.len());
    if drop {
        // Check the targets against the backup, which holds the legacy rows.
        assert_eq!(
            read_table(&t.conn, "embeddings_backup", true).await.len(),
            before.len()
        );
        t.conn
            .execute("ALTER TABLE embeddings_backup RENAME TO embeddings", ())
            .await
            .unwrap();
        assert_migrated_exactly(&t.conn, &bad, true).await;
        t.conn
            .execute("ALTER TABLE embeddings RENAME TO embeddings_backup", ())
            .await
            .unwrap();
    } else {
        assert_migrated_exactly(&t.conn, &bad, true).await;
    }

    run_migration(
        &t.conn,
        &MigrationOptions {
            rollback: true,
            ..Default::default()
        },
        &NoopObserver,
    )
    .await
    .unwrap();
    let after = read_table(&t.conn, "embeddings", true).await;
    assert_eq!(after.len(), before.len());
    for (id, row) in &before {
        let other = &after[id];
        for (a, b) in row.iter().zip(other) {
            assert!(
                format!("{a:?}") == format!("{b:?}"),
                "row {id} changed: {a:?} vs {b:?}"
            );
        }
    }
    let digest_after = memory_storage_turso::migration::digest(&t.conn, "embeddings")
        .await
        .unwrap();
    assert_eq!(digest_before, digest_after);
    for table in TARGETS {
        if memory_storage_turso::schema::object_exists(&t.conn, table)
            .await
            .unwrap()
        {
            assert_eq!(count(&t.conn, table).await, 0, "{table} kept migrated rows");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn migrate_verify_rollback_round_trips(
        specs in proptest::collection::vec(row_spec(), 0..40),
        batch in 1usize..12,
        drop in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(scenario(specs, batch, drop));
    }
}
