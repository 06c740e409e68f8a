//! Time left in the vector-index phase. A DiskANN insert searches the
//! graph built so far, so an insert costs more as the table's index grows
//! (about with the logarithm of its size) and more with the dimension: a
//! rate in rows per second, taken early, promises too little time. Work is
//! counted here in units of `dimension · ln(n + N0)` per insert at graph
//! size `n`; the seconds per unit come from the batches of the last
//! [`WINDOW`], so a cost that grows faster than the model (a page cache
//! outgrown) is caught up with as it shows.

use std::collections::VecDeque;

/// Graph size added inside the logarithm (the first inserts are not free).
const N0: f64 = 64.0;
/// The recent batches the rate is taken from, at least two.
const WINDOW: f64 = 30.0;

/// `Σ ln(n + N0)` for `n` in `from..to`, as the integral.
fn log_work(from: f64, to: f64) -> f64 {
    let f = |x: f64| {
        let y = x + N0;
        y * y.ln() - y
    };
    if to <= from {
        0.0
    } else {
        f(to) - f(from)
    }
}

/// One table of the phase.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Table {
    /// Rows already in its index (a resumed build).
    pub start: u64,
    /// Rows to index.
    pub rows: u64,
    pub dimension: usize,
}

impl Table {
    fn work(&self, from: u64, to: u64) -> f64 {
        self.dimension as f64 * log_work(from as f64, to as f64)
    }
}

/// The phase's estimate, fed the batches as they commit.
#[derive(Debug, Clone)]
pub(crate) struct IndexEta {
    tables: Vec<Table>,
    /// Rows indexed so far per table.
    done: Vec<u64>,
    /// Recent batches: (seconds, work units).
    recent: VecDeque<(f64, f64)>,
}

impl IndexEta {
    pub(crate) fn new(tables: Vec<Table>) -> IndexEta {
        let done = vec![0; tables.len()];
        IndexEta {
            tables,
            done,
            recent: VecDeque::new(),
        }
    }

    /// `rows` more rows of table `i` indexed in `seconds`.
    pub(crate) fn batch(&mut self, i: usize, rows: u64, seconds: f64) {
        let Some(t) = self.tables.get(i).copied() else {
            return;
        };
        let from = t.start + self.done[i];
        self.done[i] += rows;
        self.recent.push_back((seconds, t.work(from, from + rows)));
        while self.recent.len() > 2 && self.recent.iter().skip(1).map(|b| b.0).sum::<f64>() > WINDOW
        {
            self.recent.pop_front();
        }
    }

    /// Seconds left, once a batch has been timed.
    pub(crate) fn seconds_left(&self) -> Option<f64> {
        let (secs, work) = self
            .recent
            .iter()
            .fold((0.0, 0.0), |(s, w), b| (s + b.0, w + b.1));
        if work <= 0.0 {
            return None;
        }
        let left: f64 = self
            .tables
            .iter()
            .zip(&self.done)
            .map(|(t, d)| {
                let now = t.start + (*d).min(t.rows);
                t.work(now, t.start + t.rows)
            })
            .sum();
        Some(secs / work * left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-insert cost `dim · (1 + 0.3 ln n)` µs: a graph that grows.
    fn cost(dim: usize, n: u64) -> f64 {
        dim as f64 * (1.0 + 0.3 * ((n + 1) as f64).ln()) * 1e-6
    }

    /// Runs the build to `stop_at` of its time: (estimate, truth, what a
    /// rows-per-second rate would say).
    fn simulate(tables: &[Table], batch: u64, stop_at: f64) -> (f64, f64, f64) {
        let mut eta = IndexEta::new(tables.to_vec());
        let total: f64 = tables
            .iter()
            .map(|t| {
                (t.start..t.start + t.rows)
                    .map(|n| cost(t.dimension, n))
                    .sum::<f64>()
            })
            .sum();
        let all_rows: u64 = tables.iter().map(|t| t.rows).sum();
        let (mut elapsed, mut done) = (0.0, 0u64);
        for (i, t) in tables.iter().enumerate() {
            let mut n = t.start;
            while n < t.start + t.rows {
                let rows = batch.min(t.start + t.rows - n);
                let secs: f64 = (n..n + rows).map(|k| cost(t.dimension, k)).sum();
                eta.batch(i, rows, secs);
                elapsed += secs;
                done += rows;
                n += rows;
                if elapsed >= stop_at * total {
                    let linear = elapsed / done as f64 * (all_rows - done) as f64;
                    return (eta.seconds_left().unwrap(), total - elapsed, linear);
                }
            }
        }
        unreachable!("stop_at is below 1")
    }

    #[test]
    fn early_in_a_growing_build_the_estimate_is_near_the_truth() {
        let tables = [Table {
            start: 0,
            rows: 100_000,
            dimension: 384,
        }];
        let (said, truth, linear) = simulate(&tables, 500, 0.08);
        assert!(
            (said / truth - 1.0).abs() < 0.1,
            "said {said}, truth {truth}"
        );
        // A rows-per-second rate at the same point says too little.
        assert!(linear < 0.85 * truth, "linear {linear}, truth {truth}");
    }

    #[test]
    fn tables_of_other_dimensions_and_resumed_ones_are_counted() {
        let tables = [
            Table {
                start: 20_000,
                rows: 30_000,
                dimension: 384,
            },
            Table {
                start: 0,
                rows: 20_000,
                dimension: 1536,
            },
        ];
        for at in [0.1, 0.3, 0.7] {
            let (said, truth, _) = simulate(&tables, 1000, at);
            assert!(
                (said / truth - 1.0).abs() < 0.2,
                "at {at}: said {said}, truth {truth}"
            );
        }
    }

    #[test]
    fn nothing_timed_is_no_estimate() {
        let eta = IndexEta::new(vec![Table {
            start: 0,
            rows: 10,
            dimension: 3,
        }]);
        assert_eq!(eta.seconds_left(), None);
    }
}
