//! Intended arrival instants of the open model.
//!
//! Arrival `k` is due at the time `t` where the rate's integral reaches `k`
//! (so the first is due at 0). Within a linear stage the integral is a
//! quadratic, solved exactly, so instants are computed against the run's
//! absolute clock and never drift the way accumulated sleeps do.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Shape;

/// How [`drive`] ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Driven {
    /// Arrivals handed over.
    pub handed: u64,
    /// The arrival (its number and when it was due) that was taken from
    /// the schedule but not handed over, because `stop` fired or `on_due`
    /// declined it. The rest of the schedule is still in the iterator.
    pub left: Option<(u64, Duration)>,
}

/// Waits for each arrival's instant (counted from `start`) and calls
/// `on_due` with its number and instant, until the arrivals end, `stop`
/// fires, or `on_due` returns false. Arrivals already due are handed over
/// at once, in a batch, without touching the timer; so at high rates one
/// timer wake serves every arrival due by then.
pub async fn drive(
    arrivals: &mut Arrivals,
    start: Instant,
    stop: &CancellationToken,
    mut on_due: impl FnMut(u64, Instant) -> bool,
) -> Driven {
    let mut handed = 0;
    loop {
        let n = arrivals.next_index();
        let Some(at) = arrivals.next() else {
            return Driven { handed, left: None };
        };
        let due = start + at;
        if due > Instant::now() {
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = stop.cancelled() => {}
            }
        }
        if stop.is_cancelled() || !on_due(n, due) {
            return Driven {
                handed,
                left: Some((n, at)),
            };
        }
        handed += 1;
    }
}

pub struct Arrivals {
    shape: Shape,
    stage: usize,
    /// Start of the current stage, in seconds.
    stage_start: f64,
    /// Arrivals due before the current stage (the integral at its start).
    before: f64,
    /// The rate at the start of the current stage.
    from: f64,
    next: u64,
    /// Shifts every arrival by this fraction of one (0 ≤ offset < 1), so
    /// threads sharing a rate interleave instead of firing together.
    offset: f64,
    end: Option<f64>,
}

impl Arrivals {
    /// The number of the arrival `next` returns next (the first is 0).
    pub fn next_index(&self) -> u64 {
        self.next
    }

    /// Skips every arrival due before `t`, without computing them.
    pub fn skip_to(&mut self, t: Duration) {
        let due_before = (self.shape.integral(t) - self.offset).ceil().max(0.0);
        self.next = self.next.max(due_before as u64);
    }

    /// Arrivals of a rate `shape`, none at or after `end`.
    pub fn new(shape: Shape, end: Option<Duration>, offset: f64) -> Self {
        Arrivals {
            from: shape.start,
            shape,
            stage: 0,
            stage_start: 0.0,
            before: 0.0,
            next: 0,
            offset,
            end: end.map(|e| e.as_secs_f64()),
        }
    }
}

