//! The index planner: for each native table, candidate DiskANN settings
//! measured on a sample of the user's own vectors at two sizes, predicted
//! at the table's size ([`fit`]), and the cheapest that meets the recall
//! and latency targets picked — or no index at all where an exact search
//! is fast enough. Run by the dry run (from the rows it reads) and before
//! the index phase (from the rows copied).

mod fit;
mod measure;
mod neighbourhoods;
mod sample;

use std::collections::BTreeMap;

pub(crate) use fit::EXACT_FALLBACK;
pub(crate) use neighbourhoods::{Neighbourhoods, SEEDS};
pub(crate) use sample::{sample_table, Reservoir};

/// Vectors kept per table: the validating size and the held-out queries.
pub(crate) fn reservoir_size(planning: &IndexPlanning, dimension: usize) -> usize {
    planning
        .sample_rows
        .unwrap_or(default_sample_rows(dimension))
        * VALIDATE_FACTOR
        + QUERIES
}

use super::error::Result;
use super::observer::{Observer, Phase};
use super::report::{Candidate, IndexPlan, Measured, Pick, TablePlan};
use crate::schema::{NeighborCompression, ScanBits, TargetTable, VectorIndexOptions};
use crate::search_plan::TableSearch;

/// How the vector indexes are chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexMode {
    /// The same options on every native table (`vector_index` of the
    /// options; libSQL's defaults unless set), not measured.
    Fixed,
    /// Measured on the user's rows and picked per table.
    Planned,
}

/// A table's choice forced by `--index-options TABLE=OPTS`.
#[derive(Debug, Clone, PartialEq)]
pub enum Forced {
    /// No index: the table is searched exactly.
    Exact,
    Options(VectorIndexOptions),
    /// The quantized scan index of these bits, with
    /// [`forced_scan_overfetch`].
    Scan(ScanBits),
}

/// The over-fetch of a scan index forced without measurement. 8 bits: on
/// the benchmark's clustered rows, 40 candidates found 0.967 of the true
/// neighbours at 1,536 dimensions and all of them at 384 and 3,072. One
/// bit: on 100,000 clustered rows, 320 candidates found 0.995 of them
/// on the 70,000 rows of 384 dimensions (160: 0.840), and all of them at
/// 1,024, 1,536 and 3,072 dimensions (`docs/index-plan.md`).
pub(crate) fn forced_scan_overfetch(bits: ScanBits) -> u32 {
    match bits {
        ScanBits::Float8 => 4,
        ScanBits::Float1Bit => 32,
    }
}

/// What the planner aims at.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexPlanning {
    pub mode: IndexMode,
    /// recall@10 a pick must reach (default 0.95).
    pub target_recall: f64,
    /// Milliseconds a search of 10 may take (default 50).
    pub max_query_ms: f64,
    /// Vectors sampled per table at most (the larger measured size); by
    /// dimension when `None`.
    pub sample_rows: Option<usize>,
    pub forced: BTreeMap<TargetTable, Forced>,
    /// Whether the quantized scan index is a candidate (default true). Its
    /// latency grows with the rows: a table that will grow far past its
    /// size now may want DiskANN, whose latency does not.
    pub scan_index: bool,
    /// Bytes per second an index build reads its table from the disk at,
    /// where the table will not be in the page cache (measured by the run
    /// on a large local file: [`super::page_cache::LocalFile::cold_read_rate`]);
    /// `None`: cached, as the plan's scratch builds are.
    pub cold_read_rate: Option<f64>,
    /// Rows × dimensions past which an online run builds a table's scan
    /// index in batches beside it rather than in one statement that holds
    /// the write lock while it sorts the whole table. `None`: past
    /// 100,000,000 (about 2 s) on a local file, never over the network
    /// (where a statement the server rolled back is made again in batches).
    pub scan_batches_above: Option<u64>,
}

impl Default for IndexPlanning {
    fn default() -> Self {
        IndexPlanning {
            mode: IndexMode::Fixed,
            target_recall: 0.95,
            max_query_ms: 50.0,
            sample_rows: None,
            forced: BTreeMap::new(),
            scan_index: true,
            cold_read_rate: None,
            scan_batches_above: None,
        }
    }
}

/// Held-out queries per table: recall@10 is measured over 10× as many
/// true neighbours, so a miss rate of 0.1% shows.
const QUERIES: usize = 100;

/// Over-fetch factors measured per DiskANN setting.
const OVERFETCH: [u32; 3] = [1, 2, 4];

/// Over-fetch factors measured for the scan index: 8-bit distances rank
/// the nearest few rows out of order, and more candidates do find them
/// (unlike a DiskANN search's, see `built_recall`), for one more read of
/// a row each. Samples rarely tell them apart (all 1.000 on 50,000
/// clustered rows), so none below 4: over-fetch 2, the pick there,
/// measured 0.960 and 0.964 in the benchmark's 100 queries, for 17.7 ms
/// predicted against 18.0 ms at 4.
const SCAN_OVERFETCH: [u32; 3] = [4, 8, 16];

/// Over-fetch factors measured for the 1-bit scan index: a Hamming
/// distance of signs ranks coarsely, and the true ten were among the
/// nearest 160 to 640 of 100,000 clustered rows (`docs/index-plan.md`),
/// and 70,000 uniform rows of 384 dimensions needed over-fetch 512 for
/// 0.981. Each candidate costs one read of its row, a few microseconds.
const SCAN_1BIT_OVERFETCH: [u32; 6] = [8, 16, 32, 64, 128, 256];

/// The over-fetch factors measured for `options`.
fn overfetches(options: &str) -> &'static [u32] {
    match ScanBits::from_options(options) {
        Some(ScanBits::Float8) => &SCAN_OVERFETCH,
        Some(ScanBits::Float1Bit) => &SCAN_1BIT_OVERFETCH,
        None => &OVERFETCH,
    }
}

/// Vectors sampled per table by default: fewer for wider vectors, whose
/// inserts cost more.
pub(crate) fn default_sample_rows(dimension: usize) -> usize {
    match dimension {
        0..=512 => 800,
        513..=1100 => 400,
        1101..=2000 => 300,
        _ => 200,
    }
}

