//! `[load]` → [`LoadPlan`]: the model, and the pattern as a [`Shape`].
//!
//! Each pattern names the keys it reads; a key set in the file that the
//! chosen pattern does not read is an error, so a typo'd or misplaced
//! parameter is never silently ignored.

use std::time::Duration;

use super::{parse_duration, Compiler, Overrides};
use crate::diag::{Span, Spanned};
use crate::scenario::Load;
use crate::schedule::{Pattern, Shape, Stage};
use crate::units::fmt_duration;

/// Beyond this many users the run would exhaust file descriptors and
/// memory long before it measured anything.
const MAX_USERS: f64 = 1_000_000.0;
/// Beyond this arrival rate a single machine cannot keep up anyway.
const MAX_RATE: f64 = 10_000_000.0;
const DEFAULT_MAX_USERS: u64 = 100;
const DEFAULT_MAX_WAITING: u64 = 100_000;
const DEFAULT_GRACEFUL_STOP: Duration = Duration::from_secs(2);
const DEFAULT_CHANGE_EVERY: Duration = Duration::from_secs(5);
const DEFAULT_BURST_LENGTH: Duration = Duration::from_secs(1);
/// A pattern's stages are kept in memory and walked every 100 ms; beyond
/// this many, a period or interval is too short for the duration.
const MAX_STAGES: usize = 100_000;
/// Below one arrival in about 17 minutes, a rate is a mistake.
const MIN_RATE: f64 = 0.001;

#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    /// A number of concurrent users, each looping over its flow.
    Closed,
    /// Iterations arrive at a rate, whatever the target's speed.
    Open(OpenModel),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpenModel {
    /// At most this many iterations in flight (k6's maxVUs).
    pub max_users: u64,
    /// What an arrival does when every slot is busy.
    pub on_saturation: Saturation,
    /// At most this many arrivals wait for a slot; later ones are dropped.
    pub max_waiting: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saturation {
    /// Wait for a slot; the wait counts in the latency.
    Wait,
    /// Count the iteration as dropped.
    Drop,
}

#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub model: Model,
    pub pattern: Pattern,
    /// Users over time (closed) or arrivals per second over time (open).
    pub shape: Shape,
    /// User tasks to create: the shape's peak (closed) or `max_users` (open).
    pub users: u64,
    /// When the run ends, if it is time-bound.
    pub duration: Option<Duration>,
    /// Total flow iterations across all users.
    pub iterations: Option<u64>,
    /// How long in-flight requests may finish after the run stops.
    pub graceful_stop: Duration,
    /// The `random` pattern's seed.
    pub seed: Option<u64>,
}

impl LoadPlan {
    pub fn is_open(&self) -> bool {
        matches!(self.model, Model::Open(_))
    }
}

/// A numeric setting and where it came from (a flag has no span).
type Num = Option<(f64, Option<Span>)>;

