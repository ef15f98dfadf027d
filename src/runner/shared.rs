//! State shared by every user of a run, across generator threads: the
//! iteration budget, the data feeders' cursors, the share, and when the
//! soft stop came.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use minijinja::Value;

use super::share::{RowSplit, Share, ShareState};
use crate::plan::{FeedMode, Plan};

pub struct Shared {
    /// Flow iterations still to start, when the run is iteration-bound.
    iterations_left: Option<AtomicU64>,
    /// When the soft stop came, in microseconds since the start (0: not yet).
    stopped_at_us: AtomicU64,
    /// Next row of each feeder (for `unique`: this process's next row).
    cursors: Vec<AtomicUsize>,
    /// A `unique` feeder has run out: no iteration can start.
    data_exhausted: AtomicBool,
    /// Which `unique` rows are this process's.
    rows: RowSplit,
    /// The part of the load this process runs, over time.
    pub share: ShareState,
    /// How long after the run's start this process joined it (zero
    /// unless it joined late).
    pub began: Duration,
    /// Which flow each user runs (see [`flow_order`]).
    flow_order: Vec<u32>,
}

impl Shared {
    /// `began`: how long after the run's start this process joined it.
    pub fn new(plan: &Plan, share: &Share, began: Duration) -> Self {
        let closed_peak = (!plan.load.is_open()).then_some(plan.load.users);
        Shared {
            iterations_left: plan
                .load
                .iterations
                .map(|total| AtomicU64::new(share.iterations(total, closed_peak))),
            stopped_at_us: AtomicU64::new(0),
            cursors: plan.feeders.iter().map(|_| AtomicUsize::new(0)).collect(),
            data_exhausted: AtomicBool::new(false),
            rows: share.rows,
            share: ShareState::joining(began, share.load),
            began,
            flow_order: flow_order(plan),
        }
    }

    /// The flow user `user` runs.
    pub fn flow_for(&self, user: u64) -> usize {
        match self.flow_order.len() {
            0 => 0,
            n => self.flow_order[(user % n as u64) as usize] as usize,
        }
    }

    /// Records the soft stop's instant (the first one counts).
    pub fn mark_stopped(&self, start: Instant) {
        let us = (start.elapsed().as_micros() as u64).max(1);
        let _ = self
            .stopped_at_us
            .compare_exchange(0, us, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// When the soft stop came, since the start; `None` while running.
    pub fn stopped_at(&self) -> Option<Duration> {
        match self.stopped_at_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Claims one iteration of the budget; false when it is spent.
    pub fn take_iteration(&self) -> bool {
        match &self.iterations_left {
            None => true,
            Some(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }

    /// Whether no iteration can start any more: the budget is spent or a
    /// `unique` feeder ran out.
    pub fn used_up(&self) -> bool {
        self.data_exhausted.load(Ordering::Relaxed)
            || self
                .iterations_left
                .as_ref()
                .is_some_and(|left| left.load(Ordering::Relaxed) == 0)
    }

    /// The row feeder `i` hands out next; `None` when a unique feeder is spent.
    pub fn next_row(&self, plan: &Plan, i: usize) -> Option<Value> {
        let feeder = &plan.feeders[i];
        let n = feeder.rows.len();
        let index = match feeder.mode {
            FeedMode::Sequential => self.cursors[i].fetch_add(1, Ordering::Relaxed) % n,
            FeedMode::Random => rand::random_range(0..n),
            FeedMode::Unique => {
                let next = self.cursors[i].fetch_add(1, Ordering::Relaxed);
                match self.rows.row(next as u64, n) {
                    Some(row) => row,
                    None => {
                        self.data_exhausted.store(true, Ordering::Relaxed);
                        return None;
                    }
                }
            }
        };
        Some(feeder.rows[index].clone())
    }
}

/// Above this much work (users × flows), users are dealt to flows in
/// blocks instead of interleaved.
const INTERLEAVE_WORK: u64 = 50_000_000;

/// The flow of each user number, in proportion to the flows' weights and
/// interleaved (smooth weighted round robin: weights 3 and 1 give
/// A, A, B, A), so that any first `n` users hold each flow's share of `n`
/// to within one user. Three users of flows weighted 3 : 1 run two and
/// one, not three and none. The order repeats with a period of the weights'
/// sum, so only that much (or the peak user count, if smaller) is kept.
fn flow_order(plan: &Plan) -> Vec<u32> {
    let weights: Vec<u64> = plan.flows.iter().map(|f| f.weight).collect();
    interleave(&weights, plan.load.users.max(1))
}

/// The first `min(sum of weights, users)` picks of a smooth weighted round
/// robin over `weights`.
fn interleave(weights: &[u64], users: u64) -> Vec<u32> {
    let total: u64 = weights.iter().sum();
    let len = total.min(users);
    if len.saturating_mul(weights.len() as u64) > INTERLEAVE_WORK {
        // Blocks: flow i takes the next `weight` numbers of each period.
        let len = total.min(INTERLEAVE_WORK) as usize;
        let mut order = Vec::with_capacity(len);
        for (i, w) in weights.iter().enumerate() {
            order.extend(std::iter::repeat_n(i as u32, *w as usize).take(len - order.len()));
        }
        return order;
    }
    let mut current = vec![0i128; weights.len()];
    (0..len)
        .map(|_| {
            for (c, w) in current.iter_mut().zip(weights) {
                *c += *w as i128;
            }
            let (pick, _) = current
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
                .expect("a plan has at least one flow");
            current[pick] -= total as i128;
            pick as u32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::interleave;

    #[test]
    fn flows_are_interleaved_by_weight() {
        assert_eq!(interleave(&[3, 1], 3), vec![0, 0, 1]);
        assert_eq!(interleave(&[3, 1], 100), vec![0, 0, 1, 0]);
        assert_eq!(interleave(&[1, 1, 1], 2), vec![0, 1]);
        // Any first n users hold each flow's share of n within one user.
        let weights = [5, 3, 2];
        let order = interleave(&weights, 1000);
        for n in 1..=order.len() {
            for (flow, w) in weights.iter().enumerate() {
                let got = order[..n].iter().filter(|f| **f as usize == flow).count() as f64;
                let share = n as f64 * *w as f64 / 10.0;
                assert!(
                    (got - share).abs() < 1.0 + 1e-9,
                    "{n} users, flow {flow}: {got}"
                );
            }
        }
    }
}
