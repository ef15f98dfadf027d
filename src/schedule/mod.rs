//! When to send: load shapes as functions of time.
//!
//! Every pattern (`constant`, `ramp`, `stages`, `spike`, `wave`, `random`,
//! `burst`) compiles to one [`Shape`]: a start value and a list of linear
//! stages. The value is the number of users in the closed model and the
//! arrival rate (iterations per second) in the open model. This module knows
//! nothing of HTTP: the runner asks it how many users should be active now,
//! and the open-model [`Arrivals`] iterator turns a rate shape into the
//! intended instants of every iteration.

mod arrivals;

use std::time::Duration;

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

pub use arrivals::{drive, Arrivals, Driven};

/// One linear piece: the value moves from the previous stage's target (or
/// the shape's start) to `target` over `duration`. A zero duration is a jump.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub target: f64,
}

/// A piecewise-linear function of time. After the last stage the value
/// stays at the last target (a run bound by iterations alone keeps going).
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub start: f64,
    pub stages: Vec<Stage>,
}

impl Shape {
    pub fn constant(value: f64, duration: Option<Duration>) -> Shape {
        Shape {
            start: value,
            stages: duration
                .map(|d| {
                    vec![Stage {
                        duration: d,
                        target: value,
                    }]
                })
                .unwrap_or_default(),
        }
    }

    /// The same shape with every value multiplied by `factor` (a share of
    /// the load for one of several threads or workers).
    pub fn scaled(&self, factor: f64) -> Shape {
        Shape {
            start: self.start * factor,
            stages: self
                .stages
                .iter()
                .map(|s| Stage {
                    duration: s.duration,
                    target: s.target * factor,
                })
                .collect(),
        }
    }

    /// The sum of the stages' durations.
    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// The highest value the shape reaches.
    pub fn peak(&self) -> f64 {
        self.stages
            .iter()
            .map(|s| s.target)
            .fold(self.start, f64::max)
    }

    /// The value at `t` since the start.
    pub fn value_at(&self, t: Duration) -> f64 {
        let mut from = self.start;
        let mut elapsed = Duration::ZERO;
        for stage in &self.stages {
            let end = elapsed + stage.duration;
            if t < end {
                let into = (t - elapsed).as_secs_f64();
                let frac = into / stage.duration.as_secs_f64();
                return from + (stage.target - from) * frac;
            }
            from = stage.target;
            elapsed = end;
        }
        from
    }

    /// The integral of the shape from 0 to `t`: for a rate, the number of
    /// arrivals due by `t`.
    pub fn integral(&self, t: Duration) -> f64 {
        let t = t.as_secs_f64();
        let mut from = self.start;
        let mut elapsed = 0.0;
        let mut sum = 0.0;
        for stage in &self.stages {
            let d = stage.duration.as_secs_f64();
            if t < elapsed + d {
                let x = t - elapsed;
                let slope = (stage.target - from) / d;
                return sum + from * x + slope * x * x / 2.0;
            }
            sum += (from + stage.target) / 2.0 * d;
            from = stage.target;
            elapsed += d;
        }
        sum + from * (t - elapsed)
    }
}

/// Which pattern, without its parameters: the one place that names the
/// patterns, for `pattern = "…"`, the summary and every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternKind {
    Constant,
    Ramp,
    Stages,
    Spike,
    Wave,
    Random,
    Burst,
}

impl PatternKind {
    /// Every pattern, in the order messages list them.
    pub const ALL: [PatternKind; 7] = [
        PatternKind::Constant,
        PatternKind::Ramp,
        PatternKind::Stages,
        PatternKind::Spike,
        PatternKind::Wave,
        PatternKind::Random,
        PatternKind::Burst,
    ];

    /// The name a scenario's `pattern = "…"` gives.
    pub fn name(self) -> &'static str {
        match self {
            PatternKind::Constant => "constant",
            PatternKind::Ramp => "ramp",
            PatternKind::Stages => "stages",
            PatternKind::Spike => "spike",
            PatternKind::Wave => "wave",
            PatternKind::Random => "random",
            PatternKind::Burst => "burst",
        }
    }
}

/// Pattern parameters, already validated by `plan`.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// `value` for `duration` (or forever, for an iteration-bound run).
    Constant {
        value: f64,
        duration: Option<Duration>,
    },
    /// 0 → `peak` over `up`, hold, `peak` → 0 over `down`; `duration` is the whole.
    Ramp {
        peak: f64,
        up: Duration,
        down: Duration,
        duration: Duration,
    },
    /// Explicit stages from 0.
    Stages(Vec<Stage>),
    /// `base`, then at `at` a rise to `peak` over `ramp`, held for `hold`,
    /// a fall back to `base` over `ramp`, and `base` to the end.
    Spike {
        base: f64,
        peak: f64,
        at: Duration,
        ramp: Duration,
        hold: Duration,
        duration: Duration,
    },
    /// `base + amplitude · sin(2πt / period)`, never below zero.
    Wave {
        base: f64,
        amplitude: f64,
        period: Duration,
        duration: Duration,
    },
    /// A random walk between `min` and `max`, a new target every `every`,
    /// reproducible from `seed` (xoshiro256++, a fixed, documented algorithm).
    Random {
        min: f64,
        max: f64,
        every: Duration,
        seed: u64,
        duration: Duration,
    },
    /// `base`, plus `extra` for `length` at the start of every `every`.
    Burst {
        base: f64,
        extra: f64,
        every: Duration,
        length: Duration,
        duration: Duration,
    },
}