impl Compiler<'_> {
    pub(super) fn load(&mut self, l: &Load, o: &Overrides) -> Option<LoadPlan> {
        let open = match (&o.rate, &l.model) {
            (Some(_), _) => true,
            (None, Some(m)) => match m.value.as_str() {
                "closed" => false,
                "open" => true,
                other => {
                    self.diags.error(
                        m.span.clone(),
                        format!("[load] model = \"{other}\" is unknown; expected \"closed\" (users) or \"open\" (arrival rate)"),
                    );
                    false
                }
            },
            (None, None) => l.rate.is_some(),
        };
        let from_flag = o.rate.is_some() || o.pattern.is_some();
        let (pattern_name, pattern_span) = match (&o.pattern, &l.pattern) {
            (Some(p), _) => (p.clone(), None),
            (None, Some(p)) => (p.value.clone(), Some(p.span.clone())),
            (None, None) if !l.stages.is_empty() => ("stages".to_string(), None),
            (None, None) => ("constant".to_string(), None),
        };
        let value_key = if open { "rate" } else { "users" };
        let known_pattern = [
            "constant", "ramp", "stages", "spike", "wave", "random", "burst",
        ]
        .contains(&pattern_name.as_str());
        if !known_pattern {
            let msg = format!(
                "pattern \"{pattern_name}\" is unknown; expected constant, ramp, stages, spike, wave, random or burst"
            );
            match pattern_span {
                Some(span) => self.diags.error(span, format!("[load] {msg}")),
                None => self.diags.error(None, format!("--pattern: {msg}")),
            }
        }
        // With an unknown pattern, the common settings are still checked
        // as for a constant load, so every other problem is reported too.
        let pattern_name = if known_pattern {
            pattern_name
        } else {
            "constant".to_string()
        };
        let reads: &[&str] = match pattern_name.as_str() {
            "constant" => &[value_key],
            "ramp" => &[value_key, "ramp_up", "ramp_down"],
            "stages" => &["stages"],
            "spike" => &["base", "peak", "spike_at", "spike_ramp", "spike_hold"],
            "wave" => &["base", "amplitude", "period"],
            "random" => &["min", "max", "change_every", "seed"],
            _ => &["base", "burst", "every", "burst_length"],
        };
        if known_pattern {
            self.unused_keys(l, reads, &pattern_name, open, from_flag);
        }

        let value_flag = if open {
            o.rate
        } else {
            o.users.map(|u| u as f64)
        };
        let value_file = if open {
            l.rate.clone()
        } else {
            l.users
                .clone()
                .map(|u| Spanned::new(u.value as f64, u.span))
        };
        let value: Num = match (value_flag, value_file) {
            (Some(v), _) => Some((v, None)),
            (None, Some(v)) if reads.contains(&value_key) => Some((v.value, Some(v.span))),
            _ => None,
        };
        if open && o.users.is_some() {
            self.diags.error(
                None,
                "--users applies to the closed model; the open model takes --rate and --max-users",
            );
        }
        if o.seed.is_some() && pattern_name != "random" {
            self.diags.error(
                None,
                format!("--seed applies to the random pattern, not {pattern_name}"),
            );
        }
        if value_flag.is_some() && !reads.contains(&value_key) {
            self.diags.error(
                None,
                format!("--{value_key} applies to the constant and ramp patterns; pattern {pattern_name} sets its load with its own keys"),
            );
        }
        let max = if open { MAX_RATE } else { MAX_USERS };
        let level = |c: &mut Self, v: Num, name: &str, required: bool| {
            c.level(v, name, required, open, max, &l.span)
        };
        let file_num =
            |v: &Option<Spanned<f64>>| v.as_ref().map(|v| (v.value, Some(v.span.clone())));

        let duration_given = o.duration.is_some() || l.duration.is_some();
        let duration =
            self.duration_setting(&o.duration, "--duration", &l.duration, "[load] duration");
        let iterations = match (o.iterations, &l.iterations) {
            (Some(i), _) => self.count(i as i64, None, "--iterations", i64::MAX),
            (None, Some(i)) => {
                self.count(i.value, Some(i.span.clone()), "[load] iterations", i64::MAX)
            }
            (None, None) => None,
        };
        let need_duration = |c: &mut Self| -> Option<Duration> {
            if duration.is_none() && !duration_given {
                c.diags.error(
                    l.span.clone(),
                    format!(
                        "[load] pattern {pattern_name} needs a `duration` (or the --duration flag)"
                    ),
                );
            }
            duration
        };
        let optional =
            |c: &mut Self, v: &Option<Spanned<String>>, name: &str| -> Option<Option<Duration>> {
                match v {
                    None => Some(None),
                    Some(v) => match parse_duration_or_zero(&v.value) {
                        Ok(d) => Some(Some(d)),
                        Err(e) => {
                            c.diags.error(v.span.clone(), format!("[load] {name}: {e}"));
                            None
                        }
                    },
                }
            };
        let required =
            |c: &mut Self, v: &Option<Spanned<String>>, name: &str| -> Option<Duration> {
                match optional(c, v, name)? {
                    Some(d) if d > Duration::ZERO => Some(d),
                    Some(_) => {
                        let span = v.as_ref().map(|v| v.span.clone());
                        c.diags
                            .error(span, format!("[load] {name} must be more than zero"));
                        None
                    }
                    None => {
                        c.diags.error(
                            l.span.clone(),
                            format!("[load] pattern {pattern_name} needs `{name}`"),
                        );
                        None
                    }
                }
            };

        let pattern = match pattern_name.as_str() {
            "constant" => {
                if !duration_given && iterations.is_none() {
                    self.diags.error(
                        l.span.clone(),
                        "[load] needs `duration` (e.g. \"30s\") or `iterations`, or the --duration / --iterations flag",
                    );
                }
                let v = match value {
                    None if open => {
                        self.diags.error(
                            l.span.clone(),
                            "[load] the open model needs `rate` (iterations per second) or the --rate flag",
                        );
                        None
                    }
                    None => Some(1.0),
                    Some(v) => level(self, Some(v), value_key, true),
                };
                Some(Pattern::Constant {
                    value: v?,
                    duration,
                })
            }
            "ramp" => {
                let peak = level(self, value, value_key, true);
                let d = need_duration(self);
                let up = optional(self, &l.ramp_up, "ramp_up");
                let down = optional(self, &l.ramp_down, "ramp_down");
                let (peak, d, up, down) = (peak?, d?, up?, down?);
                let up = up.unwrap_or(d / 4);
                let down = down.unwrap_or(Duration::ZERO);
                if up + down > d {
                    self.diags.error(
                        l.span.clone(),
                        format!(
                            "[load] ramp_up + ramp_down ({}) is longer than the duration ({})",
                            fmt_duration(up + down),
                            fmt_duration(d)
                        ),
                    );
                    return None;
                }
                Some(Pattern::Ramp {
                    peak,
                    up,
                    down,
                    duration: d,
                })
            }
            "stages" => {
                if let Some(d) = &l.duration {
                    self.diags.error(
                        d.span.clone(),
                        "[load] the stages set the duration; remove `duration`",
                    );
                } else if o.duration.is_some() {
                    self.diags.error(
                        None,
                        "--duration does not apply to pattern stages: the stages set the duration",
                    );
                }
                if l.stages.is_empty() {
                    self.diags.error(
                        l.span.clone(),
                        "[load] pattern stages needs `stages = [{ duration = \"30s\", target = 10 }, …]`",
                    );
                    return None;
                }
                let mut stages = Vec::new();
                for st in &l.stages {
                    let d = optional(self, &st.duration, "stage duration");
                    let target = level(self, file_num(&st.target), "stage target", false);
                    if st.duration.is_none() || st.target.is_none() {
                        self.diags
                            .error(st.span.clone(), "a stage needs `duration` and `target`");
                    }
                    if let (Some(Some(duration)), Some(target)) = (d, target) {
                        stages.push(Stage { duration, target });
                    }
                }
                (stages.len() == l.stages.len()).then_some(Pattern::Stages(stages))
            }
            "spike" => {
                let base = level(self, file_num(&l.base), "base", false).or(Some(0.0));
                let peak = level(self, file_num(&l.peak), "peak", true);
                let d = need_duration(self);
                let at = optional(self, &l.spike_at, "spike_at");
                let ramp = optional(self, &l.spike_ramp, "spike_ramp");
                let hold = optional(self, &l.spike_hold, "spike_hold");
                let (base, peak, d, at, ramp, hold) = (base?, peak?, d?, at?, ramp?, hold?);
                if peak < base {
                    let span = l.peak.as_ref().map(|p| p.span.clone());
                    self.diags.error(
                        span,
                        format!("[load] peak ({peak}) must be at least base ({base})"),
                    );
                    return None;
                }
                let (at, ramp, hold) = (
                    at.unwrap_or(d / 3),
                    ramp.unwrap_or(Duration::ZERO),
                    hold.unwrap_or(d / 6),
                );
                if at + ramp * 2 + hold > d {
                    self.diags.error(
                        l.span.clone(),
                        format!("[load] spike_at + 2 × spike_ramp + spike_hold ({}) is longer than the duration ({})", fmt_duration(at + ramp * 2 + hold), fmt_duration(d)),
                    );
                    return None;
                }
                Some(Pattern::Spike {
                    base,
                    peak,
                    at,
                    ramp,
                    hold,
                    duration: d,
                })
            }
            "wave" => {
                let base = level(self, file_num(&l.base), "base", true);
                let amplitude = level(self, file_num(&l.amplitude), "amplitude", true);
                let period = required(self, &l.period, "period");
                let d = need_duration(self);
                Some(Pattern::Wave {
                    base: base?,
                    amplitude: amplitude?,
                    period: period?,
                    duration: d?,
                })
            }
            "random" => {
                let min = level(self, file_num(&l.min), "min", true);
                let max_v = level(self, file_num(&l.max), "max", true);
                let every = match &l.change_every {
                    None => Some(DEFAULT_CHANGE_EVERY),
                    Some(_) => required(self, &l.change_every, "change_every"),
                };
                let d = need_duration(self);
                let (min, max_v, every, d) = (min?, max_v?, every?, d?);
                if max_v < min {
                    let span = l.max.as_ref().map(|m| m.span.clone());
                    self.diags.error(
                        span,
                        format!("[load] max ({max_v}) must be at least min ({min})"),
                    );
                    return None;
                }
                let seed = match (o.seed, &l.seed) {
                    (Some(s), _) => s,
                    (None, Some(s)) if s.value >= 0 => s.value as u64,
                    (None, Some(s)) => {
                        self.diags
                            .error(s.span.clone(), "[load] seed must be zero or more");
                        return None;
                    }
                    (None, None) => rand::random(),
                };
                Some(Pattern::Random {
                    min,
                    max: max_v,
                    every,
                    seed,
                    duration: d,
                })
            }
            "burst" => {
                let base = level(self, file_num(&l.base), "base", false).or(Some(0.0));
                let extra = level(self, file_num(&l.burst), "burst", true);
                let every = required(self, &l.every, "every");
                let length = match &l.burst_length {
                    None => Some(DEFAULT_BURST_LENGTH),
                    Some(_) => required(self, &l.burst_length, "burst_length"),
                };
                let d = need_duration(self);
                let (base, extra, every, length, d) = (base?, extra?, every?, length?, d?);
                if length > every {
                    let span = l.burst_length.as_ref().map(|b| b.span.clone());
                    self.diags
                        .error(span, "[load] burst_length must not be longer than `every`");
                    return None;
                }
                Some(Pattern::Burst {
                    base,
                    extra,
                    every,
                    length,
                    duration: d,
                })
            }
            _ => unreachable!("unknown patterns returned above"),
        };

        let model = if open {
            let max_users = match (o.max_users, &l.max_users) {
                (Some(m), _) => self.count(m as i64, None, "--max-users", MAX_USERS as i64),
                (None, Some(m)) => self.count(
                    m.value,
                    Some(m.span.clone()),
                    "[load] max_users",
                    MAX_USERS as i64,
                ),
                (None, None) => Some(DEFAULT_MAX_USERS),
            };
            let on_saturation = match &l.on_saturation {
                None => Saturation::Wait,
                Some(s) => match s.value.as_str() {
                    "wait" => Saturation::Wait,
                    "drop" => Saturation::Drop,
                    other => {
                        self.diags.error(
                            s.span.clone(),
                            format!("[load] on_saturation = \"{other}\" is unknown; expected \"wait\" or \"drop\""),
                        );
                        Saturation::Wait
                    }
                },
            };
            let max_waiting = match &l.max_waiting {
                Some(m) => self.count(
                    m.value,
                    Some(m.span.clone()),
                    "[load] max_waiting",
                    i64::MAX,
                ),
                None => Some(DEFAULT_MAX_WAITING),
            };
            Model::Open(OpenModel {
                max_users: max_users?,
                on_saturation,
                max_waiting: max_waiting?,
            })
        } else {
            if o.max_users.is_some() {
                self.diags
                    .error(None, "--max-users applies to the open model (set a rate)");
            }
            Model::Closed
        };
        let graceful_stop = match &l.graceful_stop {
            None => Some(DEFAULT_GRACEFUL_STOP),
            Some(g) => match parse_duration_or_zero(&g.value) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.diags
                        .error(g.span.clone(), format!("[load] graceful_stop: {e}"));
                    None
                }
            },
        };
        let pattern = pattern.filter(|_| known_pattern)?;
        if let Some(stages) = pattern.stage_count() {
            if stages > MAX_STAGES {
                self.diags.error(
                    l.span.clone(),
                    format!("[load] this pattern would need {stages} stages (the limit is {MAX_STAGES}): its period or interval is too short for its duration"),
                );
                return None;
            }
        }
        let shape = pattern.shape();
        let users = match &model {
            Model::Closed => shape.peak().round() as u64,
            Model::Open(m) => m.max_users,
        };
        if !open && users == 0 {
            self.diags.error(
                l.span.clone(),
                "[load] the pattern never has a user; raise its peak above 0",
            );
            return None;
        }
        let duration = match &pattern {
            Pattern::Constant { duration, .. } => *duration,
            _ => Some(shape.duration()),
        };
        let seed = match &pattern {
            Pattern::Random { seed, .. } => Some(*seed),
            _ => None,
        };
        Some(LoadPlan {
            model,
            pattern,
            shape,
            users,
            duration,
            iterations,
            graceful_stop: graceful_stop?,
            seed,
        })
    }

    /// A users or rate level: non-negative, finite, within `max`, a whole
    /// number in the closed model.
    #[allow(clippy::too_many_arguments)]
    fn level(
        &mut self,
        v: Num,
        name: &str,
        required: bool,
        open: bool,
        max: f64,
        load_span: &Span,
    ) -> Option<f64> {
        let Some((value, span)) = v else {
            if required {
                self.diags.error(
                    load_span.clone(),
                    format!("[load] this pattern needs `{name}`"),
                );
            }
            return None;
        };
        let label = if span.is_some() {
            format!("[load] {name}")
        } else {
            format!("--{name}")
        };
        if name == value_name(open) && value <= 0.0 {
            let what = if open { "a rate above 0" } else { "at least 1" };
            self.diags
                .error(span, format!("{label} must be {what}, not {value}"));
            None
        } else if !value.is_finite() || value < 0.0 {
            self.diags
                .error(span, format!("{label} must be zero or more, not {value}"));
            None
        } else if value > max {
            self.diags.error(
                span,
                format!("{label} = {value} is more than the limit of {max}"),
            );
            None
        } else if open && value > 0.0 && value < MIN_RATE {
            self.diags.error(
                span,
                format!("{label} = {value} is below the smallest rate, {MIN_RATE} per second"),
            );
            None
        } else if !open && value.fract() != 0.0 {
            self.diags.error(
                span,
                format!("{label} counts users: a whole number, not {value}"),
            );
            None
        } else {
            Some(value)
        }
    }

    /// Pattern keys set in the file that the chosen pattern does not read.
    fn unused_keys(
        &mut self,
        l: &Load,
        reads: &[&str],
        pattern: &str,
        open: bool,
        from_flag: bool,
    ) {
        let set: Vec<(&str, Option<Span>)> = vec![
            ("users", l.users.as_ref().map(|v| v.span.clone())),
            ("rate", l.rate.as_ref().map(|v| v.span.clone())),
            ("ramp_up", l.ramp_up.as_ref().map(|v| v.span.clone())),
            ("ramp_down", l.ramp_down.as_ref().map(|v| v.span.clone())),
            ("stages", l.stages.first().map(|s| s.span.clone())),
            ("base", l.base.as_ref().map(|v| v.span.clone())),
            ("peak", l.peak.as_ref().map(|v| v.span.clone())),
            ("spike_at", l.spike_at.as_ref().map(|v| v.span.clone())),
            ("spike_ramp", l.spike_ramp.as_ref().map(|v| v.span.clone())),
            ("spike_hold", l.spike_hold.as_ref().map(|v| v.span.clone())),
            ("amplitude", l.amplitude.as_ref().map(|v| v.span.clone())),
            ("period", l.period.as_ref().map(|v| v.span.clone())),
            ("min", l.min.as_ref().map(|v| v.span.clone())),
            ("max", l.max.as_ref().map(|v| v.span.clone())),
            (
                "change_every",
                l.change_every.as_ref().map(|v| v.span.clone()),
            ),
            ("seed", l.seed.as_ref().map(|v| v.span.clone())),
            ("burst", l.burst.as_ref().map(|v| v.span.clone())),
            ("every", l.every.as_ref().map(|v| v.span.clone())),
            (
                "burst_length",
                l.burst_length.as_ref().map(|v| v.span.clone()),
            ),
        ];
        for (key, span) in set {
            let Some(span) = span else { continue };
            if reads.contains(&key) {
                continue;
            }
            // A file written for one model or pattern may be switched to
            // another with --rate or --pattern; its other keys then rest.
            if from_flag {
                continue;
            }
            let msg = match key {
                "users" if open => "[load] `users` is for the closed model; the open model takes `rate` (and `max_users`)".to_string(),
                "rate" if !open => "[load] `rate` is for the open model; set model = \"open\", or use `users`".to_string(),
                _ => format!("[load] `{key}` is not read by pattern {pattern}; it reads: {}", reads.join(", ")),
            };
            self.diags.error(span, msg);
        }
        for (key, span) in [
            ("max_users", l.max_users.as_ref().map(|v| v.span.clone())),
            (
                "on_saturation",
                l.on_saturation.as_ref().map(|v| v.span.clone()),
            ),
            (
                "max_waiting",
                l.max_waiting.as_ref().map(|v| v.span.clone()),
            ),
        ] {
            if let (Some(span), false) = (span, open) {
                self.diags.error(
                    span,
                    format!(
                        "[load] `{key}` is for the open model; set model = \"open\" and a `rate`"
                    ),
                );
            }
        }
    }
}

fn value_name(open: bool) -> &'static str {
    if open {
        "rate"
    } else {
        "users"
    }
}

/// Like [`parse_duration`], but zero is allowed (an instant ramp).
fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<jiff::SignedDuration>() {
        Ok(d) if d.is_zero() => Ok(Duration::ZERO),
        _ => parse_duration(text),
    }
}
