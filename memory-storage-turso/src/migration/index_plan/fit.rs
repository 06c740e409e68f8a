//! From two sample sizes to the table's size, and the pick. A DiskANN
//! insert searches the graph built so far, so its cost grows with the
//! graph (about with its logarithm): build time is fitted as
//! `a + b·ln(n)` through the two sizes, never assumed constant. A search's
//! latency is the larger size's: its beam (`search_l`) is fixed.
//!
//! Recall falls faster. A search visits about `search_l` nodes whatever
//! the table's size, so the share of true neighbours it misses grows like
//! a power of the size: measured on uniform 384-dimension vectors with
//! `float8` neighbours, 0 missed at 2,000 rows, 2.8% at 8,000, 33% at
//! 70,000 (exponent 1.1 between the last two). The miss rate is fitted as
//! `c·n^α` through the two sizes, `α` between [`ALPHA_MIN`] and
//! [`ALPHA_MAX`]; a size where nothing was missed counts as half a miss
//! of the queries' neighbours, so a sample too small to show a miss still
//! predicts one at a table many times larger. Pure functions, tested here.

use super::super::report::{Candidate, Measured, Pick, Prediction};
use crate::schema::ScanBits;

/// `y(n) = a + b·ln(n)` through two points; `b` clamped to `[lo, hi]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogFit {
    a: f64,
    b: f64,
}

impl LogFit {
    fn through(n1: f64, y1: f64, n2: f64, y2: f64, lo: f64, hi: f64) -> LogFit {
        let b = if n2 > n1 {
            ((y2 - y1) / (n2 / n1).ln()).clamp(lo, hi)
        } else {
            0.0
        };
        LogFit {
            a: y2 - b * n2.ln(),
            b,
        }
    }

    fn at(&self, n: f64) -> f64 {
        self.a + self.b * n.max(1.0).ln()
    }
}

/// Slowest growth of the miss rate with the table's size (a sample that
/// missed nothing is not evidence that a table 100× larger will not).
pub(crate) const ALPHA_MIN: f64 = 0.5;
/// Fastest growth credited (two noisy small sizes may suggest more).
pub(crate) const ALPHA_MAX: f64 = 2.0;

/// recall@10 at `n` rows from two measured sizes, `neighbours` compared
/// at each (queries × 10).
fn recall_at(small: &Measured, large: &Measured, n: f64, neighbours: usize) -> f64 {
    let floor = 0.5 / neighbours.max(1) as f64;
    let miss = |m: &Measured| (1.0 - m.recall).max(floor);
    let (n1, n2) = (small.rows as f64, large.rows as f64);
    let alpha = if n2 > n1 {
        ((miss(large) / miss(small)).ln() / (n2 / n1).ln()).clamp(ALPHA_MIN, ALPHA_MAX)
    } else {
        ALPHA_MIN
    };
    let at = miss(large) * (n.max(n2) / n2).powf(alpha);
    // Never above what the larger size measured.
    (1.0 - at).clamp(0.0, large.recall)
}

/// What the two measurements predict for a table of `rows` rows;
/// `neighbours` is the number of true neighbours each recall was
/// measured over (queries × 10).
pub(crate) fn predict(
    small: &Measured,
    large: &Measured,
    rows: u64,
    neighbours: usize,
) -> Prediction {
    let (n1, n2, n) = (small.rows as f64, large.rows as f64, rows as f64);
    let build = LogFit::through(
        n1,
        small.build_ms_per_row,
        n2,
        large.build_ms_per_row,
        0.0,
        f64::INFINITY,
    );
    Prediction {
        // What is measured and fitted is the mean cost per row of a build
        // from empty (a mean of `a' + b·ln i` over `i ≤ n` is itself of
        // the form `a + b·ln n`): the build of `n` rows is `n` times it.
        build_seconds: (n * build.at(n)).max(0.0) / 1000.0,
        index_bytes: (large.bytes_per_row * n) as u64,
        // A search visits about `search_l` nodes whatever the table's
        // size, and a sample of fewer rows than that is searched whole:
        // the difference between two such sizes is not growth. Fitted
        // through 150 and 300 rows of 1,536 dimensions, latency came out
        // 4.3× and 1.5× the built index's (204.8 ms for 48.0; 24.0 for
        // 16.0); the 300 rows alone measured 44.0 and 10.3 ms.
        query_ms: large.query_ms,
        recall: recall_at(small, large, n, neighbours),
    }
}

