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
use std::time::{Duration, Instant};

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
        load: Slice::FULL_RANGE,
        rows: RowSplit { k: 0, n: 1 },
    };

    /// Process `k` of `n` equal shares.
    pub fn k_of_n(k: u64, n: u64) -> Result<Share, String> {
        let rows = RowSplit::new(k, n)?;
        let load = Slice::new(k as f64 / n as f64, (k + 1) as f64 / n as f64)?;
        Ok(Share { load, rows })
    }

    /// This process's part of an iteration budget of `total`: shares whose
    /// slices tile `[0, 1)` get parts that add up to `total` exactly. In
    /// the closed model (`peak_users` given) the budget follows the users
    /// the slice holds, so a slice that holds none of them gets none of it;
    /// in the open model it follows the slice's width, as arrivals do.
    pub fn iterations(&self, total: u64, peak_users: Option<u64>) -> u64 {
        let part = |x: f64| -> u64 {
            match peak_users {
                Some(0) => 0,
                Some(peak) => {
                    let below = (0..peak).filter(|u| position(*u) < bound(x)).count() as u128;
                    let below = if x >= 1.0 { peak as u128 } else { below };
                    (total as u128 * below / peak as u128) as u64
                }
                None if x >= 1.0 => total,
                None => (x * total as f64).floor() as u64,
            }
        };
        part(self.load.to).saturating_sub(part(self.load.from))
    }

    /// Checks what the constructors check, for a share built by hand.
    pub fn check(&self) -> Result<(), String> {
        Slice::new(self.load.from, self.load.to)?;
        RowSplit::new(self.rows.k, self.rows.n)?;
        Ok(())
    }
}

/// The most users [`cuts_for_users`] places cuts between; beyond it the
/// positions are spread evenly enough that the asked cuts hold their share.
const MAX_PLACED_USERS: u64 = 1 << 20;

/// Moves each cut of `[0, 1)` (increasing) to lie between the positions of
/// users `0..users`, so that the slices between the cuts hold, at that many
/// users, the asked share of them, rounded. The positions are spread evenly
/// only over many numbers: three slices of a third each hold 2, 1 and 0 of
/// three users, where moved cuts hold 1, 1 and 1.
pub fn cuts_for_users(cuts: &[f64], users: u64) -> Vec<f64> {
    if users == 0 || users > MAX_PLACED_USERS {
        return cuts.to_vec();
    }
    let mut positions: Vec<u64> = (0..users).map(position).collect();
    positions.sort_unstable();
    let scale = 18_446_744_073_709_551_616.0_f64;
    cuts.iter()
        .map(|&cut| {
            let index = (cut.clamp(0.0, 1.0) * users as f64).round() as usize;
            match index {
                0 => 0.0,
                i if i >= positions.len() => 1.0,
                i => {
                    let (below, above) = (positions[i - 1], positions[i]);
                    (below / 2 + above / 2) as f64 / scale
                }
            }
        })
        .collect()
}

