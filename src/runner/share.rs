//! Shares: which part of a scenario's load this process runs.
//!
//! A distributed run splits one scenario over several processes; each runs
//! a [`Share`]. The load part is a slice `[from, to)` of the unit interval.
//! Every user number and every arrival number of the whole scenario has a
//! fixed position in that interval (a golden-ratio Weyl sequence, so
//! consecutive numbers spread evenly over it), and a process runs exactly
//! the users and arrivals whose position falls in its slice. Slices that
//! tile `[0, 1)` therefore add up to the scenario exactly: every user and
//! every arrival belongs to one process, whatever the slices' sizes, with
//! no rounding at a boundary. A slice of one half gets half of any run of
//! consecutive numbers, give or take a few.
//!
//! The iteration budget is divided the same way, by the slice's share of
//! it, and `unique` data rows by a separate k-of-n split (process k of n
//! takes rows k, k+n, k+2n, …), so no two processes ever use the same row.
//! The budget and the row split are fixed at the start of a run; the load
//! slice can change while it runs ([`ShareState`]), taking effect from a
//! moment shortly ahead so every generator thread applies it to the same
//! users and arrivals.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::schedule::Shape;

/// How far ahead a share change takes effect: far enough that every
/// generator thread has seen it before the first arrival it applies to is
/// due, so the threads agree on which arrivals are this process's.
const CHANGE_LEAD: Duration = Duration::from_millis(100);

/// The part of the scenario's load one process runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    /// The load: users (closed model) or arrivals (open model) whose
    /// position lies in this slice.
    pub load: Slice,
    /// `unique` data rows: this process takes rows `k`, `k+n`, `k+2n`, …
    pub rows: RowSplit,
}

impl Default for Share {
    fn default() -> Self {
        Share::FULL
    }
}

impl Share {
    /// The whole scenario: one process runs everything.
    pub const FULL: Share = Share {
        load: Slice { from: 0.0, to: 1.0 },
        rows: RowSplit { k: 0, n: 1 },
    };

    /// Process `k` of `n` equal shares.
    pub fn k_of_n(k: u64, n: u64) -> Result<Share, String> {
        let rows = RowSplit::new(k, n)?;
        let load = Slice::new(k as f64 / n as f64, (k + 1) as f64 / n as f64)?;
        Ok(Share { load, rows })
    }

    /// This process's part of an iteration budget of `total`: shares whose
    /// slices tile `[0, 1)` get parts that add up to `total` exactly.
    pub fn iterations(&self, total: u64) -> u64 {
        let at = |f: f64| (f * total as f64).floor() as u64;
        let upper = if self.load.to >= 1.0 {
            total
        } else {
            at(self.load.to)
        };
        upper.saturating_sub(at(self.load.from))
    }
}

/// A slice `[from, to)` of the unit interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slice {
    pub from: f64,
    pub to: f64,
}

impl Slice {
    /// No load at all.
    pub const NONE: Slice = Slice { from: 0.0, to: 0.0 };

    pub fn new(from: f64, to: f64) -> Result<Slice, String> {
        if !(0.0..=1.0).contains(&from) || !(0.0..=1.0).contains(&to) || from > to {
            return Err(format!(
                "a share is a slice [from, to) with 0 <= from <= to <= 1, not [{from}, {to})"
            ));
        }
        Ok(Slice { from, to })
    }

    /// The fraction of the load: `to - from`.
    pub fn fraction(&self) -> f64 {
        self.to - self.from
    }

    /// Whether user or arrival number `n` of the whole scenario is in this
    /// slice. The same arithmetic in every process, so slices that tile
    /// the interval partition the numbers exactly.
    pub fn contains(&self, n: u64) -> bool {
        // 2^64 / golden ratio: consecutive numbers land far apart, and any
        // run of them covers the interval evenly.
        let position = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // `as` saturates, and the top of the interval is closed so that
        // the largest position belongs to the last slice.
        let bound = |f: f64| (f * 18_446_744_073_709_551_616.0) as u64;
        position >= bound(self.from) && (self.to >= 1.0 || position < bound(self.to))
    }
}

/// Process `k` of `n` for `unique` data rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowSplit {
    pub k: u64,
    pub n: u64,
}

impl RowSplit {
    pub fn new(k: u64, n: u64) -> Result<RowSplit, String> {
        if n == 0 || k >= n {
            return Err(format!(
                "a data split is process k of n with k < n, not {k} of {n}"
            ));
        }
        Ok(RowSplit { k, n })
    }

    /// The `i`-th row this process takes, if the feeder has it.
    pub fn row(&self, i: u64, rows: usize) -> Option<usize> {
        let index = i.checked_mul(self.n)?.checked_add(self.k)?;
        usize::try_from(index).ok().filter(|r| *r < rows)
    }
}

/// The load slice of a running process and its history, shared by the
/// generator threads. Changes take effect from a moment shortly ahead, so
/// whether an arrival is this process's depends only on when it was due.
#[derive(Debug)]
pub struct ShareState {
    /// `(effective from, slice)`, in order; the first entry is at zero.
    history: Mutex<Vec<(Duration, Slice)>>,
    /// Bumped on every change, so threads re-read the history only then.
    generation: AtomicU64,
}