/// How much lower whole neighbourhoods must measure than the uniform
/// sample to stand for the table's recall: two measures of 100 queries
/// differ by about this much. On uniform vectors the two measured within
/// it (0.950 against 0.947 on 9,882 rows of 1,536 dimensions, float8;
/// the built index found 0.964 with over-fetch 4); on clustered ones the
/// neighbourhoods found 0.12–0.35 where the uniform sample found 0.96–1.0
/// and the built indexes 0.29–0.83.
pub(crate) const NEIGHBOURHOOD_NOISE: f64 = 0.03;

/// What a setting measured at three sizes predicts: build time, bytes
/// and search latency as [`predict`] from the two larger (the lever to the
/// table's size is the shortest), but the latency of the larger of the
/// two that searched with the table's `search_l`, and the recall measured
/// at the third with the `search_l` scaled down to it, which stands for
/// the table's (never above what the smaller sizes found); or what whole
/// `neighbourhoods` of the table found, when they were measured and found
/// clearly less ([`NEIGHBOURHOOD_NOISE`]).
pub(crate) fn predict_validated(
    measured: &[Measured],
    neighbourhoods: Option<&Measured>,
    rows: u64,
) -> Prediction {
    let [_, large, third, ..] = measured else {
        return Prediction {
            build_seconds: 0.0,
            index_bytes: 0,
            query_ms: 0.0,
            recall: 0.0,
        };
    };
    let uniform = third.recall.min(large.recall);
    Prediction {
        query_ms: large.query_ms,
        recall: match neighbourhoods {
            Some(n) if n.recall < uniform - NEIGHBOURHOOD_NOISE => n.recall,
            _ => uniform,
        },
        ..predict(large, third, rows, 1)
    }
}

/// Whether whole neighbourhoods that found `neighbourhoods` rule a
/// setting out before its uniform validating build: clearly below the
/// target, they stand for the table whatever that build would find (see
/// [`predict_validated`]: their figure stands unless it is within the
/// noise of the uniform one, and then that one is below the target too).
pub(crate) fn rules_out(neighbourhoods: &Measured, target_recall: f64) -> bool {
    neighbourhoods.recall < target_recall - NEIGHBOURHOOD_NOISE
}

/// What a setting ruled out by whole neighbourhoods predicts: their
/// recall, and the rest as the two sample sizes predicted it.
pub(crate) fn predict_ruled_out(two_sizes: &Prediction, neighbourhoods: &Measured) -> Prediction {
    Prediction {
        recall: neighbourhoods.recall,
        ..two_sizes.clone()
    }
}

/// The targets a pick must meet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Targets {
    pub recall: f64,
    pub max_query_ms: f64,
}

/// When no index is predicted to reach the recall target, an exact search
/// (recall 1) is planned if it is predicted within this many times the
/// latency target: slower searches that find what they should, rather
/// than fast ones that miss.
pub(crate) const EXACT_FALLBACK: f64 = 4.0;

/// How far above the recall target a scan must be predicted to count as
/// reaching it. The check after the build raises a scan's over-fetch on
/// any measure below the target itself, in 64 queries, and two measures
/// differ by about [`NEIGHBOURHOOD_NOISE`]: a scan predicted within it
/// is raised as often as not, past the latency target where its search
/// was near it. On 100,000 mixed rows the 1-bit scan of
/// `embeddings_384` was predicted at 0.969 and 30.4 ms (over-fetch 256),
/// and raised to 512 for 0.981 and 61.7 ms, where the 8-bit scan,
/// predicted at 1.000 and 32.9 ms, had searched in 37.6 ms at 1.000. (A
/// scan's prediction also errs high by up to about 0.02 there: see
/// `measure::Scaled::scan_share`.)
pub(crate) const SCAN_MARGIN: f64 = NEIGHBOURHOOD_NOISE;