/// The settings measured (as options text): libSQL's defaults, neighbours
/// compressed to float8 and to float1bit, each of those with 32
/// neighbours, and the quantized scan index. (float16 sits between the
/// default and float8; fewer settings keep the plan to minutes on the
/// widest vectors.) The scan index only when `scan_index`.
fn settings(scan_index: bool) -> Vec<String> {
    let with = |compress, max_neighbors| VectorIndexOptions {
        compress_neighbors: compress,
        max_neighbors,
        search_l: None,
    };
    [
        with(None, None),
        with(Some(NeighborCompression::Float8), None),
        with(Some(NeighborCompression::Float8), Some(32)),
        with(Some(NeighborCompression::Float1Bit), None),
        with(Some(NeighborCompression::Float1Bit), Some(32)),
    ]
    .iter()
    .map(VectorIndexOptions::options_string)
    .chain(
        ScanBits::ALL
            .into_iter()
            .filter(|_| scan_index)
            .map(|b| b.options().to_string()),
    )
    .collect()
}

/// A scan reads every row's quantized vector: its latency grows with the
/// rows, and is predicted on a line through the two largest sizes
/// measured (the re-ranking's reads of `overfetch × 10` rows are its fixed
/// part). In proportion to the largest alone, the fixed part scaled too:
/// on 100,000 mixed rows 70.2 ms was predicted for 51.9 measured at
/// 19,953 rows of 1,536 dimensions; the line says 52.9. The line's slope
/// is `scan_slope`, that of the same scan's smallest over-fetch, where
/// given: a larger over-fetch asks for more candidates than a small
/// sample holds, and its own line then climbs with the re-ranking too (on
/// those rows the 1-bit scan at over-fetch 64, 704 candidates, measured
/// 4.50 ms at 300 rows and 14.55 ms at 2,494: 94.5 ms predicted, 28.6 ms
/// searched; its over-fetch 8's slope says 33.8 ms). DiskANN's is left
/// as [`fit`] predicts it.
fn scan_latency(c: &mut Candidate, rows: u64, scan_slope: Option<f64>) {
    if ScanBits::from_options(&c.options).is_none() {
        return;
    }
    let Some(large) = c.measured.iter().max_by_key(|m| m.rows) else {
        return;
    };
    let proportional = large.query_ms * rows as f64 / large.rows.max(1) as f64;
    c.predicted.query_ms = match scan_slope.or_else(|| slope(&c.measured)) {
        Some(slope) => {
            let fixed = large.query_ms - slope * large.rows as f64;
            if fixed >= 0.0 {
                fixed + slope * rows as f64
            } else {
                proportional
            }
        }
        None => proportional,
    };
}

/// The search time's slope per row on the line through the two largest
/// sizes in `measured` (none below one size; never negative).
fn slope(measured: &[Measured]) -> Option<f64> {
    let mut sizes: Vec<&Measured> = measured.iter().collect();
    sizes.sort_by_key(|m| m.rows);
    let [.., small, large] = sizes[..] else {
        return None;
    };
    (large.rows > small.rows)
        .then(|| ((large.query_ms - small.query_ms) / (large.rows - small.rows) as f64).max(0.0))
}

/// The slope of the smallest over-fetch of each scan among `candidates`
/// (see [`scan_latency`]).
fn scan_slope(candidates: &[Candidate], options: &str) -> Option<f64> {
    candidates
        .iter()
        .filter(|c| c.options == options)
        .min_by_key(|c| c.overfetch)
        .and_then(|c| slope(&c.measured))
}

/// Seconds an index build of a table of `rows` rows (`leading_bytes`
/// before each vector of `dimension` floats) spends reading it from the
/// disk, where it will not be in the page cache; 0 where it will be. The
/// scratch the plan measures in is always cached: on a million rows the
/// scan indexes were predicted 10 s in all, and took 34.1 s.
fn cold_read_seconds(
    planning: &IndexPlanning,
    rows: u64,
    leading_bytes: usize,
    dimension: usize,
) -> f64 {
    planning.cold_read_rate.map_or(0.0, |rate| {
        let records = rows.saturating_mul((leading_bytes + 4 * dimension) as u64);
        super::estimate::with_page_fill(records) as f64 / rate.max(1.0)
    })
}

/// What a prediction at the table's size adds to the fit of the samples:
/// a scan's latency at `rows` ([`scan_latency`]) and the `cold_read`
/// seconds of reading the table from the disk ([`cold_read_seconds`]).
fn at_table_size(c: &mut Candidate, rows: u64, cold_read: f64, scan_slope: Option<f64>) {
    scan_latency(c, rows, scan_slope);
    c.predicted.build_seconds += cold_read;
}

/// What the plan measures a table on.
pub(crate) struct Sample {
    /// A uniform sample of the table's vectors.
    pub vectors: Vec<Vec<f32>>,
    /// Whole neighbourhoods of the table, when its every row was seen.
    pub neighbourhoods: Option<Neighbourhoods>,
}

