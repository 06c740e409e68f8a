//! The index plan in the report: per native table, what each candidate
//! setting measured on a sample of the user's rows, what it predicts at the
//! table's size, and the pick.

use serde::Serialize;

/// What one setting measured at one sample size.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Measured {
    pub rows: u64,
    /// Milliseconds per inserted row, the index growing from empty.
    pub build_ms_per_row: f64,
    /// Index bytes per row.
    pub bytes_per_row: f64,
    /// Milliseconds per search of 10 (with the over-fetch).
    pub query_ms: f64,
    /// recall@10 against exact search, on held-out queries.
    pub recall: f64,
    /// The `search_l` the sample's index searched with, when it was scaled
    /// down to the sample (the table's `search_l` × sample rows ÷ table
    /// rows): its recall is then the prediction of the table's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaled_search_l: Option<u32>,
    /// The candidates a scan's recall was measured over, when they were
    /// scaled down to the sample (fewer than the over-fetch asks for, and
    /// its search timed with: the nearest in quantized distance); its
    /// recall is then the prediction of the table's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reranked: Option<u32>,
}

/// What a setting predicts at the table's size.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Prediction {
    /// Seconds to build the index over every row.
    pub build_seconds: f64,
    pub index_bytes: u64,
    pub query_ms: f64,
    pub recall: f64,
}

/// One candidate setting of one table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Candidate {
    /// `libsql_vector_idx` options (empty: libSQL's defaults), or a
    /// quantized scan index's ([`crate::schema::ScanBits::options`]: an
    /// ordinary index of each row's 8-bit or 1-bit vector, scanned and
    /// re-ranked exactly; no DiskANN index).
    pub options: String,
    /// Candidates asked of the index per hit, re-ranked exactly.
    pub overfetch: u32,
    /// The sample sizes, smaller first: two for every setting, a third,
    /// larger one for a setting validated there, searched with a scaled
    /// `search_l` (the prediction's build time then comes from the two
    /// larger, its recall from the third).
    pub measured: Vec<Measured>,
    /// The third size measured again on whole neighbourhoods of the table
    /// (the rows nearest a few seed rows, among all its rows), where the
    /// uniform sample met the recall target: where they found clearly
    /// less, theirs is the prediction's recall.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub neighbourhoods: Option<Measured>,
    /// Whether `neighbourhoods` is a part of them only, which ruled the
    /// setting out: a search visits a larger share of its smaller graph,
    /// so its recall, the prediction's, is an upper bound of the whole's.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub recall_at_most: bool,
    pub predicted: Prediction,
}

/// How the plan searches a table.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Pick {
    /// No index: exact search is predicted to meet the latency target.
    Exact { predicted_query_ms: f64 },
    /// An index with these options (`candidate` indexes `candidates`).
    Index {
        candidate: usize,
        /// Whether it meets the recall and latency targets (else it is the
        /// best recall measured, and the report says so).
        meets_targets: bool,
    },
    /// No index: no candidate is predicted to reach the recall target, and
    /// an exact search is predicted within a few times the latency target.
    ExactForRecall { predicted_query_ms: f64 },
    /// Options forced by `--index-options` (or the global index flags),
    /// not measured.
    Forced { options: String },
    /// Forced: no index.
    ForcedExact,
}

/// The plan of one native table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TablePlan {
    pub table: String,
    /// Rows the table will hold.
    pub rows: u64,
    /// Rows holding the same vector as another row of the table.
    pub identical_vectors: u64,
    /// Milliseconds per exact search per row of the table (a scan).
    pub exact_ms_per_row: f64,
    pub candidates: Vec<Candidate>,
    /// libSQL's default options (an index of `candidates`), for comparison.
    pub default_candidate: Option<usize>,
    pub pick: Pick,
}

/// The plan of every native table, with the targets it was made for.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct IndexPlan {
    pub target_recall: f64,
    pub max_query_ms: f64,
    pub tables: Vec<TablePlan>,
    /// Bytes per second the builds were predicted to read their tables
    /// from the disk at (measured: the database does not fit in memory);
    /// absent where the tables were predicted cached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cold_read_rate: Option<f64>,
}

impl IndexPlan {
    /// The plan's predicted build seconds and index bytes, over every table
    /// (an index forced without measurement counts as nothing).
    pub fn totals(&self) -> (f64, u64) {
        let mut seconds = 0.0;
        let mut bytes = 0;
        for t in &self.tables {
            if let Pick::Index { candidate, .. } = t.pick {
                seconds += t.candidates[candidate].predicted.build_seconds;
                bytes += t.candidates[candidate].predicted.index_bytes;
            }
        }
        (seconds, bytes)
    }
}

/// What a freshly built, planned index measured on its own table, and what
/// the run did with it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BuiltRecall {
    pub table: String,
    /// The index's options (empty: libSQL's defaults).
    pub options: String,
    /// The over-fetch recorded: the plan's, or for a scan index short of
    /// the target, the larger one that measured better.
    pub overfetch: u32,
    pub planned_overfetch: u32,
    /// Held-out rows searched.
    pub queries: u64,
    /// The run's recall target.
    pub target_recall: f64,
    /// recall@10 the plan predicted at the table's size.
    pub predicted_recall: f64,
    /// recall@10 measured: the rows' own neighbours found, the row left out.
    pub measured_recall: f64,
    /// Mean milliseconds of a search through the index, and of an exact
    /// search of the table.
    pub index_query_ms: f64,
    pub exact_query_ms: f64,
    pub outcome: RecallOutcome,
}

/// What the run did with a built index after measuring it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RecallOutcome {
    /// It meets the recall target (within the measure's noise): kept.
    Met,
    /// Clearly short, and an exact search is fast enough: the index was
    /// dropped, and the table is searched exactly (recall 1).
    SearchedExactly,
    /// Clearly short, and an exact search too slow: the index is kept (the
    /// fastest search the table has), its measured recall recorded.
    BelowTarget,
    /// Clearly short, an exact search too slow, and a 1-bit scan: dropped
    /// for the table's 8-bit scan, built and measured next (its own entry
    /// follows).
    GaveWay,
}
