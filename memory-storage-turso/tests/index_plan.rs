//! The index planner on real libSQL databases: a tiny table is searched
//! exactly and a large one through the index it picked, the store searches
//! each table the way the recorded plan says, and the recall check fails a
//! run whose index finds clearly fewer true neighbours than it must.

use libsql::Connection;
use memory_storage_turso::migration::report::{Candidate, Pick, RecallOutcome};
use memory_storage_turso::migration::{
    run_migration, DiscrepancyKind, Forced, IndexMode, IndexPlanning, IndexState, MigrationOptions,
    MigrationReport, NoopObserver,
};
use memory_storage_turso::sample::{
    create_legacy_table, encode_json, insert_legacy_rows, LegacyRow,
};
use memory_storage_turso::schema::{ScanBits, TargetTable, VectorIndexOptions};
use memory_storage_turso::search_plan::{self, TableSearch};
use memory_storage_turso::store::{EmbeddingStore, SearchMethod};
use test_support::*;

/// `n` vectors of `dim` dimensions around 16 random centres (as real
/// embeddings cluster by topic).
fn clustered(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng(seed);
    let centres: Vec<Vec<f32>> = (0..16)
        .map(|_| (0..dim).map(|_| rng.unit()).collect())
        .collect();
    (0..n)
        .map(|i| {
            let c = &centres[i % centres.len()];
            c.iter().map(|x| x + 0.6 * rng.unit()).collect()
        })
        .collect()
}

fn row(id: String, v: &[f32]) -> LegacyRow {
    LegacyRow {
        embedding_id: id.clone(),
        item_id: format!("item-{id}"),
        item_type: "episode".into(),
        embedding_data: encode_json(v),
        embedding_vector: None,
        dimension: v.len() as i64,
        model: "m".into(),
        created_at: 1_700_000_000,
    }
}

/// A legacy table of `large` clustered 384-dimension rows and `tiny`
/// 1024-dimension ones.
async fn legacy(t: &TestDb, large: usize, tiny: usize) {
    create_legacy_table(&t.conn, false).await.unwrap();
    let mut rows: Vec<LegacyRow> = clustered(large, 384, 1)
        .iter()
        .enumerate()
        .map(|(i, v)| row(format!("a{i:05}"), v))
        .collect();
    rows.extend(
        clustered(tiny, 1024, 2)
            .iter()
            .enumerate()
            .map(|(i, v)| row(format!("b{i:05}"), v)),
    );
    for chunk in rows.chunks(500) {
        insert_legacy_rows(&t.conn, chunk, false).await.unwrap();
    }
}

/// Planned, with targets a 1,500-row table cannot meet without an index
/// (a search within 1 ms) and small samples, so the test stays quick.
fn planned() -> IndexPlanning {
    IndexPlanning {
        mode: IndexMode::Planned,
        target_recall: 0.9,
        max_query_ms: 1.0,
        sample_rows: Some(240),
        ..Default::default()
    }
}

fn options(dry_run: bool, index: IndexPlanning) -> MigrationOptions {
    MigrationOptions {
        dry_run,
        batch_size: 500,
        index,
        ..Default::default()
    }
}

async fn run(conn: &Connection, options: MigrationOptions) -> MigrationReport {
    run_migration(conn, &options, &NoopObserver).await.unwrap()
}