/// Plans one table of `rows` rows from `sample` (of its rows, which store
/// `leading_bytes` before the vector on average); `None` when `stop` asked
/// it to stop (it is asked before each build: at a million rows one table
/// takes minutes).
pub(crate) async fn plan_table(
    table: TargetTable,
    rows: u64,
    sample: Sample,
    leading_bytes: usize,
    identical_vectors: u64,
    planning: &IndexPlanning,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<Option<TablePlan>> {
    let mut plan = TablePlan {
        table: table.name().to_string(),
        rows,
        identical_vectors,
        exact_ms_per_row: 0.0,
        candidates: Vec::new(),
        default_candidate: None,
        pick: Pick::Exact {
            predicted_query_ms: 0.0,
        },
    };
    if let Some(forced) = planning.forced.get(&table) {
        plan.pick = match forced {
            Forced::Exact => Pick::ForcedExact,
            Forced::Options(o) => Pick::Forced {
                options: o.options_string(),
            },
            Forced::Scan(bits) => Pick::Forced {
                options: bits.options().to_string(),
            },
        };
        return Ok(Some(plan));
    }
    let dimension = table.native_dimension().unwrap_or(0);
    let Sample {
        vectors: mut sample,
        neighbourhoods,
    } = sample;
    sample.retain(|v| {
        v.len() == dimension
            && crate::decode::cosine_searchable(&crate::decode::vector_to_le_bytes(v)).is_ok()
    });
    if sample.len() < 2 * QUERIES {
        // Too few rows to measure anything: a scan of them is instant.
        return Ok(Some(plan));
    }
    let queries = sample.split_off(sample.len() - QUERIES);
    let large = sample.len().min(
        planning
            .sample_rows
            .unwrap_or(default_sample_rows(dimension)),
    );
    let rows_large = &sample[..large];
    let rows_small = &sample[..large / 2];
    let cold_read = cold_read_seconds(planning, rows, leading_bytes, dimension);
    plan.exact_ms_per_row =
        measure::exact_ms_per_row(dimension, leading_bytes, rows_large, &queries).await?;
    // A table whose exact search is fast enough needs no index: nothing
    // more to measure.
    if plan.exact_ms_per_row * rows as f64 <= planning.max_query_ms {
        plan.pick = Pick::Exact {
            predicted_query_ms: plan.exact_ms_per_row * rows as f64,
        };
        return Ok(Some(plan));
    }
    let two_sizes = TwoSizes {
        dimension,
        small: rows_small,
        large: rows_large,
        queries: &queries,
        leading_bytes,
        rows,
        cold_read,
    };
    // libSQL's defaults (the plan shows their cost beside its pick) and
    // the scan indexes first. A scan builds in a second or less: where
    // one, validated, meets both targets, no DiskANN setting can cost
    // less, and the other four are not built at all (on 100,000 clustered
    // rows they were most of the plan's 189 s).
    let (first, rest): (Vec<String>, Vec<String>) = settings(planning.scan_index)
        .into_iter()
        .partition(|o| o.is_empty() || ScanBits::from_options(o).is_some());
    if !two_sizes.add(&mut plan, &first, stop).await? {
        return Ok(None);
    }
    let targets = fit::Targets {
        recall: planning.target_recall,
        max_query_ms: planning.max_query_ms,
    };
    plan.pick = fit::pick(rows, plan.exact_ms_per_row, &plan.candidates, targets);
    let third = &sample[..sample.len().min(validating_size(large, rows))];
    let at_third = (third.len() * 2 >= large * 3).then_some(Validation {
        dimension,
        leading_bytes,
        third,
        queries: &queries,
        neighbourhoods: neighbourhoods.as_ref(),
        rows,
        targets,
        stop,
        cold_read,
    });
    if let Some(at_third) = &at_third {
        at_third.validate_scans(&mut plan).await?;
        if stop() {
            return Ok(None);
        }
        if a_scan_meets_the_targets(&plan) {
            return Ok(Some(plan));
        }
    }
    if !two_sizes.add(&mut plan, &rest, stop).await? {
        return Ok(None);
    }
    plan.pick = fit::pick(rows, plan.exact_ms_per_row, &plan.candidates, targets);
    if let Some(at_third) = &at_third {
        at_third.validate(&mut plan).await?;
        if stop() {
            return Ok(None);
        }
    }
    Ok(Some(plan))
}

/// Whether the plan's pick is a scan index that meets both targets.
fn a_scan_meets_the_targets(plan: &TablePlan) -> bool {
    match plan.pick {
        Pick::Index {
            candidate,
            meets_targets: true,
        } => plan
            .candidates
            .get(candidate)
            .is_some_and(|c| ScanBits::from_options(&c.options).is_some()),
        _ => false,
    }
}

/// The two sample sizes every setting is measured at first.
struct TwoSizes<'a> {
    dimension: usize,
    small: &'a [Vec<f32>],
    large: &'a [Vec<f32>],
    queries: &'a [Vec<f32>],
    leading_bytes: usize,
    /// The table's rows, and the seconds its build would spend reading
    /// them from the disk ([`cold_read_seconds`]).
    rows: u64,
    cold_read: f64,
}

impl TwoSizes<'_> {
    /// Measures each of `settings` at both sizes and adds its candidates
    /// (one per over-fetch) to `plan`, predicted at the table's size;
    /// `false` when `stop` asked the plan to stop (before a build).
    async fn add(
        &self,
        plan: &mut TablePlan,
        settings: &[String],
        stop: &(dyn Fn() -> bool + Sync),
    ) -> Result<bool> {
        for text in settings {
            if stop() {
                return Ok(false);
            }
            let factors = overfetches(text);
            let measure = |rows| {
                measure::measure(
                    self.dimension,
                    text,
                    rows,
                    self.queries,
                    factors,
                    measure::Scaled::default(),
                    self.leading_bytes,
                )
            };
            let small = measure(self.small).await?;
            let big = measure(self.large).await?;
            let first = plan.candidates.len();
            for ((f, s), b) in factors.iter().zip(small).zip(big) {
                if text.is_empty() && *f == 1 {
                    plan.default_candidate = Some(plan.candidates.len());
                }
                let c = Candidate {
                    options: text.clone(),
                    overfetch: *f,
                    predicted: fit::predict(&s, &b, self.rows, self.queries.len() * measure::K),
                    measured: vec![s, b],
                    neighbourhoods: None,
                    recall_at_most: false,
                };
                plan.candidates.push(c);
            }
            let slope = scan_slope(&plan.candidates[first..], text);
            for c in &mut plan.candidates[first..] {
                at_table_size(c, self.rows, self.cold_read, slope);
            }
        }
        Ok(true)
    }
}

/// Settings measured again at a third, larger size (up to the table's
/// own) and predicted from the two larger. Recall falls late: two small
/// sizes may both measure 1.00 for a setting that finds half the true
/// neighbours at the table's size, and a few misses between them may be
/// noise rather than a trend.
struct Validation<'a> {
    dimension: usize,
    leading_bytes: usize,
    third: &'a [Vec<f32>],
    queries: &'a [Vec<f32>],
    neighbourhoods: Option<&'a Neighbourhoods>,
    rows: u64,
    targets: fit::Targets,
    /// Asked before each build; when it says stop, validation ends where
    /// it is (and the plan is dropped).
    stop: &'a (dyn Fn() -> bool + Sync),
    /// Seconds a build spends reading the table from the disk
    /// ([`cold_read_seconds`]).
    cold_read: f64,
}