impl Iterator for Arrivals {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let need = self.next as f64 + self.offset;
        let t = loop {
            let remaining = need - self.before;
            match self.shape.stages.get(self.stage) {
                Some(stage) => {
                    let d = stage.duration.as_secs_f64();
                    let to = stage.target;
                    let area = (self.from + to) / 2.0 * d;
                    if d > 0.0 && remaining < area {
                        let slope = (to - self.from) / d;
                        let x = if slope.abs() < 1e-12 {
                            remaining / self.from
                        } else {
                            // from·x + slope·x²/2 = remaining
                            let disc = (self.from * self.from + 2.0 * slope * remaining).max(0.0);
                            (disc.sqrt() - self.from) / slope
                        };
                        break self.stage_start + x.clamp(0.0, d);
                    }
                    self.before += area;
                    self.from = to;
                    self.stage_start += d;
                    self.stage += 1;
                }
                None if self.from > 0.0 => break self.stage_start + remaining / self.from,
                None => return None,
            }
        };
        if self.end.is_some_and(|end| t >= end) {
            return None;
        }
        self.next += 1;
        // Beyond what a Duration holds, no arrival is ever due.
        Duration::try_from_secs_f64(t).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Pattern, Stage};
    use super::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    #[test]
    fn a_constant_rate_spaces_arrivals_evenly_and_counts_exactly() {
        let shape = Pattern::Constant {
            value: 1000.0,
            duration: Some(s(10.0)),
        }
        .shape();
        let arrivals: Vec<Duration> = Arrivals::new(shape, Some(s(10.0)), 0.0).collect();
        assert_eq!(arrivals.len(), 10_000);
        assert_eq!(arrivals[0], Duration::ZERO);
        assert!((arrivals[1].as_secs_f64() - 0.001).abs() < 1e-9);
        assert!((arrivals[9_999].as_secs_f64() - 9.999).abs() < 1e-9);
    }

    #[test]
    fn a_ramp_schedules_its_integral() {
        let shape = Pattern::Ramp {
            peak: 100.0,
            up: s(10.0),
            down: s(0.0),
            duration: s(20.0),
        }
        .shape();
        let arrivals: Vec<Duration> = Arrivals::new(shape.clone(), Some(s(20.0)), 0.0).collect();
        // 500 while ramping up, 1000 while holding.
        assert_eq!(arrivals.len(), 1500);
        let in_first_5s = arrivals.iter().filter(|t| **t < s(5.0)).count();
        assert_eq!(in_first_5s as f64, shape.integral(s(5.0)).ceil());
        assert!(arrivals.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn offset_threads_interleave_and_together_match_the_total() {
        let shape = Pattern::Constant {
            value: 100.0,
            duration: Some(s(1.0)),
        }
        .shape();
        let half = shape.scaled(0.5);
        let a: Vec<Duration> = Arrivals::new(half.clone(), Some(s(1.0)), 0.0).collect();
        let b: Vec<Duration> = Arrivals::new(half, Some(s(1.0)), 0.5).collect();
        assert_eq!(a.len() + b.len(), 100);
        assert!((b[0].as_secs_f64() - 0.01).abs() < 1e-9);
        assert!((a[1].as_secs_f64() - 0.02).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn drive_hands_over_every_arrival_on_time() {
        let shape = Pattern::Constant {
            value: 100.0,
            duration: Some(s(10.0)),
        }
        .shape();
        let start = Instant::now();
        let stop = CancellationToken::new();
        let mut late = Duration::ZERO;
        let mut seen = Vec::new();
        let handed = drive(
            &mut Arrivals::new(shape, Some(s(10.0)), 0.0),
            start,
            &stop,
            |_, due| {
                late = late.max(Instant::now() - due);
                seen.push(due - start);
                true
            },
        )
        .await
        .handed;
        assert_eq!(handed, 1000);
        assert_eq!(seen.len(), 1000);
        assert_eq!(seen[10], s(0.1));
        // The paused clock auto-advances to each deadline, so every
        // arrival is handed over exactly when due.
        assert_eq!(late, Duration::ZERO);
        assert_eq!(Instant::now() - start, s(9.99));
    }

    #[tokio::test(start_paused = true)]
    async fn drive_stops_on_cancel_and_when_told() {
        let shape = Pattern::Constant {
            value: 1000.0,
            duration: None,
        }
        .shape();
        let stop = CancellationToken::new();
        let start = Instant::now();
        let mut n = 0;
        let driven = drive(
            &mut Arrivals::new(shape.clone(), None, 0.0),
            start,
            &stop,
            |_, _| {
                n += 1;
                n < 50
            },
        )
        .await;
        assert_eq!(driven.handed, 49);
        // The declined arrival is the 50th, due at 49 ms.
        assert_eq!(driven.left, Some((49, s(0.049))));
        stop.cancel();
        let driven = drive(
            &mut Arrivals::new(shape, None, 0.0),
            Instant::now() + s(1.0),
            &stop,
            |_, _| true,
        )
        .await;
        assert_eq!(driven.handed, 0);
        assert_eq!(driven.left, Some((0, Duration::ZERO)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_generator_catches_up_in_a_batch() {
        let shape = Pattern::Constant {
            value: 1000.0,
            duration: Some(s(1.0)),
        }
        .shape();
        let stop = CancellationToken::new();
        // Start "half a second ago": 500 arrivals are already due.
        let start = Instant::now() - s(0.5);
        let mut batch = 0;
        let mut first_wait = None;
        drive(
            &mut Arrivals::new(shape, Some(s(1.0)), 0.0),
            start,
            &stop,
            |_, due| {
                if due <= start + s(0.4995) {
                    batch += 1;
                } else if first_wait.is_none() {
                    first_wait = Some(Instant::now() - start);
                }
                true
            },
        )
        .await;
        assert_eq!(batch, 500);
        assert_eq!(first_wait, Some(s(0.5)));
    }

    #[test]
    fn zero_rate_stages_pause_arrivals() {
        let shape = Shape {
            start: 0.0,
            stages: vec![
                Stage {
                    duration: s(5.0),
                    target: 0.0,
                },
                Stage {
                    duration: Duration::ZERO,
                    target: 10.0,
                },
                Stage {
                    duration: s(1.0),
                    target: 10.0,
                },
            ],
        };
        let arrivals: Vec<Duration> = Arrivals::new(shape, Some(s(6.0)), 0.0).collect();
        assert_eq!(arrivals.len(), 10);
        assert_eq!(arrivals[0], s(5.0));
    }

    #[test]
    fn an_unbounded_rate_keeps_going_and_a_zero_rate_ends() {
        let mut forever = Arrivals::new(Shape::constant(2.0, None), None, 0.0);
        assert_eq!(forever.nth(1000), Some(s(500.0)));
        let mut none = Arrivals::new(Shape::constant(0.0, None), None, 0.0);
        assert_eq!(none.next(), None);
    }
}