/// Where user or arrival number `n` of the whole scenario lies in the unit
/// interval, scaled to `u64`: 2^64 / golden ratio apart, so consecutive
/// numbers land far apart and any run of them covers the interval evenly.
fn position(n: u64) -> u64 {
    n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A point of the unit interval scaled to `u64` (`as` saturates).
fn bound(x: f64) -> u64 {
    (x * 18_446_744_073_709_551_616.0) as u64
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
    /// All of it.
    pub const FULL_RANGE: Slice = Slice { from: 0.0, to: 1.0 };

    pub fn new(from: f64, to: f64) -> Result<Slice, String> {
        // NaN fails every comparison, so it is refused too.
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
        // The top of the interval is closed, so that the largest position
        // belongs to the last slice.
        let at = position(n);
        at >= bound(self.from) && (self.to >= 1.0 || at < bound(self.to))
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
    /// On a cache line of its own: every thread reads it for every
    /// arrival, and its neighbours are written as often.
    generation: CacheLine<AtomicU64>,
}

/// A value alone on its cache line.
#[derive(Debug, Default)]
#[repr(align(64))]
struct CacheLine<T>(T);

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
            generation: CacheLine(AtomicU64::new(0)),
        }
    }

    /// Changes the slice from `at` since the start (by default, a moment
    /// ahead of now). `at` must leave the generator threads that moment to
    /// see the change; a coordinator gives every process the same `at`.
    /// Returns when the change takes effect.
    pub fn set(
        &self,
        start: Instant,
        at: Option<Duration>,
        slice: Slice,
    ) -> Result<Duration, String> {
        let mut history = self.lock();
        // Read under the lock, so no thread can see a later change first.
        let earliest = start.elapsed() + CHANGE_LEAD;
        let from = at.unwrap_or(earliest);
        if from < earliest {
            return Err(format!(
                "a share change must take effect at least {CHANGE_LEAD:?} ahead: \
                 asked for {from:?} after the start, and it is {:?} now",
                earliest - CHANGE_LEAD
            ));
        }
        // A change planned for later than this one is replaced by it.
        history.retain(|(at, _)| *at < from);
        history.push((from, slice));
        self.generation.0.fetch_add(1, Ordering::Release);
        Ok(from)
    }

    pub fn generation(&self) -> u64 {
        self.generation.0.load(Ordering::Acquire)
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

    /// Every slice the process has had or will have.
    pub fn slices(&self) -> impl Iterator<Item = Slice> + '_ {
        self.0.iter().map(|(_, slice)| *slice)
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
        let cut = |from, to| Share {
            load: Slice::new(from, to).unwrap(),
            ..Share::FULL
        };
        for total in [0, 1, 7, 100, 12_345] {
            for peak in [None, Some(1), Some(3), Some(10), Some(1000)] {
                let (a, b) = (cut(0.0, 0.3), cut(0.3, 1.0));
                assert_eq!(a.iterations(total, peak) + b.iterations(total, peak), total);
                let tenths: u64 = (0..10)
                    .map(|k| Share::k_of_n(k, 10).unwrap().iterations(total, peak))
                    .sum();
                assert_eq!(tenths, total, "{total} over {peak:?} users");
            }
        }
    }

    #[test]
    fn a_slice_without_users_gets_no_budget() {
        // Users 0..10 leave [0.1, 0.2) empty.
        let empty = Share::k_of_n(1, 10).unwrap();
        assert!((0..10).all(|u| !empty.load.contains(u)));
        assert_eq!(empty.iterations(100, Some(10)), 0);
        assert!(empty.iterations(100, None) > 0, "arrivals still fall in it");
    }

    #[test]
    fn moved_cuts_give_each_slice_its_share_of_few_users() {
        for users in 1..=40u64 {
            for parts in 1..=5u64 {
                let cuts: Vec<f64> = (1..parts).map(|k| k as f64 / parts as f64).collect();
                let moved = cuts_for_users(&cuts, users);
                let bounds: Vec<f64> = [0.0].into_iter().chain(moved).chain([1.0]).collect();
                let held: Vec<u64> = bounds
                    .windows(2)
                    .map(|w| {
                        let slice = Slice::new(w[0], w[1]).unwrap();
                        (0..users).filter(|&n| slice.contains(n)).count() as u64
                    })
                    .collect();
                assert_eq!(held.iter().sum::<u64>(), users);
                let (least, most) = (held.iter().min().unwrap(), held.iter().max().unwrap());
                assert!(most - least <= 1, "{users} users in {parts}: {held:?}");
            }
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
    fn changes_take_effect_shortly_ahead_or_when_asked() {
        let start = Instant::now();
        let state = ShareState::new(Slice::new(0.0, 1.0).unwrap());
        let half = Slice::new(0.0, 0.5).unwrap();
        let from = state.set(start, None, half).unwrap();
        assert!(from >= CHANGE_LEAD);
        let t = state.timeline();
        assert_eq!(t.at(from - Duration::from_nanos(1)).to, 1.0);
        assert_eq!(t.at(from).to, 0.5);
        assert_eq!(state.generation(), 1);
        // An agreed instant far enough ahead is kept as given...
        let at = Duration::from_secs(3600);
        assert_eq!(state.set(start, Some(at), Slice::NONE), Ok(at));
        // ...one too soon is refused, and one before a planned change
        // replaces it.
        assert!(state.set(start, Some(Duration::ZERO), half).is_err());
        let sooner = Duration::from_secs(60);
        state.set(start, Some(sooner), Slice::FULL_RANGE).unwrap();
        let t = state.timeline();
        assert_eq!(t.at(at).to, 1.0);
        assert_eq!(t.slices().count(), 3);
    }
}