impl Validation<'_> {
    /// The cheapest settings that could still meet the targets first, at
    /// most [`VALIDATIONS`] of them, then the pick, if those left it
    /// unmeasured there: its build time and recall are predicted from the
    /// two larger sizes, which a doubling of the sample alone predicted up
    /// to 2× wrong (1,436 s against 808 s for 35,110 rows).
    async fn validate(&self, plan: &mut TablePlan) -> Result<()> {
        // The scan indexes were validated first ([`Self::validate_scans`]).
        let mut validated: std::collections::BTreeSet<String> = ScanBits::ALL
            .iter()
            .map(|b| b.options().to_string())
            .collect();
        for round in 0..VALIDATIONS + settings(true).len() {
            if (self.stop)() {
                return Ok(());
            }
            let next = if round < VALIDATIONS {
                fit::next_to_validate(&plan.candidates, &plan.pick, &validated, self.targets)
            } else {
                None
            };
            let Some(options) = next
                .or_else(|| {
                    unvalidated_pick(&plan.candidates, &plan.pick)
                        .filter(|o| !validated.contains(*o))
                })
                .map(String::from)
            else {
                break;
            };
            validated.insert(options.clone());
            // Whole neighbourhoods of the table first, where the rows were
            // all seen: a clearly lower recall of theirs stands, so where
            // it is clearly below the target the setting cannot meet it,
            // and its uniform build is not needed (on 50,000 clustered
            // rows they ruled out all five settings of `embeddings_384`,
            // whose uniform builds took 68 s of the plan's 291 s).
            let near = self.on_neighbourhoods(&options).await?;
            match near {
                Some(near) if near.rules_out(self.targets.recall) => {
                    for c in plan.candidates.iter_mut().filter(|c| c.options == options) {
                        let n = near.measured[overfetch_at(c)].clone();
                        c.predicted = fit::predict_ruled_out(&c.predicted, &n);
                        c.neighbourhoods = Some(n);
                        c.recall_at_most = near.part;
                    }
                }
                near => {
                    self.uniform(plan, &options, near.map(|n| n.measured))
                        .await?
                }
            }
            self.repick(plan);
        }
        // A pick below the target (no setting met it, and an exact search
        // is too slow) may be one the neighbourhoods ruled out: its build
        // time is measured at the third size too, as every pick's is.
        if let Some(options) = unvalidated_pick(&plan.candidates, &plan.pick).map(String::from) {
            if (self.stop)() {
                return Ok(());
            }
            self.uniform(plan, &options, None).await?;
            self.repick(plan);
        }
        Ok(())
    }

    /// The scan indexes at the third size and on whole neighbourhoods,
    /// before any other setting is validated (or, where a scan then meets
    /// both targets, measured at all).
    async fn validate_scans(&self, plan: &mut TablePlan) -> Result<()> {
        // The scan index first, always: it builds in a fraction of a
        // second, and its search time, which grows with the rows, is
        // predicted far better from the third size than from the two
        // small ones. On 1,000,000 mixed rows `embeddings_3072`'s scan
        // was predicted at 204.6 ms from 100 and 200 rows (just past 4×
        // the target) and at 98 ms in another run that measured it at
        // 3,139; left unmeasured, the plan took float8 at recall 0.73 and
        // 50 minutes of build instead. Where it now meets both targets,
        // no DiskANN setting is cheaper, and nothing more is measured.
        // Whole neighbourhoods too, where the rows were all seen: a scan
        // ranks every row, and at the table's density more of them crowd
        // a query's true neighbours in quantized distance (a 1-bit scan of
        // 70,000 clustered rows found 0.84 of them with over-fetch 16,
        // where a sample of a few thousand finds all).
        for bits in ScanBits::ALL {
            let options = bits.options();
            if plan.candidates.iter().any(|c| c.options == options) {
                let near = self.on_neighbourhoods(options).await?;
                let part = near.as_ref().is_some_and(|n| n.part);
                self.uniform(plan, options, near.map(|n| n.measured))
                    .await?;
                for c in plan.candidates.iter_mut().filter(|c| c.options == options) {
                    c.recall_at_most = part;
                }
                self.repick(plan);
            }
        }
        Ok(())
    }

    /// The pick again, from what is measured now.
    fn repick(&self, plan: &mut TablePlan) {
        plan.pick = fit::pick(
            self.rows,
            plan.exact_ms_per_row,
            &plan.candidates,
            self.targets,
        );
    }

    /// `options` measured on whole neighbourhoods of the table, as many
    /// rows as the third size, with its search scaled the same way; none
    /// without neighbourhoods, or when too few rows or queries were found.
    ///
    /// A quarter of them first, searched with the whole's `search_l`: a
    /// search visiting a larger share of a smaller graph finds more, so
    /// where even the quarter is clearly below the target, the whole is
    /// too, and is not built. On 700,150 uniform rows of 384 dimensions
    /// the quarter found 0.09–0.35 of the true neighbours where the whole
    /// found 0.03–0.18 (each setting's five), in 73 s of builds against
    /// 316 s (`docs/index-plan-bench.md`).
    async fn on_neighbourhoods(&self, options: &str) -> Result<Option<OnNeighbourhoods>> {
        let Some((near, asked)) = self.neighbourhood_rows(1) else {
            return Ok(None);
        };
        let beam = scaled_search_l(options, near.len(), self.rows);
        if let Some((part, part_asked)) = self.neighbourhood_rows(PROBE_SHARE) {
            let probe = OnNeighbourhoods {
                measured: self.measure_on(options, &part, &part_asked, beam).await?,
                part: true,
            };
            if probe.rules_out(self.targets.recall) || (self.stop)() {
                return Ok(Some(probe));
            }
        }
        let measured = self.measure_on(options, &near, &asked, beam).await?;
        Ok(Some(OnNeighbourhoods {
            measured,
            part: false,
        }))
    }

    /// The rows and queries of whole neighbourhoods, `1 / share` of the
    /// third size; none without neighbourhoods, when too few rows or
    /// queries were found, or when a part (`share` above 1) would hold
    /// fewer than [`PROBE_MIN_PER_SEED`] rows a seed.
    fn neighbourhood_rows(&self, share: usize) -> Option<(Vectors, Vectors)> {
        let neighbourhoods = self.neighbourhoods?;
        let rows = self.third.len() / share;
        if share > 1 && rows / SEEDS < PROBE_MIN_PER_SEED {
            return None;
        }
        let (near, asked) = neighbourhoods.sample(rows / SEEDS, QUERIES);
        (near.len() * 2 >= rows && asked.len() * 4 >= QUERIES).then_some((near, asked))
    }

    /// `options` built over `rows` and searched with `beam`. A scan's
    /// search is not scaled: whole neighbourhoods hold the rows nearest a
    /// query at the table's density, those that outrank its true
    /// neighbours in quantized distance among them.
    async fn measure_on(
        &self,
        options: &str,
        rows: &[Vec<f32>],
        asked: &[Vec<f32>],
        beam: u32,
    ) -> Result<Vec<Measured>> {
        measure::measure(
            self.dimension,
            options,
            rows,
            asked,
            overfetches(options),
            measure::Scaled {
                search_l: Some(beam),
                scan_share: None,
            },
            self.leading_bytes,
        )
        .await
        .map_err(Into::into)
    }

    /// `options` measured at the third size of the uniform sample, and
    /// predicted from it with what whole neighbourhoods found (`near`, by
    /// over-fetch; none: as measured before, if at all).
    async fn uniform(
        &self,
        plan: &mut TablePlan,
        options: &str,
        near: Option<Vec<Measured>>,
    ) -> Result<()> {
        let scaled = measure::Scaled {
            search_l: Some(scaled_search_l(options, self.third.len(), self.rows)),
            scan_share: Some(self.third.len() as f64 / self.rows.max(1) as f64),
        };
        let measured = measure::measure(
            self.dimension,
            options,
            self.third,
            self.queries,
            overfetches(options),
            scaled,
            self.leading_bytes,
        )
        .await?;
        for c in plan.candidates.iter_mut().filter(|c| c.options == options) {
            c.measured.push(measured[overfetch_at(c)].clone());
            if let Some(near) = &near {
                c.neighbourhoods = Some(near[overfetch_at(c)].clone());
            }
        }
        let slope = scan_slope(&plan.candidates, options);
        for c in plan.candidates.iter_mut().filter(|c| c.options == options) {
            c.predicted = fit::predict_validated(&c.measured, c.neighbourhoods.as_ref(), self.rows);
            at_table_size(c, self.rows, self.cold_read, slope);
        }
        Ok(())
    }
}