/// Segments per wave period: fine enough that the linear pieces stay within
/// 2% of the sine's amplitude.
const WAVE_SEGMENTS: u32 = 16;

impl Pattern {
    pub fn kind(&self) -> PatternKind {
        match self {
            Pattern::Constant { .. } => PatternKind::Constant,
            Pattern::Ramp { .. } => PatternKind::Ramp,
            Pattern::Stages(_) => PatternKind::Stages,
            Pattern::Spike { .. } => PatternKind::Spike,
            Pattern::Wave { .. } => PatternKind::Wave,
            Pattern::Random { .. } => PatternKind::Random,
            Pattern::Burst { .. } => PatternKind::Burst,
        }
    }

    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// How many stages [`Pattern::shape`] would make, for the patterns
    /// whose count depends on their parameters (`None` for the others).
    pub fn stage_count(&self) -> Option<usize> {
        let pieces = |duration: Duration, step: Duration| {
            let step = step.as_secs_f64().max(1e-9);
            (duration.as_secs_f64() / step).ceil() as usize
        };
        match self {
            Pattern::Wave {
                period, duration, ..
            } => Some(pieces(*duration, *period / WAVE_SEGMENTS)),
            Pattern::Random {
                every, duration, ..
            } => Some(pieces(*duration, *every)),
            Pattern::Burst {
                every, duration, ..
            } => Some(4 * pieces(*duration, *every)),
            _ => None,
        }
    }