impl ShareState {
    pub fn new(slice: Slice) -> Self {
        Self::joining(Duration::ZERO, slice)
    }

    /// A process that joins a run `began` after its start: what was due
    /// before that was never its to run.
    pub fn joining(began: Duration, slice: Slice) -> Self {
        let mut history = vec![(Duration::ZERO, Slice::NONE)];
        if began.is_zero() {
            history[0].1 = slice;
        } else {
            history.push((began, slice));
        }
        ShareState {
            history: Mutex::new(history),
            generation: AtomicU64::new(0),
        }
    }

    /// Changes the slice from `now + CHANGE_LEAD` (time since the start);
    /// returns when it takes effect.
    pub fn set(&self, now: Duration, slice: Slice) -> Duration {
        let mut history = self.lock();
        let from = now + CHANGE_LEAD;
        // A change not yet in effect is replaced, not stacked. (The first
        // entry, at zero, always stays: `from` is later.)
        history.retain(|(at, _)| *at < from);
        history.push((from, slice));
        self.generation.fetch_add(1, Ordering::Release);
        from
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A copy of the history, for a thread to look up without the lock.
    pub fn timeline(&self) -> Timeline {
        Timeline(self.lock().clone())
    }

    /// The slice of the most recent change (in effect now or shortly).
    pub fn latest(&self) -> Slice {
        self.lock().last().expect("the history is never empty").1
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Duration, Slice)>> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The slices a process ran, and from when.
#[derive(Debug, Clone)]
pub struct Timeline(Vec<(Duration, Slice)>);

impl Timeline {
    /// The slice in effect at `t` since the start.
    pub fn at(&self, t: Duration) -> Slice {
        let i = self.0.partition_point(|(from, _)| *from <= t);
        self.0[i.saturating_sub(1)].1
    }

    /// This process's part of a rate `shape` due by `upto`: each slice's
    /// fraction of the arrivals due while it was in effect.
    pub fn planned(&self, shape: &Shape, upto: Duration) -> f64 {
        let ends = self.0.iter().skip(1).map(|(from, _)| *from).chain([upto]);
        self.0
            .iter()
            .zip(ends)
            .map(|((from, slice), to)| {
                let (from, to) = ((*from).min(upto), to.min(upto));
                slice.fraction() * (shape.integral(to) - shape.integral(from))
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiling_slices_partition_every_number_exactly() {
        let cuts = [0.0, 0.3, 0.3, 0.5, 0.77, 1.0];
        let slices: Vec<Slice> = cuts
            .windows(2)
            .map(|w| Slice::new(w[0], w[1]).unwrap())
            .collect();
        for n in (0..100_000).chain(u64::MAX - 1000..=u64::MAX) {
            let owners = slices.iter().filter(|s| s.contains(n)).count();
            assert_eq!(owners, 1, "number {n} belongs to {owners} slices");
        }
    }

    #[test]
    fn a_slice_gets_its_fraction_of_any_run_of_numbers() {
        let s = Slice::new(0.3, 1.0).unwrap();
        for (start, len) in [(0u64, 10u64), (0, 1000), (12_345, 1000), (7, 100_000)] {
            let got = (start..start + len).filter(|n| s.contains(*n)).count() as f64;
            let want = 0.7 * len as f64;
            assert!((got - want).abs() <= 3.0, "{got} of {len}, want {want}");
        }
    }

    #[test]
    fn iteration_budgets_add_up() {
        for total in [0, 1, 7, 100, 12_345] {
            let a = Share {
                load: Slice::new(0.0, 0.3).unwrap(),
                ..Share::FULL
            };
            let b = Share {
                load: Slice::new(0.3, 1.0).unwrap(),
                ..Share::FULL
            };
            assert_eq!(a.iterations(total) + b.iterations(total), total);
            let thirds: u64 = (0..3)
                .map(|k| Share::k_of_n(k, 3).unwrap().iterations(total))
                .sum();
            assert_eq!(thirds, total);
        }
    }

    #[test]
    fn row_splits_are_disjoint_and_cover_the_rows() {
        let rows = 10;
        let mut seen = vec![0; rows];
        for k in 0..3 {
            let split = RowSplit::new(k, 3).unwrap();
            let mut i = 0;
            while let Some(r) = split.row(i, rows) {
                seen[r] += 1;
                i += 1;
            }
        }
        assert!(seen.iter().all(|n| *n == 1), "{seen:?}");
        assert!(RowSplit::new(3, 3).is_err());
        assert!(Slice::new(0.5, 0.2).is_err());
        assert!(Slice::new(-0.1, 0.2).is_err());
    }

    #[test]
    fn changes_take_effect_shortly_ahead() {
        let state = ShareState::new(Slice::new(0.0, 1.0).unwrap());
        let half = Slice::new(0.0, 0.5).unwrap();
        let from = state.set(Duration::from_secs(2), half);
        assert_eq!(from, Duration::from_secs(2) + CHANGE_LEAD);
        let t = state.timeline();
        assert_eq!(t.at(Duration::from_secs(2)).to, 1.0);
        assert_eq!(t.at(from).to, 0.5);
        assert_eq!(state.generation(), 1);
    }
}