/// Rows' vectors, or queries'.
type Vectors = Vec<Vec<f32>>;

/// A setting measured on whole neighbourhoods, one [`Measured`] for each
/// of its over-fetches.
struct OnNeighbourhoods {
    measured: Vec<Measured>,
    /// On a part of them only (which is measured alone only where it
    /// rules the setting out): its recall is an upper bound of the whole's.
    part: bool,
}

impl OnNeighbourhoods {
    /// Whether no over-fetch can reach `target` ([`fit::rules_out`]).
    fn rules_out(&self, target: f64) -> bool {
        self.measured.iter().all(|n| fit::rules_out(n, target))
    }
}

/// Where a candidate's over-fetch sits in [`overfetches`] of its setting,
/// and so in each measurement of it.
fn overfetch_at(c: &Candidate) -> usize {
    overfetches(&c.options)
        .iter()
        .position(|f| *f == c.overfetch)
        .unwrap_or(0)
}

/// libSQL's `search_l` when the options do not set it.
const DEFAULT_SEARCH_L: u32 = 200;

/// The `search_l` a validating build of `sample` rows searches with: the
/// table's, scaled by `sample ÷ rows`, so that its searches visit the
/// share of the sample's graph that the table's searches will visit of
/// the table's. A search's recall depends on that share far more than on
/// the size itself: on the realistic mix (uniform vectors), float8 with
/// 32 neighbours found 0.965 of the true neighbours at 1,235 rows of 1,536
/// dimensions with the default 200, and 0.632 at 9,782 rows; with 25 at
/// 1,235 rows (and 50 at 2,470) it found 0.635 (0.638). On 384 dimensions,
/// 4,388 rows with 25 against 35,010 with 200: 0.373 against 0.421
/// (float8, 32 neighbours), 0.241 against 0.316 (float1bit, 32): a little
/// low, never high.
fn scaled_search_l(options: &str, sample: usize, rows: u64) -> u32 {
    let table = VectorIndexOptions::parse(options)
        .ok()
        .and_then(|o| o.search_l)
        .unwrap_or(DEFAULT_SEARCH_L);
    let scaled = (table as f64 * sample as f64 / rows.max(1) as f64).round() as u32;
    scaled.clamp(1, table)
}

/// The options of the pick when they were not measured at the third size.
fn unvalidated_pick<'a>(candidates: &'a [Candidate], pick: &Pick) -> Option<&'a str> {
    match pick {
        Pick::Index { candidate, .. } => candidates
            .get(*candidate)
            .filter(|c| c.measured.len() < 3)
            .map(|c| c.options.as_str()),
        _ => None,
    }
}

/// The third, validating sample size, as a multiple of the larger one:
/// large enough for recall to have started to fall where it will (on
/// uniform 384-dimension vectors every setting still finds every
/// neighbour at 3,000 rows; at 12,800 the weaker ones miss a few percent).
const VALIDATE_FACTOR: usize = 16;

/// Rows of the validating build: up to [`VALIDATE_FACTOR`] times the
/// larger sample, but no more than an eighth of the table (at least twice
/// the larger sample), so that validating three picks costs well under
/// one real build of a small table.
fn validating_size(large: usize, rows: u64) -> usize {
    let eighth = usize::try_from(rows / 8).unwrap_or(usize::MAX);
    (large * VALIDATE_FACTOR).min(eighth.max(2 * large))
}

/// The part of the whole neighbourhoods a setting is first measured on.
const PROBE_SHARE: usize = 4;

/// Rows a seed a part of the neighbourhoods holds at least: two queries a
/// seed (every eighth row), 50 in all. At 32, `embeddings_3072` of the
/// million-row run (a third size of 3,139 rows, 31 a seed in a quarter)
/// was not probed, and its five whole builds took 560 s of the plan's
/// 1,118 s.
const PROBE_MIN_PER_SEED: usize = 16;

/// Picks validated at the third size, at most.
const VALIDATIONS: usize = 3;