/// Whether `c` is predicted to reach `target` (a scan: with
/// [`SCAN_MARGIN`] above it, up to a recall of 1).
fn reaches(c: &Candidate, target: f64) -> bool {
    let required = match ScanBits::from_options(&c.options) {
        Some(_) => (target + SCAN_MARGIN).min(target.max(1.0)),
        None => target,
    };
    c.predicted.recall >= required
}

/// The plan's pick: no index when an exact search of `rows` rows is
/// predicted within the latency target; else the cheapest candidate to
/// build (then the smallest) that meets both targets; else the fastest
/// search of those that reach the recall within [`EXACT_FALLBACK`] times
/// the latency target (a scan reaches the recall with [`SCAN_MARGIN`]
/// above it; recall is what a search must have; a latency a
/// little past the target is the lesser miss, as for an exact search);
/// else an exact search within that; else the best recall of the
/// searches within the latency target, if any is (a scan of millions of
/// rows reaches any recall, in seconds), unless that recall is below
/// [`NO_SEARCH_BELOW`] and a slower search reaches the target: then the
/// fastest of those.
pub(crate) fn pick(
    rows: u64,
    exact_ms_per_row: f64,
    candidates: &[Candidate],
    targets: Targets,
) -> Pick {
    let exact_ms = exact_ms_per_row * rows as f64;
    if exact_ms <= targets.max_query_ms || candidates.is_empty() {
        return Pick::Exact {
            predicted_query_ms: exact_ms,
        };
    }
    let meets =
        |c: &Candidate| reaches(c, targets.recall) && c.predicted.query_ms <= targets.max_query_ms;
    let cheapest = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| meets(c))
        .min_by(|(_, a), (_, b)| {
            a.predicted
                .build_seconds
                .total_cmp(&b.predicted.build_seconds)
                .then(a.predicted.index_bytes.cmp(&b.predicted.index_bytes))
        });
    if let Some((i, _)) = cheapest {
        return Pick::Index {
            candidate: i,
            meets_targets: true,
        };
    }
    // On 100,000 mixed rows only scans of `embeddings_1536` reached the
    // recall, at 59.6 to 72.3 ms predicted: the best recall (all 1.000)
    // picked the slowest, over-fetch 16.
    let fallback_ms = EXACT_FALLBACK * targets.max_query_ms;
    let fastest_reaching = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| reaches(c, targets.recall) && c.predicted.query_ms <= fallback_ms)
        .min_by(|(_, a), (_, b)| {
            a.predicted.query_ms.total_cmp(&b.predicted.query_ms).then(
                a.predicted
                    .build_seconds
                    .total_cmp(&b.predicted.build_seconds),
            )
        });
    if let Some((i, _)) = fastest_reaching {
        return Pick::Index {
            candidate: i,
            meets_targets: false,
        };
    }
    // Any index left that reaches the recall is slower still.
    if exact_ms <= fallback_ms {
        return Pick::ExactForRecall {
            predicted_query_ms: exact_ms,
        };
    }
    let fast_enough = |c: &Candidate| c.predicted.query_ms <= targets.max_query_ms;
    let any_fast_enough = candidates.iter().any(fast_enough);
    let best = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| !any_fast_enough || fast_enough(c))
        .max_by(|(_, a), (_, b)| {
            a.predicted.recall.total_cmp(&b.predicted.recall).then(
                b.predicted
                    .build_seconds
                    .total_cmp(&a.predicted.build_seconds),
            )
        });
    // Fast but finding fewer than half of the true neighbours, it is no
    // search at all, whatever it costs to build: on 1,000,000 mixed rows
    // the best of `embeddings_384` within 50 ms was libSQL's defaults at
    // 0.11, for 4.3 h and 53 GiB, beside a scan index reaching 0.985 in
    // 348 ms for 4 s and 0.3 GiB. A slow search that finds what it should
    // is then planned, the fastest of those.
    let slow_but_right = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| reaches(c, targets.recall))
        .min_by(|(_, a), (_, b)| a.predicted.query_ms.total_cmp(&b.predicted.query_ms));
    let candidate = match (best, slow_but_right) {
        (Some((_, b)), Some((i, _))) if b.predicted.recall < NO_SEARCH_BELOW => i,
        (Some((i, _)), _) => i,
        (None, _) => 0,
    };
    Pick::Index {
        candidate,
        meets_targets: false,
    }
}