fn state(report: &MigrationReport, table: &str) -> IndexState {
    report
        .vector_indexes
        .iter()
        .find(|i| i.table == table)
        .unwrap_or_else(|| panic!("no index status of {table}: {:?}", report.vector_indexes))
        .status
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tiny_table_is_searched_exactly_a_large_one_through_the_index_picked_for_it() {
    let t = TestDb::empty().await;
    legacy(&t, 1500, 30).await;
    // DiskANN only: the scan index would be the pick here (see below).
    let planned = || IndexPlanning {
        scan_index: false,
        ..planned()
    };

    let dry = run(&t.conn, options(true, planned())).await;
    let plan = dry
        .index_plan
        .clone()
        .expect("the dry run plans the indexes");
    let of = |name: &str| plan.tables.iter().find(|p| p.table == name).unwrap();
    assert!(
        matches!(of("embeddings_1024").pick, Pick::Exact { .. }),
        "{:?}",
        of("embeddings_1024")
    );
    let large = of("embeddings_384");
    let Pick::Index { candidate, .. } = large.pick else {
        panic!("the large table gets an index: {large:?}");
    };
    let picked = &large.candidates[candidate];
    assert!(
        large.default_candidate.is_some(),
        "the defaults are shown beside"
    );
    // Two sample sizes, then the pick again at the larger, validating one.
    assert_eq!(picked.measured.len(), 3, "measured at three sizes");
    assert!(picked.measured[0].rows < picked.measured[1].rows);
    assert!(picked.measured[1].rows < picked.measured[2].rows);
    assert!(picked.predicted.build_seconds > 0.0 && picked.predicted.index_bytes > 0);
    // A pick whose recall meets the target was measured again on whole
    // neighbourhoods of the table (the dry run read every row), about as
    // many rows as the validating size, and its recall is at most theirs
    // (give or take 0.03, the noise of two measures).
    assert!(picked.predicted.recall >= 0.9, "{picked:?}");
    let near = picked
        .neighbourhoods
        .as_ref()
        .unwrap_or_else(|| panic!("no neighbourhoods measured: {picked:?}"));
    assert!(near.rows * 2 >= picked.measured[2].rows, "{picked:?}");
    assert!(picked.predicted.recall <= near.recall + 0.03, "{picked:?}");
    // The report carries it under `index_plan`.
    let json = serde_json::to_value(&dry).unwrap();
    assert!(json["index_plan"]["tables"].is_array(), "{json:#}");

    let done = run(&t.conn, options(false, planned())).await;
    assert_eq!(state(&done, "embeddings_1024"), IndexState::Exact);
    // The run planned again from the copied rows, its neighbourhoods found
    // by a scan of the table.
    let again = done.index_plan.as_ref().expect("the run plans");
    let large = again
        .tables
        .iter()
        .find(|p| p.table == "embeddings_384")
        .unwrap();
    let Pick::Index { candidate, .. } = large.pick else {
        panic!("{large:?}");
    };
    assert!(
        large.candidates[candidate].neighbourhoods.is_some(),
        "{large:?}"
    );
    // The built index was measured, and what it measured is recorded.
    let [measured] = &done.built_recall[..] else {
        panic!("one index built to the plan: {:?}", done.built_recall);
    };
    assert_eq!(measured.table, "embeddings_384");
    let recorded = search_plan::read(&t.conn).await.unwrap();
    assert_eq!(recorded[&TargetTable::D1024], TableSearch::Exact);
    assert_migrated_exactly(&t.conn, &[], false).await;
    let store = EmbeddingStore::open(t.conn.clone()).await.unwrap();
    assert_eq!(store.search_method(1024).await.unwrap(), SearchMethod::Scan);
    // A DiskANN build is random: now and then one finds clearly fewer true
    // neighbours than its plan predicted (0.78 against at least 0.9, once
    // in CI on a loaded machine; nine runs alone all met it). What the run
    // does then is `built_recall`'s tests'; here it must have said so,
    // consistently.
    if measured.outcome != RecallOutcome::Met {
        assert!(measured.measured_recall < 0.9 - 0.03, "{measured:?}");
        let index_kept = measured.outcome == RecallOutcome::BelowTarget;
        assert_eq!(
            state(&done, "embeddings_384") == IndexState::Built,
            index_kept
        );
        return;
    }
    assert!(
        done.verification.as_ref().unwrap().passed,
        "{:?}",
        done.verification
    );
    assert_eq!(state(&done, "embeddings_384"), IndexState::Built);
    assert!(
        matches!(
            recorded[&TargetTable::D384],
            TableSearch::Index { measured_recall: Some(r), .. } if r == measured.measured_recall
        ),
        "{recorded:?}"
    );
    let check = done
        .search_checks
        .iter()
        .find(|c| c.table == "embeddings_384")
        .unwrap();
    assert!(check.passed() && check.recall >= 0.8, "{check:?}");
    assert!(matches!(
        store.search_method(384).await.unwrap(),
        SearchMethod::VectorIndex(_)
    ));
}

/// The embedding_ids `store` finds for `query`.
async fn found(store: &EmbeddingStore, query: &[f32]) -> Vec<String> {
    store
        .find_similar(query, None, 10, None)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.embedding.embedding_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_plan_measures_a_scan_index_whose_search_grows_with_the_rows() {
    let t = TestDb::empty().await;
    legacy(&t, 1500, 0).await;
    let dry = run(&t.conn, options(true, planned())).await;
    let plan = dry.index_plan.as_ref().expect("the dry run plans");
    let large = plan
        .tables
        .iter()
        .find(|p| p.table == "embeddings_384")
        .unwrap();
    let of = |bits: ScanBits| -> Vec<_> {
        large
            .candidates
            .iter()
            .filter(|c| c.options == bits.options())
            .collect()
    };
    let overfetches =
        |bits| -> Vec<u32> { of(bits).iter().map(|c| c.overfetch).collect::<Vec<_>>() };
    assert_eq!(overfetches(ScanBits::Float8), [4, 8, 16]);
    assert_eq!(overfetches(ScanBits::Float1Bit), [8, 16, 32, 64, 128, 256]);
    let cheapest_diskann = large
        .candidates
        .iter()
        .filter(|c| ScanBits::from_options(&c.options).is_none())
        .map(|c| c.predicted.build_seconds)
        .fold(f64::INFINITY, f64::min);
    // One byte a dimension (8 bits) or one bit, and the key and rowid
    // beside it.
    for (bits, bytes) in [
        (ScanBits::Float8, 384.0..1_000.0),
        (ScanBits::Float1Bit, 48.0..200.0),
    ] {
        for c in of(bits) {
            let per_row = c.predicted.index_bytes as f64 / 1500.0;
            assert!(bytes.contains(&per_row), "{c:?}");
        }
    }
    for c in of(ScanBits::Float8)
        .into_iter()
        .chain(of(ScanBits::Float1Bit))
    {
        // At the two sample sizes and, first of all, at the validating
        // one: it costs next to nothing there.
        assert_eq!(c.measured.len(), 3, "{c:?}");
        // There its recall is of the nearest √(sample ÷ table) of the
        // candidates (a true neighbour falls further down the quantized
        // order among more rows); at the two small sizes, of all of them.
        let fetch = 10 * c.overfetch as usize;
        let third = &c.measured[2];
        let scaled = ((fetch as f64 * (third.rows as f64 / 1500.0).sqrt()).round() as usize)
            .clamp(10, fetch);
        assert!(third.rows < 1500, "{c:?}");
        assert_eq!(
            third.reranked,
            (scaled < fetch).then_some(scaled as u32),
            "{c:?}"
        );
        assert_eq!(
            (c.measured[0].reranked, c.measured[1].reranked),
            (None, None)
        );
        // And on whole neighbourhoods of the table (the dry run read
        // every row): a scan ranks every row, and more crowd a query at
        // the table's density than in a sample.
        let near = c
            .neighbourhoods
            .as_ref()
            .expect("measured on neighbourhoods");
        assert!(
            c.predicted.recall <= c.measured[2].recall.min(c.measured[1].recall),
            "{c:?}"
        );
        assert!(near.rows > 0, "{c:?}");
        assert!(c.predicted.build_seconds > 0.0, "{c:?}");
        assert!(c.predicted.build_seconds < cheapest_diskann, "{c:?}");
        // A search reads every row's quantized vector: its latency grows
        // with the rows, from the largest sample on the slope of the same
        // scan's smallest over-fetch between its two largest samples (a
        // larger over-fetch's own line climbs with its re-ranking too),
        // or in proportion to the largest, where that line would start
        // below 0.
        let largest_two = |c: &Candidate| {
            let mut sizes: Vec<_> = c.measured.to_vec();
            sizes.sort_by_key(|m| m.rows);
            let [.., small, large] = &sizes[..] else {
                unreachable!()
            };
            (small.clone(), large.clone())
        };
        let narrowest = of(ScanBits::from_options(&c.options).unwrap())
            .into_iter()
            .min_by_key(|n| n.overfetch)
            .unwrap();
        let (small, large) = largest_two(narrowest);
        let slope = ((large.query_ms - small.query_ms) / (large.rows - small.rows) as f64).max(0.0);
        let (_, large) = largest_two(c);
        let fixed = large.query_ms - slope * large.rows as f64;
        let expected = if fixed >= 0.0 {
            fixed + slope * 1500.0
        } else {
            large.query_ms * 1500.0 / large.rows as f64
        };
        assert!((c.predicted.query_ms - expected).abs() < 1e-9, "{c:?}");
        assert!(c.predicted.query_ms >= large.query_ms * 0.999, "{c:?}");
    }
}

/// Where a scan index meets both targets, no DiskANN setting can cost
/// less to build: only libSQL's defaults are measured (their cost is shown
/// beside the pick), the other four settings not at all.
///
/// Whether a scan meets a latency target is timed, and at these sizes the
/// plan's prediction of a scan swings between runs (0.5 ms and 2.3 ms for
/// the same table in two runs of one process, beside a busy core): so the
/// second run aims between the scan and an exact search, and whatever it
/// picks, what it measured must follow from the pick. It picks the scan in
/// most runs alone on this machine, not in every one.
#[tokio::test(flavor = "multi_thread")]
async fn where_a_scan_meets_both_targets_no_other_diskann_setting_is_built() {
    let t = TestDb::empty().await;
    legacy(&t, 1500, 0).await;
    let table = |r: &MigrationReport| {
        r.index_plan
            .as_ref()
            .unwrap()
            .tables
            .iter()
            .find(|p| p.table == "embeddings_384")
            .unwrap()
            .clone()
    };
    let settings = |p: &memory_storage_turso::migration::report::TablePlan| {
        let mut o: Vec<String> = p.candidates.iter().map(|c| c.options.clone()).collect();
        o.dedup();
        o
    };
    // A latency target nothing meets: every setting is measured.
    let none_meets = IndexPlanning {
        max_query_ms: 0.01,
        ..planned()
    };
    let every = table(&run(&t.conn, options(true, none_meets)).await);
    assert_eq!(settings(&every).len(), 7, "{:?}", settings(&every));
    let exact_ms = every.exact_ms_per_row * 1500.0;
    let scan_ms = every
        .candidates
        .iter()
        .filter(|c| ScanBits::from_options(&c.options).is_some())
        .filter(|c| c.predicted.recall >= 0.9)
        .map(|c| c.predicted.query_ms)
        .fold(f64::INFINITY, f64::min);
    let between = IndexPlanning {
        max_query_ms: (exact_ms * scan_ms).sqrt(),
        ..planned()
    };
    let picked = table(&run(&t.conn, options(true, between)).await);
    let measured = settings(&picked);
    match picked.pick {
        Pick::Exact { .. } => assert!(measured.is_empty(), "{measured:?}"),
        Pick::Index {
            candidate,
            meets_targets: true,
        } if ScanBits::from_options(&picked.candidates[candidate].options).is_some() => {
            assert_eq!(
                measured,
                ["", "scan", "scan1bit"],
                "libSQL's defaults and the scans only"
            );
            assert!(picked.default_candidate.is_some());
        }
        _ => assert_eq!(measured.len(), 7, "{:?}: {measured:?}", picked.pick),
    }
}

/// 1,500 rows of 384 dimensions copied without their vector index, and a
/// plan recorded for them that picked a scan index of `bits` with
/// `overfetch` (planned recall 0.97), as a run that stopped after its plan
/// leaves them: the next run builds and measures what the plan says.
async fn copied_and_planned(bits: ScanBits, overfetch: u32) -> TestDb {
    let t = TestDb::empty().await;
    legacy(&t, 1500, 0).await;
    let copy_only = MigrationOptions {
        build_vector_index: false,
        ..options(false, planned())
    };
    run(&t.conn, copy_only).await;
    let mut recorded = search_plan::read(&t.conn).await.unwrap();
    recorded.insert(
        TargetTable::D384,
        TableSearch::Scan {
            overfetch,
            bits,
            planned_recall: Some(0.97),
            measured_recall: None,
        },
    );
    search_plan::write(&t.conn, &recorded).await.unwrap();
    t
}

/// The plan recorded for `embeddings_384` is the scan of `bits` with
/// `overfetch`, planned at `planned` and measured at `measured`, and the
/// store searches the table through `index`.
async fn assert_searched_through_scan(
    conn: &Connection,
    index: &'static str,
    bits: ScanBits,
    overfetch: u32,
    planned: f64,
    measured: f64,
) {
    let recorded = search_plan::read(conn).await.unwrap();
    assert_eq!(
        recorded[&TargetTable::D384],
        TableSearch::Scan {
            overfetch,
            bits,
            planned_recall: Some(planned),
            measured_recall: Some(measured),
        }
    );
    let store = EmbeddingStore::open(conn.clone()).await.unwrap();
    assert_eq!(
        store.search_method(384).await.unwrap(),
        SearchMethod::ScanIndex(index)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_planned_for_a_scan_index_gets_one_measured_and_the_store_searches_through_it() {
    // A plan that picked the scan index (as the previous test's would,
    // with a latency target between its search and an exact one: both
    // grow with the rows, at a ratio timing alone decides), recorded:
    // the run keeps a recorded plan.
    let t = copied_and_planned(ScanBits::Float8, 4).await;
    let done = run(&t.conn, options(false, planned())).await;
    // Not planned again.
    assert!(
        done.index_plan
            .as_ref()
            .is_none_or(|p| p.tables.iter().all(|t| t.table != "embeddings_384")),
        "{:?}",
        done.index_plan
    );
    let status = done
        .vector_indexes
        .iter()
        .find(|i| i.table == "embeddings_384")
        .unwrap();
    assert_eq!(status.index, "idx_embeddings_384_scan");
    assert_eq!(status.status, IndexState::Built);
    let [measured] = &done.built_recall[..] else {
        panic!("the scan index was measured: {:?}", done.built_recall);
    };
    assert_eq!(measured.options, ScanBits::Float8.options());
    assert_eq!(measured.outcome, RecallOutcome::Met, "{measured:?}");
    assert_searched_through_scan(
        &t.conn,
        "idx_embeddings_384_scan",
        ScanBits::Float8,
        4,
        0.97,
        measured.measured_recall,
    )
    .await;
    let check = done
        .search_checks
        .iter()
        .find(|c| c.table == "embeddings_384")
        .expect("the search check covers the scan index");
    assert!(
        check.passed() && check.found_first == check.sampled,
        "{check:?}"
    );
    assert!(done.verification.as_ref().unwrap().passed);
    assert_migrated_exactly(&t.conn, &[], false).await;
    let status = memory_storage_turso::migration::status(&t.conn)
        .await
        .unwrap();
    assert_eq!(status.scan_indexes.get("embeddings_384"), Some(&true));
    assert_eq!(status.vector_indexes.get("embeddings_384"), Some(&false));

    // The store searches through it, and finds what an exact search finds.
    let store = EmbeddingStore::open(t.conn.clone()).await.unwrap();
    let queries: Vec<Vec<f32>> = clustered(40, 384, 9);
    let mut through_scan = Vec::new();
    for q in &queries {
        through_scan.push(found(&store, q).await);
    }
    let mut exact = search_plan::read(&t.conn).await.unwrap();
    exact.insert(TargetTable::D384, TableSearch::Exact);
    search_plan::write(&t.conn, &exact).await.unwrap();
    assert_eq!(store.search_method(384).await.unwrap(), SearchMethod::Scan);
    let mut same = 0;
    for (q, scanned) in queries.iter().zip(&through_scan) {
        let truth = found(&store, q).await;
        same += truth.iter().filter(|id| scanned.contains(id)).count();
    }
    let recall = same as f64 / (10 * queries.len()) as f64;
    assert!(recall >= 0.9, "{recall}");
}

/// A scan index finds more of the true neighbours with more candidates,
/// and nothing is rebuilt to ask for them: one short of the target on its
/// own table is searched with a larger over-fetch, as measured there.
#[tokio::test(flavor = "multi_thread")]
async fn a_scan_index_short_of_its_target_is_searched_with_a_larger_overfetch() {
    // 40 candidates for ten hits by 1-bit distance: too few (0.75 of the
    // true ten found here).
    let t = copied_and_planned(ScanBits::Float1Bit, 4).await;
    let index = IndexPlanning {
        max_query_ms: 50.0,
        ..planned()
    };
    let done = run(&t.conn, options(false, index)).await;
    let [measured] = &done.built_recall[..] else {
        panic!("the scan index was measured: {:?}", done.built_recall);
    };
    assert_eq!(
        state(&done, "embeddings_384"),
        IndexState::Built,
        "{measured:?}"
    );
    assert_eq!(measured.options, "scan1bit");
    assert_eq!(measured.planned_overfetch, 4);
    assert!([8, 16, 32].contains(&measured.overfetch), "{measured:?}");
    assert_eq!(measured.outcome, RecallOutcome::Met, "{measured:?}");
    assert_searched_through_scan(
        &t.conn,
        "idx_embeddings_384_scan1bit",
        ScanBits::Float1Bit,
        measured.overfetch,
        0.97,
        measured.measured_recall,
    )
    .await;
    assert!(done.verification.as_ref().unwrap().passed);
}

/// A 1-bit scan clearly short of its target, where neither more
/// candidates (every search is past the latency allowed) nor an exact
/// search (as slow) will do, gives way to the 8-bit scan: the 1-bit index
/// dropped, the 8-bit one built, measured and recorded, and the store
/// searches through it.
#[tokio::test(flavor = "multi_thread")]
async fn a_1_bit_scan_short_of_its_target_gives_way_to_the_8_bit_scan() {
    let t = copied_and_planned(ScanBits::Float1Bit, 4).await;
    let index = IndexPlanning {
        max_query_ms: 0.01,
        ..planned()
    };
    let done = run(&t.conn, options(false, index)).await;
    let [short, finer] = &done.built_recall[..] else {
        panic!("two measures: {:?}", done.built_recall);
    };
    assert_eq!(short.options, "scan1bit");
    assert_eq!(short.overfetch, 4, "{short:?}");
    assert_eq!(short.outcome, RecallOutcome::GaveWay, "{short:?}");
    assert_eq!(finer.table, "embeddings_384");
    assert_eq!(finer.options, ScanBits::Float8.options());
    assert_eq!(finer.outcome, RecallOutcome::Met, "{finer:?}");
    assert!(finer.measured_recall > short.measured_recall, "{finer:?}");
    let status = done
        .vector_indexes
        .iter()
        .find(|i| i.table == "embeddings_384")
        .unwrap();
    assert_eq!(status.index, "idx_embeddings_384_scan");
    assert_eq!(status.status, IndexState::Built);
    assert!(!table_exists(&t.conn, "idx_embeddings_384_scan1bit").await);
    assert!(table_exists(&t.conn, "idx_embeddings_384_scan").await);
    assert_searched_through_scan(
        &t.conn,
        "idx_embeddings_384_scan",
        ScanBits::Float8,
        4,
        0.9,
        finer.measured_recall,
    )
    .await;
    assert!(done.verification.as_ref().unwrap().passed);
    assert_migrated_exactly(&t.conn, &[], false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_users_object_with_the_scan_index_name_is_left_and_its_table_searched_exactly() {
    for bits in ScanBits::ALL {
        users_object_with_the_scan_index_name(bits).await;
    }
}

async fn users_object_with_the_scan_index_name(bits: ScanBits) {
    let name = TargetTable::D384.scan_index_name(bits).unwrap();
    let t = TestDb::empty().await;
    legacy(&t, 300, 0).await;
    t.conn
        .execute_batch(&format!(
            "CREATE TABLE {name} (note TEXT);
             INSERT INTO {name} VALUES ('mine');"
        ))
        .await
        .unwrap();
    let mut index = planned();
    index.forced.insert(TargetTable::D384, Forced::Scan(bits));
    let done = run(&t.conn, options(false, index.clone())).await;
    assert_eq!(
        state(&done, "embeddings_384"),
        IndexState::NameTaken,
        "{name}"
    );
    assert!(done.verification.as_ref().unwrap().passed);
    let recorded = search_plan::read(&t.conn).await.unwrap();
    assert_eq!(recorded[&TargetTable::D384], TableSearch::Exact);
    let store = EmbeddingStore::open(t.conn.clone()).await.unwrap();
    assert_eq!(store.search_method(384).await.unwrap(), SearchMethod::Scan);
    let query = clustered(300, 384, 1)[17].clone();
    assert_eq!(found(&store, &query).await[0], "a00017");
    // A run again changes nothing, and a rollback leaves the user's table.
    let again = run(&t.conn, options(false, index)).await;
    assert_eq!(state(&again, "embeddings_384"), IndexState::NameTaken);
    let rollback = MigrationOptions {
        rollback: true,
        ..options(false, planned())
    };
    run(&t.conn, rollback).await;
    let mut rows = t
        .conn
        .query(&format!("SELECT note FROM {name}"), ())
        .await
        .unwrap();
    let row = rows.next().await.unwrap().expect("the user's row");
    assert_eq!(row.get::<String>(0).unwrap(), "mine");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_searches_each_table_as_the_recorded_plan_says() {
    let t = TestDb::empty().await;
    legacy(&t, 400, 0).await;
    let fixed = IndexPlanning::default();
    let done = run(&t.conn, options(false, fixed)).await;
    assert_eq!(state(&done, "embeddings_384"), IndexState::Built);
    let store = EmbeddingStore::open(t.conn.clone()).await.unwrap();
    assert!(matches!(
        store.search_method(384).await.unwrap(),
        SearchMethod::VectorIndex(_)
    ));
    let query = clustered(400, 384, 1)[17].clone();
    let through_index = store.find_similar(&query, None, 5, None).await.unwrap();
    assert_eq!(through_index[0].embedding.embedding_id, "a00017");

    // The plan says exact: the index stays, the store scans.
    let mut plan = search_plan::read(&t.conn).await.unwrap();
    plan.insert(TargetTable::D384, TableSearch::Exact);
    search_plan::write(&t.conn, &plan).await.unwrap();
    assert_eq!(store.search_method(384).await.unwrap(), SearchMethod::Scan);
    let exact = store.find_similar(&query, None, 5, None).await.unwrap();
    let ids = |h: &[memory_storage_turso::store::SimilarEmbedding]| {
        h.iter()
            .map(|h| h.embedding.embedding_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&exact)[0], "a00017");
    assert_eq!(
        ids(&exact),
        ids(&through_index),
        "the same neighbours either way"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recall_check_fails_an_index_far_below_its_target() {
    let t = TestDb::empty().await;
    legacy(&t, 1500, 0).await;
    let poor = VectorIndexOptions::parse("compress_neighbors=float1bit,max_neighbors=2").unwrap();
    let mut index = planned();
    index.target_recall = 0.95;
    index
        .forced
        .insert(TargetTable::D384, Forced::Options(poor));
    let done = run(&t.conn, options(false, index)).await;
    let check = done
        .search_checks
        .iter()
        .find(|c| c.table == "embeddings_384")
        .unwrap();
    assert!(!check.passed(), "{check:?}");
    assert!(check.recall < 0.85, "{check:?}");
    let v = done.verification.unwrap();
    assert!(!v.passed);
    assert!(
        v.discrepancies
            .iter()
            .any(|d| d.kind == DiscrepancyKind::Search),
        "{:?}",
        v.discrepancies
    );
    // The rows themselves are all there, bit for bit.
    assert_migrated_exactly(&t.conn, &[], false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_that_builds_no_vector_index_plans_none() {
    let t = TestDb::empty().await;
    legacy(&t, 300, 0).await;
    let mut without = options(true, planned());
    without.build_vector_index = false;
    let dry = run(&t.conn, without).await;
    assert!(dry.index_plan.is_none(), "{:?}", dry.index_plan);
    assert_eq!(dry.planned.as_ref().unwrap()["embeddings_384"], 300);
    // The same dry run with the indexes plans them.
    let dry = run(&t.conn, options(true, planned())).await;
    assert!(dry.index_plan.is_some());
}

/// Asks the run to stop once the index plan has been asked `after` times
/// whether to (each before a build of the plan's).
struct StopInPlan {
    planning: std::sync::atomic::AtomicBool,
    asked: std::sync::atomic::AtomicU32,
    after: u32,
}

impl StopInPlan {
    fn after(after: u32) -> Self {
        StopInPlan {
            planning: false.into(),
            asked: 0.into(),
            after,
        }
    }
}

impl memory_storage_turso::migration::Observer for StopInPlan {
    fn phase_started(&self, phase: memory_storage_turso::migration::Phase, _total: u64) {
        use std::sync::atomic::Ordering;
        let planning = phase == memory_storage_turso::migration::Phase::IndexPlan;
        self.planning.store(planning, Ordering::SeqCst);
    }
    fn stop_requested(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.planning.load(Ordering::SeqCst)
            && self.asked.fetch_add(1, Ordering::SeqCst) + 1 > self.after
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_stopped_during_the_index_plan_records_no_plan_and_the_next_run_plans_again() {
    let t = TestDb::empty().await;
    legacy(&t, 1500, 0).await;
    // A dry run: no plan, and it says it was stopped.
    let stopping = StopInPlan::after(1);
    let dry = run_migration(&t.conn, &options(true, planned()), &stopping)
        .await
        .unwrap();
    assert!(dry.interrupted);
    assert!(dry.index_plan.is_none(), "{:?}", dry.index_plan);
    assert!(
        stopping.asked.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "the plan never asked again after its first build"
    );
    // An execute: the rows are copied, the plan is neither made nor
    // recorded, no index is built.
    let stopped = run_migration(&t.conn, &options(false, planned()), &StopInPlan::after(1))
        .await
        .unwrap();
    assert!(stopped.interrupted);
    assert!(stopped.index_plan.is_none());
    assert!(
        stopped.vector_indexes.is_empty(),
        "{:?}",
        stopped.vector_indexes
    );
    assert!(search_plan::read(&t.conn).await.unwrap().is_empty());
    // The next run plans, builds and verifies.
    let done = run(&t.conn, options(false, planned())).await;
    assert!(!done.interrupted);
    assert!(done.index_plan.is_some());
    assert!(done.verification.unwrap().passed);
    assert_migrated_exactly(&t.conn, &[], false).await;
}