/// Plans every native table from its sample, telling `observer` as each
/// is done (a table of a million rows takes minutes); `None` when the
/// observer asked the run to stop (asked before each build).
pub(crate) async fn plan(
    samples: BTreeMap<TargetTable, Reservoir>,
    planning: &IndexPlanning,
    observer: &dyn Observer,
) -> Result<Option<IndexPlan>> {
    let stop = || observer.stop_requested();
    let mut out = IndexPlan {
        target_recall: planning.target_recall,
        max_query_ms: planning.max_query_ms,
        tables: Vec::new(),
        cold_read_rate: planning.cold_read_rate,
    };
    for (table, reservoir) in samples {
        if !table.is_native() || reservoir.seen == 0 {
            continue;
        }
        let (seen, identical) = (reservoir.seen, reservoir.identical());
        let leading = reservoir.mean_leading_bytes();
        let sample = Sample {
            vectors: reservoir.vectors,
            neighbourhoods: reservoir.neighbourhoods,
        };
        let planned = plan_table(table, seen, sample, leading, identical, planning, &stop).await?;
        let Some(planned) = planned else {
            return Ok(None);
        };
        out.tables.push(planned);
        observer.progress(Phase::IndexPlan, out.tables.len() as u64);
    }
    Ok(Some(out))
}

/// Per table, the options its DiskANN index is built with (`None`: no
/// DiskANN index) and how it is searched (through a scan index, which the
/// index phase then builds, or exactly, or through the DiskANN index).
pub(crate) type Choices = BTreeMap<TargetTable, (Option<VectorIndexOptions>, TableSearch)>;

/// A scan index's choice.
fn scan(
    bits: ScanBits,
    overfetch: u32,
    planned_recall: Option<f64>,
) -> (Option<VectorIndexOptions>, TableSearch) {
    (
        None,
        TableSearch::Scan {
            overfetch,
            bits,
            planned_recall,
            measured_recall: None,
        },
    )
}

/// A DiskANN index's choice.
fn diskann(
    options: VectorIndexOptions,
    overfetch: u32,
    planned_recall: Option<f64>,
) -> (Option<VectorIndexOptions>, TableSearch) {
    (
        Some(options),
        TableSearch::Index {
            options: options.options_string(),
            overfetch,
            planned_recall,
            measured_recall: None,
        },
    )
}

/// The choice of a setting by its options text (a scan index's,
/// [`ScanBits::options`], or DiskANN's), with its over-fetch and recall
/// when it was measured (`None`: forced: [`forced_scan_overfetch`], or 1).
fn by_options(
    options: &str,
    measured: Option<(u32, f64)>,
) -> (Option<VectorIndexOptions>, TableSearch) {
    let recall = measured.map(|(_, r)| r);
    if let Some(bits) = ScanBits::from_options(options) {
        let overfetch = measured.map_or(forced_scan_overfetch(bits), |(f, _)| f);
        return scan(bits, overfetch, recall);
    }
    let overfetch = measured.map_or(1, |(f, _)| f);
    let parsed = VectorIndexOptions::parse(options).unwrap_or_default();
    diskann(parsed, overfetch, recall)
}

/// How each table of `plan` is searched, and the options its index is
/// built with (`None`: no DiskANN index).
pub(crate) fn choices(plan: &IndexPlan) -> Choices {
    let mut out = BTreeMap::new();
    for t in &plan.tables {
        let Some(table) = TargetTable::ALL.into_iter().find(|x| x.name() == t.table) else {
            continue;
        };
        let choice = match &t.pick {
            Pick::Exact { .. } | Pick::ExactForRecall { .. } | Pick::ForcedExact => {
                (None, TableSearch::Exact)
            }
            Pick::Forced { options } => by_options(options, None),
            Pick::Index { candidate, .. } => {
                let c = &t.candidates[*candidate];
                by_options(&c.options, Some((c.overfetch, c.predicted.recall)))
            }
        };
        out.insert(table, choice);
    }
    out
}