/// A recall@10 below which a fast index is not planned while a slower
/// search reaches the target: it finds fewer than half of the true
/// neighbours.
pub(crate) const NO_SEARCH_BELOW: f64 = 0.5;

/// The next setting to measure at a third, larger size: the cheapest to
/// build, not yet measured there, that could still meet the targets —
/// the larger sample found what the recall target asks — and costs no
/// more than the current pick. A few misses between two small sizes are
/// noise as often as a trend, and the fastest credited growth would rule
/// such a setting out for good (a drop of 0.02 raised to the power 2
/// leaves nothing at 100× the size): it is measured rather than ruled
/// out. The pick itself comes last.
pub(crate) fn next_to_validate<'a>(
    candidates: &'a [Candidate],
    pick: &Pick,
    validated: &std::collections::BTreeSet<String>,
    targets: Targets,
) -> Option<&'a str> {
    let cost = |c: &Candidate| (c.predicted.build_seconds, c.predicted.index_bytes);
    let ceiling = match pick {
        Pick::Index {
            candidate,
            meets_targets: true,
        } => candidates.get(*candidate).map(cost),
        _ => None,
    };
    candidates
        .iter()
        .filter(|c| !validated.contains(&c.options))
        .filter(|c| {
            c.measured.len() == 2
                && c.measured[1].recall >= targets.recall
                && c.predicted.query_ms <= targets.max_query_ms
        })
        .filter(|c| ceiling.is_none_or(|top| cost(c) <= top))
        .min_by(|a, b| {
            a.predicted
                .build_seconds
                .total_cmp(&b.predicted.build_seconds)
                .then(a.predicted.index_bytes.cmp(&b.predicted.index_bytes))
        })
        .map(|c| c.options.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(rows: u64, build: f64, query: f64, recall: f64) -> Measured {
        Measured {
            rows,
            build_ms_per_row: build,
            bytes_per_row: 1000.0,
            query_ms: query,
            recall,
            scaled_search_l: None,
            reranked: None,
        }
    }

    #[test]
    fn neighbourhoods_rule_a_setting_out_only_where_no_uniform_figure_could_meet_the_target() {
        let (small, large) = (measured(400, 10.0, 2.0, 1.0), measured(800, 12.0, 3.0, 1.0));
        let target = 0.95;
        for n in [0.1, 0.5, 0.9, 0.919, 0.92, 0.93, 0.95, 0.99] {
            let near = measured(8000, 15.0, 0.5, n);
            // Whatever the uniform validating build would have found, the
            // prediction it would have made with these neighbourhoods.
            let could_meet = (0..=100).any(|u| {
                let third = measured(8000, 16.0, 0.5, f64::from(u) / 100.0);
                let three = [small.clone(), large.clone(), third];
                predict_validated(&three, Some(&near), 80_000).recall >= target
            });
            assert_eq!(rules_out(&near, target), !could_meet, "neighbourhoods {n}");
        }
        let two = predict(&small, &large, 80_000, 1000);
        let near = measured(8000, 15.0, 0.5, 0.3);
        let p = predict_ruled_out(&two, &near);
        assert_eq!(p.recall, 0.3);
        assert_eq!(
            (p.build_seconds, p.index_bytes),
            (two.build_seconds, two.index_bytes)
        );
    }

    #[test]
    fn a_validated_setting_takes_its_recall_from_the_scaled_search_and_its_build_from_the_two_larger_sizes(
    ) {
        let small = measured(400, 10.0, 2.0, 1.0);
        let large = measured(800, 12.0, 3.0, 0.99);
        let mut third = measured(8000, 16.0, 0.5, 0.62);
        third.scaled_search_l = Some(20);
        let three = [small.clone(), large.clone(), third];
        let p = predict_validated(&three, None, 80_000);
        assert_eq!(p.recall, 0.62);
        // Whole neighbourhoods that found clearly less lower it; more does not
        // raise it, and changes nothing else.
        let mut near = measured(8000, 30.0, 9.0, 0.2);
        near.scaled_search_l = Some(20);
        let lowered = predict_validated(&three, Some(&near), 80_000);
        assert_eq!(lowered.recall, 0.2);
        assert_eq!(lowered.build_seconds, p.build_seconds);
        assert_eq!(lowered.query_ms, p.query_ms);
        near.recall = 0.9;
        assert_eq!(predict_validated(&three, Some(&near), 80_000).recall, 0.62);
        // Nor does a little less: two measures differ by that much.
        near.recall = 0.62 - NEIGHBOURHOOD_NOISE + 0.001;
        assert_eq!(predict_validated(&three, Some(&near), 80_000).recall, 0.62);
        // Mean 12 ms at 800 rows, 16 at 8,000: 20 at 80,000, 1,600 s.
        assert!((p.build_seconds - 1600.0).abs() < 1.0, "{p:?}");
        // The third size searched a smaller beam: its latency is not used.
        assert!((p.query_ms - predict(&small, &large, 80_000, 1).query_ms).abs() < 1e-9);
        assert_eq!(p.index_bytes, 80_000_000);
    }

    fn candidate(build: f64, recall: f64, query: f64) -> Candidate {
        let m = measured(1000, build, query, recall);
        Candidate {
            options: String::new(),
            overfetch: 1,
            measured: vec![m.clone(), m],
            neighbourhoods: None,
            recall_at_most: false,
            predicted: Prediction {
                build_seconds: build,
                index_bytes: 1,
                query_ms: query,
                recall,
            },
        }
    }

    #[test]
    fn a_scan_predicted_within_the_checks_noise_of_the_target_does_not_count_as_reaching_it() {
        let targets = Targets {
            recall: 0.95,
            max_query_ms: 50.0,
        };
        let scan = |bits: ScanBits, recall, query| Candidate {
            options: bits.options().into(),
            ..candidate(0.3, recall, query)
        };
        // The 100,000 mixed rows' `embeddings_384`: the 1-bit scan at
        // over-fetch 256 beside the 8-bit scan at 4 (its bytes fewer).
        let mut one_bit = scan(ScanBits::Float1Bit, 0.969, 30.4);
        one_bit.predicted.index_bytes = 0;
        let eight_bit = scan(ScanBits::Float8, 1.0, 32.9);
        let both = [one_bit.clone(), eight_bit.clone()];
        assert_eq!(
            pick(70_000, 0.01, &both, targets),
            Pick::Index {
                candidate: 1,
                meets_targets: true
            }
        );
        // Clear of the margin, the smaller index is the pick.
        one_bit.predicted.recall = 0.99;
        assert_eq!(
            pick(70_000, 0.01, &[one_bit, eight_bit.clone()], targets),
            Pick::Index {
                candidate: 0,
                meets_targets: true
            }
        );
        // A DiskANN setting has no margin: no raise follows its check.
        let diskann = candidate(0.3, 0.951, 10.0);
        assert_eq!(
            pick(70_000, 0.01, &[diskann], targets),
            Pick::Index {
                candidate: 0,
                meets_targets: true
            }
        );
        // Near a recall of 1 the margin stops at 1: a scan finding every
        // neighbour still reaches a target of 0.99.
        let strict = Targets {
            recall: 0.99,
            ..targets
        };
        assert_eq!(
            pick(70_000, 0.01, &[eight_bit], strict),
            Pick::Index {
                candidate: 0,
                meets_targets: true
            }
        );
    }

    #[test]
    fn a_cost_growing_with_the_graph_is_extrapolated_above_linear() {
        // 2 ms per row at 1,000 rows, 3 ms at 2,000: b = 1/ln 2.
        let p = predict(
            &measured(1000, 2.0, 1.0, 1.0),
            &measured(2000, 3.0, 1.2, 0.98),
            100_000,
            1000,
        );
        let linear = 3.0 * 100_000.0 / 1000.0;
        assert!(p.build_seconds > linear, "{p:?}");
        // The measures are means over a build from empty: the mean at
        // 100,000 rows is 3 + ln(50)/ln(2) ≈ 8.64 ms, the build 864 s.
        assert!((p.build_seconds - 864.4).abs() < 0.5, "{p:?}");
        // 0.05% → 2% missed from 1,000 to 2,000 rows is faster than
        // ALPHA_MAX: 2% · 50² at 100,000 rows, nothing found.
        assert_eq!(p.recall, 0.0, "recall falls: {p:?}");
        assert_eq!(p.query_ms, 1.2, "the larger sample's: {p:?}");
        assert_eq!(p.index_bytes, 100_000_000);
    }

    #[test]
    fn recall_never_rises_and_costs_never_fall_with_size() {
        let p = predict(
            &measured(1000, 3.0, 2.0, 0.9),
            &measured(2000, 2.0, 1.0, 0.95),
            2000,
            1000,
        );
        assert!((p.recall - 0.95).abs() < 1e-9, "{p:?}");
        let p = predict(
            &measured(1000, 3.0, 2.0, 0.9),
            &measured(2000, 2.0, 1.0, 0.95),
            1_000_000,
            1000,
        );
        assert!(p.recall < 0.95, "{p:?}");
        assert!((p.query_ms - 1.0).abs() < 1e-9, "{p:?}");
        assert!((p.build_seconds - 2000.0).abs() < 1.0, "{p:?}");
    }

    #[test]
    fn the_miss_rate_grows_as_a_power_of_the_size() {
        // What uniform 384-dimension vectors measured with float8
        // neighbours: 2.8% missed at 8,000 rows, 0 of 500 at 2,000; 33% at
        // 70,000 rows. Predicted from the two small sizes: at least the
        // 33%, as ALPHA_MAX allows.
        let p = predict(
            &measured(2000, 5.0, 10.0, 1.0),
            &measured(8000, 5.8, 10.0, 0.972),
            70_000,
            500,
        );
        assert!(p.recall <= 0.67, "{p:?}");
        // Nothing missed at either size: the floor, growing with
        // ALPHA_MIN, still predicts a few misses far away, not none.
        let clean = |n| measured(n, 5.0, 10.0, 1.0);
        let near = predict(&clean(800), &clean(3200), 3200, 1000);
        let far = predict(&clean(800), &clean(3200), 3_200_000, 1000);
        assert!(near.recall > 0.999, "{near:?}");
        assert!(far.recall < 0.99 && far.recall > 0.9, "{far:?}");
    }

    #[test]
    fn small_tables_are_searched_exactly_large_ones_through_the_cheapest_index_that_meets_the_targets(
    ) {
        let targets = Targets {
            recall: 0.95,
            max_query_ms: 20.0,
        };
        let candidates = [
            candidate(100.0, 1.0, 5.0),
            candidate(10.0, 0.97, 2.0),
            candidate(5.0, 0.60, 1.0),
            candidate(8.0, 0.99, 30.0),
        ];
        assert!(matches!(
            pick(1000, 0.001, &candidates, targets),
            Pick::Exact { .. }
        ));
        assert_eq!(
            pick(1_000_000, 0.001, &candidates, targets),
            Pick::Index {
                candidate: 1,
                meets_targets: true
            }
        );
        let poor = [candidate(5.0, 0.6, 1.0), candidate(7.0, 0.8, 1.0)];
        assert_eq!(
            pick(1_000_000, 0.001, &poor, targets),
            Pick::Index {
                candidate: 1,
                meets_targets: false
            }
        );
        // Only searches past the latency target reach the recall: the
        // fastest of them, not the best recall.
        let slow = [
            candidate(5.0, 0.99, 80.0),
            candidate(5.0, 1.0, 90.0),
            candidate(5.0, 0.96, 60.0),
            candidate(1.0, 0.9, 10.0),
        ];
        assert_eq!(
            pick(1_000_000, 0.001, &slow, targets),
            Pick::Index {
                candidate: 2,
                meets_targets: false
            }
        );
        // A search that reaches the recall only far past the latency
        // target (a scan of millions of rows) is not planned: the best
        // recall within the target is.
        let huge = [candidate(5.0, 0.6, 10.0), candidate(0.1, 1.0, 3_000.0)];
        assert_eq!(
            pick(100_000_000, 0.001, &huge, targets),
            Pick::Index {
                candidate: 0,
                meets_targets: false
            }
        );
        // The best within the target finds too few: the search that
        // reaches the recall is planned, however slow (1,000,000 mixed
        // rows: libSQL's defaults at 0.11 against a scan at 348 ms).
        let hopeless = [
            candidate(15_531.0, 0.11, 11.0),
            candidate(4.0, 0.985, 613.0),
            candidate(4.0, 0.985, 348.0),
            candidate(1_575.0, 0.03, 3.2),
        ];
        assert_eq!(
            pick(700_000, 0.002, &hopeless, targets),
            Pick::Index {
                candidate: 2,
                meets_targets: false
            }
        );
        // None reaches it: the best recall within the target, however low.
        assert_eq!(
            pick(
                700_000,
                0.002,
                &[hopeless[0].clone(), hopeless[3].clone()],
                targets
            ),
            Pick::Index {
                candidate: 0,
                meets_targets: false
            }
        );
        // No index reaches the recall: an exact search within 4× the
        // latency target is planned instead.
        assert_eq!(
            pick(50_000, 0.001, &poor, targets),
            Pick::ExactForRecall {
                predicted_query_ms: 50.0
            }
        );
    }

    #[test]
    fn a_cheaper_setting_ruled_out_by_a_steep_fit_is_measured_before_the_pick() {
        let targets = Targets {
            recall: 0.95,
            max_query_ms: 20.0,
        };
        let with = |options: &str, build: f64, small: f64, large: f64| {
            let mut c = candidate(build, 0.0, 1.0);
            c.options = options.into();
            c.measured = vec![
                measured(400, build, 1.0, small),
                measured(800, build, 1.0, large),
            ];
            c.predicted = predict(&c.measured[0], &c.measured[1], 100_000, 1000);
            c
        };
        let candidates = [
            // Cheap, 0.02 lost between the sizes: the steep fit says 0.
            with("cheap", 1.0, 1.0, 0.98),
            // Dear, nothing lost: the pick.
            with("dear", 5.0, 1.0, 1.0),
            // Cheapest, but no growth credible enough can save it.
            with("hopeless", 0.5, 0.8, 0.6),
        ];
        assert_eq!(candidates[0].predicted.recall, 0.0);
        let picked = pick(100_000, 1.0, &candidates, targets);
        assert_eq!(
            picked,
            Pick::Index {
                candidate: 1,
                meets_targets: true
            }
        );
        let mut done = std::collections::BTreeSet::new();
        let next = |done: &std::collections::BTreeSet<String>| {
            next_to_validate(&candidates, &picked, done, targets).map(String::from)
        };
        assert_eq!(next(&done).as_deref(), Some("cheap"));
        done.insert("cheap".into());
        assert_eq!(next(&done).as_deref(), Some("dear"));
        done.insert("dear".into());
        assert_eq!(next(&done), None);
    }
}