    /// The normalized stage list. Call [`Pattern::stage_count`] first:
    /// a tiny period over a long duration makes a huge list.
    pub fn shape(&self) -> Shape {
        let stage = |duration: Duration, target: f64| Stage { duration, target };
        match self.clone() {
            Pattern::Constant { value, duration } => Shape::constant(value, duration),
            Pattern::Ramp {
                peak,
                up,
                down,
                duration,
            } => {
                let hold = duration.saturating_sub(up + down);
                Shape {
                    start: 0.0,
                    stages: vec![stage(up, peak), stage(hold, peak), stage(down, 0.0)],
                }
            }
            Pattern::Stages(stages) => Shape { start: 0.0, stages },
            Pattern::Spike {
                base,
                peak,
                at,
                ramp,
                hold,
                duration,
            } => {
                let after = duration.saturating_sub(at + ramp + hold + ramp);
                Shape {
                    start: base,
                    stages: vec![
                        stage(at, base),
                        stage(ramp, peak),
                        stage(hold, peak),
                        stage(ramp, base),
                        stage(after, base),
                    ],
                }
            }
            Pattern::Wave {
                base,
                amplitude,
                period,
                duration,
            } => {
                // Never zero, or the loop below would not advance.
                let step = (period / WAVE_SEGMENTS).max(Duration::from_micros(1));
                let mut stages = Vec::new();
                let mut t = Duration::ZERO;
                while t < duration {
                    let d = step.min(duration - t);
                    t += d;
                    let phase = 2.0 * std::f64::consts::PI * t.as_secs_f64() / period.as_secs_f64();
                    stages.push(stage(d, (base + amplitude * phase.sin()).max(0.0)));
                }
                Shape {
                    start: base,
                    stages,
                }
            }
            Pattern::Random {
                min,
                max,
                every,
                seed,
                duration,
            } => {
                let every = every.max(Duration::from_micros(1));
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
                let mut unit = move || rng.random::<f64>();
                let span = max - min;
                let mut value = min + span * unit();
                let start = value;
                let mut stages = Vec::new();
                let mut t = Duration::ZERO;
                while t < duration {
                    let d = every.min(duration - t);
                    t += d;
                    // Each step moves at most a quarter of the range, so the
                    // walk wanders instead of jumping between extremes.
                    let delta = (unit() * 2.0 - 1.0) * span / 4.0;
                    value = (value + delta).clamp(min, max);
                    stages.push(stage(d, value));
                }
                Shape { start, stages }
            }
            Pattern::Burst {
                base,
                extra,
                every,
                length,
                duration,
            } => {
                let every = every.max(Duration::from_micros(1));
                let length = length.max(Duration::from_micros(1));
                let mut stages = Vec::new();
                let mut t = Duration::ZERO;
                while t < duration {
                    let on = length.min(duration - t);
                    stages.push(stage(Duration::ZERO, base + extra));
                    stages.push(stage(on, base + extra));
                    t += on;
                    let off = every.saturating_sub(length).min(duration - t);
                    if off > Duration::ZERO {
                        stages.push(stage(Duration::ZERO, base));
                        stages.push(stage(off, base));
                        t += off;
                    }
                }
                Shape {
                    start: base,
                    stages,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    #[test]
    fn constant_is_flat_and_integrates_to_rate_times_time() {
        let shape = Pattern::Constant {
            value: 100.0,
            duration: Some(s(10.0)),
        }
        .shape();
        assert_eq!(shape.value_at(s(3.0)), 100.0);
        assert_eq!(shape.duration(), s(10.0));
        assert!((shape.integral(s(10.0)) - 1000.0).abs() < 1e-9);
    }

    #[test]
    fn ramp_rises_holds_and_falls() {
        let shape = Pattern::Ramp {
            peak: 50.0,
            up: s(10.0),
            down: s(10.0),
            duration: s(40.0),
        }
        .shape();
        assert_eq!(shape.value_at(s(0.0)), 0.0);
        assert_eq!(shape.value_at(s(5.0)), 25.0);
        assert_eq!(shape.value_at(s(20.0)), 50.0);
        assert_eq!(shape.value_at(s(35.0)), 25.0);
        assert_eq!(shape.value_at(s(40.0)), 0.0);
        assert_eq!(shape.duration(), s(40.0));
        // 5 s at 25 on average up, 20 s at 50, 5 s average down.
        assert!((shape.integral(s(40.0)) - (250.0 + 1000.0 + 250.0)).abs() < 1e-6);
    }

    #[test]
    fn stages_interpolate_linearly() {
        let shape = Pattern::Stages(vec![
            Stage {
                duration: s(10.0),
                target: 10.0,
            },
            Stage {
                duration: s(10.0),
                target: 30.0,
            },
        ])
        .shape();
        assert_eq!(shape.value_at(s(5.0)), 5.0);
        assert_eq!(shape.value_at(s(15.0)), 20.0);
        assert_eq!(shape.value_at(s(100.0)), 30.0);
        assert_eq!(shape.peak(), 30.0);
    }

    #[test]
    fn spike_goes_from_base_to_peak_and_back() {
        let shape = Pattern::Spike {
            base: 5.0,
            peak: 50.0,
            at: s(10.0),
            ramp: s(2.0),
            hold: s(5.0),
            duration: s(30.0),
        }
        .shape();
        assert_eq!(shape.value_at(s(5.0)), 5.0);
        assert_eq!(shape.value_at(s(11.0)), 27.5);
        assert_eq!(shape.value_at(s(14.0)), 50.0);
        assert_eq!(shape.value_at(s(20.0)), 5.0);
        assert_eq!(shape.duration(), s(30.0));
        assert_eq!(shape.peak(), 50.0);
    }

    #[test]
    fn wave_follows_the_sine_closely() {
        let shape = Pattern::Wave {
            base: 100.0,
            amplitude: 50.0,
            period: s(16.0),
            duration: s(32.0),
        }
        .shape();
        assert_eq!(shape.duration(), s(32.0));
        for i in 0..320 {
            let t = i as f64 / 10.0;
            let exact = 100.0 + 50.0 * (2.0 * std::f64::consts::PI * t / 16.0).sin();
            assert!((shape.value_at(s(t)) - exact).abs() < 50.0 * 0.02, "t={t}");
        }
        // A full period integrates to base × period.
        assert!((shape.integral(s(16.0)) - 1600.0).abs() < 1e-6);
    }

    #[test]
    fn random_is_bounded_and_reproducible() {
        let pattern = Pattern::Random {
            min: 10.0,
            max: 20.0,
            every: s(1.0),
            seed: 42,
            duration: s(60.0),
        };
        let a = pattern.shape();
        assert_eq!(a, pattern.shape());
        assert!(a.stages.iter().all(|st| (10.0..=20.0).contains(&st.target)));
        assert_eq!(a.duration(), s(60.0));
        let other = Pattern::Random {
            min: 10.0,
            max: 20.0,
            every: s(1.0),
            seed: 7,
            duration: s(60.0),
        }
        .shape();
        assert_ne!(a, other);
    }

    #[test]
    fn burst_adds_extra_for_a_moment_every_period() {
        let shape = Pattern::Burst {
            base: 10.0,
            extra: 40.0,
            every: s(10.0),
            length: s(1.0),
            duration: s(30.0),
        }
        .shape();
        assert_eq!(shape.value_at(s(0.5)), 50.0);
        assert_eq!(shape.value_at(s(5.0)), 10.0);
        assert_eq!(shape.value_at(s(10.5)), 50.0);
        assert_eq!(shape.value_at(s(29.0)), 10.0);
        assert_eq!(shape.duration(), s(30.0));
        assert!((shape.integral(s(30.0)) - (300.0 + 3.0 * 40.0)).abs() < 1e-6);
    }
}
