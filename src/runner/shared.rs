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