/// Decides, before the index phase, how each native table is indexed and
/// searched, and records the search plan: fixed options on every table;
/// or the plan recorded by an earlier run (a resumed run keeps it); or a
/// new plan from a sample of the copied rows (with `whole_tables`, also from whole
/// neighbourhoods, found by reading each table's vectors once: not for a
/// remote database). Returns the plan it made (if it made one) and each
/// table's choice; `None`, with nothing recorded, when the observer asked
/// the run to stop during the plan.
pub(crate) async fn for_run(
    conn: &libsql::Connection,
    planning: &IndexPlanning,
    fixed: VectorIndexOptions,
    whole_tables: bool,
    observer: &dyn super::observer::Observer,
) -> Result<Option<(Option<IndexPlan>, Choices)>> {
    let natives: Vec<TargetTable> = TargetTable::ALL
        .into_iter()
        .filter(|t| t.is_native())
        .collect();
    let forced = |t: &TargetTable| match planning.forced.get(t) {
        Some(Forced::Exact) => Some((None, TableSearch::Exact)),
        Some(Forced::Options(o)) => Some(diskann(*o, 1, None)),
        Some(Forced::Scan(bits)) => Some(scan(*bits, forced_scan_overfetch(*bits), None)),
        None => None,
    };
    let mut made = None;
    let mut chosen = Choices::new();
    match planning.mode {
        IndexMode::Fixed => {
            for t in &natives {
                chosen.insert(*t, forced(t).unwrap_or(diskann(fixed, 1, None)));
            }
        }
        IndexMode::Planned => {
            let recorded = crate::search_plan::read(conn).await?;
            let mut samples = BTreeMap::new();
            for t in &natives {
                if let Some(choice) = forced(t) {
                    chosen.insert(*t, choice);
                } else if let Some(search) = recorded.get(t) {
                    let options = match search {
                        // A scan index is no DiskANN index.
                        TableSearch::Exact | TableSearch::Scan { .. } => None,
                        TableSearch::Index { options, .. } => {
                            Some(VectorIndexOptions::parse(options).unwrap_or_default())
                        }
                    };
                    chosen.insert(*t, (options, search.clone()));
                } else {
                    let n = reservoir_size(planning, t.native_dimension().unwrap_or(0));
                    samples.insert(*t, sample_table(conn, *t, n, whole_tables).await?);
                }
            }
            if !samples.is_empty() {
                let began = std::time::Instant::now();
                let phase = super::observer::Phase::IndexPlan;
                observer.phase_started(phase, samples.len() as u64);
                let plan = plan(samples, planning, observer).await?;
                observer.phase_finished(phase, began.elapsed());
                let Some(plan) = plan else {
                    return Ok(None);
                };
                chosen.extend(choices(&plan));
                made = Some(plan);
            }
        }
    }
    // An empty table has nothing to measure: its index, built empty,
    // costs nothing, and the application's rows will need one.
    for t in &natives {
        chosen.entry(*t).or_insert(diskann(fixed, 1, None));
    }
    let searches = chosen.iter().map(|(t, (_, s))| (*t, s.clone())).collect();
    crate::search_plan::write(conn, &searches).await?;
    Ok(Some((made, chosen)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_read_from_the_disk_costs_its_bytes_at_the_measured_rate() {
        let cached = IndexPlanning::default();
        assert_eq!(cold_read_seconds(&cached, 700_150, 5_000, 384), 0.0);
        let cold = IndexPlanning {
            cold_read_rate: Some(500e6),
            ..Default::default()
        };
        // 700,150 rows of 6,536 bytes, pages 15% fuller than the records.
        let s = cold_read_seconds(&cold, 700_150, 5_000, 384);
        assert!((s - 700_150.0 * 6_536.0 * 1.15 / 500e6).abs() < 1e-9, "{s}");
    }

    #[test]
    fn the_validating_build_is_at_most_an_eighth_of_the_table() {
        assert_eq!(validating_size(800, 1_000_000), 12_800);
        assert_eq!(validating_size(800, 70_000), 8_750);
        assert_eq!(validating_size(800, 21_000), 2_625);
        assert_eq!(validating_size(800, 5_000), 1_600);
    }

    #[test]
    fn the_validating_search_visits_the_share_of_its_graph_the_tables_will() {
        assert_eq!(scaled_search_l("", 4_388, 35_110), 25);
        assert_eq!(
            scaled_search_l("compress_neighbors=float8", 1_235, 9_882),
            25
        );
        assert_eq!(scaled_search_l("search_l=800", 12_800, 100_000), 102);
        // Never below 1, never above the table's.
        assert_eq!(scaled_search_l("", 100, 1_000_000), 1);
        assert_eq!(scaled_search_l("", 5_000, 1_000), 200);
    }

    /// `n` vectors of `dim` dimensions around [`SEEDS`] centres, vector
    /// `i` near centre `i % SEEDS`.
    fn clustered(n: usize, dim: usize) -> Vec<Vec<f32>> {
        let mut rng = crate::sample::rng::Rng::new(7);
        let centres: Vec<Vec<f32>> = (0..SEEDS)
            .map(|_| (0..dim).map(|_| rng.signed_unit()).collect())
            .collect();
        (0..n)
            .map(|i| {
                centres[i % SEEDS]
                    .iter()
                    .map(|c| c + 0.05 * rng.signed_unit())
                    .collect()
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_setting_whole_neighbourhoods_rule_out_is_not_built_on_the_uniform_sample() {
        // A seed in each cluster: its neighbourhood is its cluster.
        let sample = clustered(350, 384);
        let mut near = Neighbourhoods::seeded(sample[..SEEDS].to_vec(), 16);
        for v in &sample {
            near.offer(&crate::decode::vector_to_le_bytes(v));
        }
        // A recall no index can reach, and a search no scan can meet:
        // whole neighbourhoods rule every setting out, and the pick is
        // the best of them, below the target.
        let planning = IndexPlanning {
            mode: IndexMode::Planned,
            // The scan finds every neighbour here: it would be the pick.
            scan_index: false,
            target_recall: 1.5,
            max_query_ms: 1e-9,
            sample_rows: Some(100),
            ..IndexPlanning::default()
        };
        let sample = Sample {
            vectors: sample,
            neighbourhoods: Some(near),
        };
        let plan = plan_table(TargetTable::D384, 2_000, sample, 0, 0, &planning, &|| false)
            .await
            .unwrap()
            .unwrap();
        let Pick::Index {
            candidate,
            meets_targets: false,
        } = plan.pick
        else {
            panic!("the best setting, below the target: {:?}", plan.pick);
        };
        let picked = plan.candidates[candidate].options.clone();
        let mut ruled_out = 0;
        for c in &plan.candidates {
            ruled_out += usize::from(c.neighbourhoods.is_some());
            if c.options == picked {
                // The pick's build time is still measured at the third size.
                assert_eq!(c.measured.len(), 3, "{c:?}");
            } else {
                assert_eq!(c.measured.len(), 2, "built on the uniform sample: {c:?}");
                if let Some(near) = &c.neighbourhoods {
                    assert_eq!(c.predicted.recall, near.recall, "{c:?}");
                }
            }
        }
        // The first pick is ruled out; whether the next is measured
        // depends on the recall its neighbourhoods found (a DiskANN
        // search starts at a random row): where they found every true
        // neighbour, it stays the best of them and the pick.
        assert!(ruled_out > 0, "{:?}", plan.candidates);
    }

    /// What [`Validation::on_neighbourhoods`] measures the cheapest
    /// setting on, with `target` recall: rows uniform on the sphere of
    /// 384 dimensions, a third size of 3,200 of a million-row table, so
    /// that a quarter of the neighbourhoods holds 32 rows a seed.
    /// Returns what was measured, the whole's `search_l`, and the rows of
    /// the quarter and of the whole.
    async fn measured_on_neighbourhoods(target: f64) -> (OnNeighbourhoods, u32, u64, u64) {
        let mut rng = crate::sample::rng::Rng::new(11);
        // The table's rows seen: enough that the seeds' neighbourhoods
        // hardly overlap.
        let rows: Vec<Vec<f32>> = (0..20_000)
            .map(|_| (0..384).map(|_| rng.signed_unit()).collect())
            .collect();
        let mut near = Neighbourhoods::first_rows(128);
        for v in &rows {
            near.offer(&crate::decode::vector_to_le_bytes(v));
        }
        let (third, queries) = (&rows[..3_200], &rows[3_200..3_300]);
        let validation = Validation {
            dimension: 384,
            leading_bytes: 0,
            third,
            queries,
            neighbourhoods: Some(&near),
            rows: 1_000_000,
            targets: fit::Targets {
                recall: target,
                max_query_ms: 50.0,
            },
            stop: &|| false,
            cold_read: 0.0,
        };
        let options = "compress_neighbors=float1bit,max_neighbors=32";
        let (whole, _) = validation.neighbourhood_rows(1).unwrap();
        let (quarter, _) = validation.neighbourhood_rows(PROBE_SHARE).unwrap();
        let (q, w) = (quarter.len(), whole.len());
        assert!(q * 3 < w, "a quarter of {w} rows: {q}");
        let beam = scaled_search_l(options, whole.len(), 1_000_000);
        let measured = validation.on_neighbourhoods(options).await.unwrap();
        let len = |rows: Vec<Vec<f32>>| rows.len() as u64;
        (measured.unwrap(), beam, len(quarter), len(whole))
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_setting_a_quarter_of_the_neighbourhoods_rules_out_is_not_built_on_the_whole() {
        // No index reaches recall 1.5: the quarter rules it out.
        let (near, beam, quarter, _) = measured_on_neighbourhoods(1.5).await;
        assert!(near.part);
        for m in &near.measured {
            assert_eq!(m.rows, quarter, "{m:?}");
            assert_eq!(m.scaled_search_l, Some(beam), "{m:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_setting_the_quarter_does_not_rule_out_is_measured_on_the_whole() {
        let (near, beam, _, whole) = measured_on_neighbourhoods(0.0).await;
        assert!(!near.part);
        for m in &near.measured {
            assert_eq!(m.rows, whole, "{m:?}");
            assert_eq!(m.scaled_search_l, Some(beam), "{m:?}");
        }
    }

    #[test]
    fn a_scan_pick_is_searched_through_its_scan_index_and_builds_no_diskann_index() {
        let m = crate::migration::report::Measured {
            rows: 800,
            build_ms_per_row: 0.01,
            bytes_per_row: 420.0,
            query_ms: 0.5,
            recall: 0.97,
            scaled_search_l: None,
            reranked: None,
        };
        let mut scan_candidate = Candidate {
            options: "scan".into(),
            overfetch: 4,
            measured: vec![m.clone(), m],
            neighbourhoods: None,
            recall_at_most: false,
            predicted: crate::migration::report::Prediction {
                build_seconds: 0.1,
                index_bytes: 1,
                query_ms: 0.5,
                recall: 0.97,
            },
        };
        // One size: in proportion to it.
        scan_latency(&mut scan_candidate, 80_000, None);
        assert_eq!(scan_candidate.predicted.query_ms, 50.0);
        // Two: on their line, the re-ranking's fixed part not scaled.
        let mut two = scan_candidate.clone();
        two.measured[0].rows = 400;
        two.measured[0].query_ms = 0.3;
        scan_latency(&mut two, 80_000, None);
        assert!((two.predicted.query_ms - 40.1).abs() < 1e-9, "{two:?}");
        // A line whose fixed part would be negative: in proportion.
        two.measured[0].query_ms = 0.1;
        two.measured[0].rows = 700;
        scan_latency(&mut two, 80_000, None);
        assert_eq!(two.predicted.query_ms, 50.0);
        // A larger over-fetch, whose smaller sample held fewer rows than
        // its candidates, takes the slope of the smallest over-fetch (the
        // 1-bit scan of 100,000 mixed rows' `embeddings_1536`: 94.5 ms on
        // its own line, 28.6 ms searched).
        let mut wide = two.clone();
        wide.overfetch = 64;
        wide.measured[0].rows = 300;
        wide.measured[0].query_ms = 4.5;
        wide.measured[1].rows = 2494;
        wide.measured[1].query_ms = 14.55;
        let mut narrow = wide.clone();
        narrow.overfetch = 8;
        narrow.measured[0].query_ms = 1.34;
        narrow.measured[1].query_ms = 3.76;
        let slope = scan_slope(&[wide.clone(), narrow], "scan");
        scan_latency(&mut wide, 19_953, slope);
        assert!((wide.predicted.query_ms - 33.8).abs() < 0.1, "{wide:?}");
        let mut alone = wide.clone();
        scan_latency(&mut alone, 19_953, None);
        assert!((alone.predicted.query_ms - 94.5).abs() < 0.1, "{alone:?}");
        let table = |name: &str, pick| TablePlan {
            table: name.into(),
            rows: 80_000,
            identical_vectors: 0,
            exact_ms_per_row: 0.003,
            candidates: vec![scan_candidate.clone()],
            default_candidate: None,
            pick,
        };
        let plan = IndexPlan {
            target_recall: 0.95,
            max_query_ms: 50.0,
            cold_read_rate: None,
            tables: vec![
                table(
                    "embeddings_384",
                    Pick::Index {
                        candidate: 0,
                        meets_targets: true,
                    },
                ),
                table(
                    "embeddings_1536",
                    Pick::Forced {
                        options: "scan1bit".into(),
                    },
                ),
            ],
        };
        let chosen = choices(&plan);
        assert_eq!(
            chosen[&TargetTable::D384],
            (
                None,
                TableSearch::Scan {
                    overfetch: 4,
                    bits: ScanBits::Float8,
                    planned_recall: Some(0.97),
                    measured_recall: None
                }
            )
        );
        assert_eq!(
            chosen[&TargetTable::D1536],
            (
                None,
                TableSearch::Scan {
                    overfetch: 32,
                    bits: ScanBits::Float1Bit,
                    planned_recall: None,
                    measured_recall: None
                }
            )
        );
    }

    #[test]
    fn a_pick_measured_at_two_sizes_only_is_validated_before_it_stands() {
        let measured = |rows| crate::migration::report::Measured {
            rows,
            build_ms_per_row: 1.0,
            bytes_per_row: 1.0,
            query_ms: 1.0,
            recall: 1.0,
            scaled_search_l: None,
            reranked: None,
        };
        let candidate = |options: &str, sizes: &[u64]| Candidate {
            options: options.into(),
            overfetch: 1,
            measured: sizes.iter().map(|n| measured(*n)).collect(),
            neighbourhoods: None,
            recall_at_most: false,
            predicted: crate::migration::report::Prediction {
                build_seconds: 1.0,
                index_bytes: 1,
                query_ms: 1.0,
                recall: 1.0,
            },
        };
        let candidates = vec![
            candidate("a", &[400, 800]),
            candidate("b", &[400, 800, 4000]),
        ];
        let index = |candidate| Pick::Index {
            candidate,
            meets_targets: true,
        };
        assert_eq!(unvalidated_pick(&candidates, &index(0)), Some("a"));
        assert_eq!(unvalidated_pick(&candidates, &index(1)), None);
        let exact = Pick::Exact {
            predicted_query_ms: 1.0,
        };
        assert_eq!(unvalidated_pick(&candidates, &exact), None);
    }
}
