//! `[load]` → [`LoadPlan`]: the model, and the pattern as a [`Shape`].
//!
//! [`PATTERNS`] is the one table of patterns: each names the keys it reads
//! and the function that builds it. A key set in the file that the chosen
//! pattern does not read is an error, so a typo'd or misplaced parameter is
//! never silently ignored. The settings every pattern shares (model,
//! duration, iterations, the open model's limits) are checked here once.

use std::time::Duration;

use super::{parse_duration, Compiler, Overrides};
use crate::diag::{Span, Spanned};
use crate::scenario::Load;
use crate::schedule::{Pattern, PatternKind, Shape, Stage};
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

/// Stands for the model's level key in [`PatternSpec::reads`]: `users` in
/// the closed model, `rate` in the open one.
const LEVEL: &str = "users|rate";

/// A load pattern: the `[load]` keys it reads and the function that
/// builds it from them.
struct PatternSpec {
    kind: PatternKind,
    reads: &'static [&'static str],
    build: fn(&mut Compiler<'_>, &PatternInput<'_>) -> Built,
}

/// The one table of load patterns, in the order messages list them. The
/// unknown-pattern message, the unused-key check and the dispatch all
/// read it.
const PATTERNS: [PatternSpec; 7] = [
    PatternSpec {
        kind: PatternKind::Constant,
        reads: &[LEVEL],
        build: constant,
    },
    PatternSpec {
        kind: PatternKind::Ramp,
        reads: &[LEVEL, "ramp_up", "ramp_down"],
        build: ramp,
    },
    PatternSpec {
        kind: PatternKind::Stages,
        reads: &["stages"],
        build: stages,
    },
    PatternSpec {
        kind: PatternKind::Spike,
        reads: &["base", "peak", "spike_at", "spike_ramp", "spike_hold"],
        build: spike,
    },
    PatternSpec {
        kind: PatternKind::Wave,
        reads: &["base", "amplitude", "period"],
        build: wave,
    },
    PatternSpec {
        kind: PatternKind::Random,
        reads: &["min", "max", "change_every", "seed"],
        build: random,
    },
    PatternSpec {
        kind: PatternKind::Burst,
        reads: &["base", "burst", "every", "burst_length"],
        build: burst,
    },
];

/// With an unknown pattern, the common settings are still checked as for
/// a constant load, so every other problem is reported too.
const FALLBACK: &PatternSpec = &PATTERNS[0];

impl PatternSpec {
    fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// The keys this pattern reads in the open or the closed model.
    fn reads(&self, open: bool) -> Vec<&'static str> {
        let level = value_name(open);
        self.reads
            .iter()
            .map(|k| if *k == LEVEL { level } else { k })
            .collect()
    }

    /// Whether `users` (closed) or `rate` (open) sets this pattern's load.
    fn reads_level(&self) -> bool {
        self.reads.contains(&LEVEL)
    }
}

/// The names of the patterns that pass `keep`, as a list in prose:
/// `constant, ramp or burst`.
fn pattern_names(keep: impl Fn(&PatternSpec) -> bool, last_word: &str) -> String {
    let names: Vec<&str> = PATTERNS
        .iter()
        .filter(|p| keep(p))
        .map(PatternSpec::name)
        .collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => {
            format!("{} {last_word} {last}", rest.join(", "))
        }
        _ => names.join(""),
    }
}

/// What a pattern's builder reads: the `[load]` table, the flags, and the
/// settings every pattern shares, already checked.
struct PatternInput<'a> {
    /// The pattern's name, for messages.
    name: &'static str,
    load: &'a Load,
    flags: &'a Overrides,
    open: bool,
    /// Users (closed) or rate (open), from the flag or from the file when
    /// the pattern reads it.
    level: Num,
    /// `duration` (flag or file), when given and valid.
    duration: Option<Duration>,
    /// Whether a `duration` was given at all, valid or not.
    duration_given: bool,
    iterations: Option<u64>,
}

/// What a builder made of its keys: `Some(Some(pattern))`; `Some(None)`
/// when it reported a problem but the model's settings are still worth
/// checking; `None` when it reported a problem that ends the checking of
/// `[load]`.
type Built = Option<Option<Pattern>>;

impl Compiler<'_> {
    pub(super) fn load(&mut self, l: &Load, o: &Overrides) -> Option<LoadPlan> {
        let open = self.model_is_open(l, o);
        let (spec, known_pattern) = self.pattern_spec(l, o);
        if known_pattern {
            let from_flag = o.rate.is_some() || o.pattern.is_some();
            self.unused_keys(l, &spec.reads(open), spec.name(), open, from_flag);
        }
        let level = level_setting(l, o, open, spec);
        self.flags_that_do_not_apply(o, open, spec);
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
        let input = PatternInput {
            name: spec.name(),
            load: l,
            flags: o,
            open,
            level,
            duration,
            duration_given,
            iterations,
        };
        let pattern = (spec.build)(self, &input)?;
        let model = self.model(l, o, open)?;
        let graceful_stop = self.graceful_stop(l);
        let pattern = pattern.filter(|_| known_pattern)?;
        self.stage_count_within_limit(l, &pattern)?;
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

    /// The open model when a rate is set (flag or file) or `model = "open"`.
    fn model_is_open(&mut self, l: &Load, o: &Overrides) -> bool {
        match (&o.rate, &l.model) {
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
        }
    }

    /// The chosen pattern (flag, file, or the default) and whether it is
    /// one we know; an unknown one is reported and [`FALLBACK`] stands in.
    fn pattern_spec(&mut self, l: &Load, o: &Overrides) -> (&'static PatternSpec, bool) {
        let (name, span) = match (&o.pattern, &l.pattern) {
            (Some(p), _) => (p.as_str(), None),
            (None, Some(p)) => (p.value.as_str(), Some(p.span.clone())),
            (None, None) if !l.stages.is_empty() => (PatternKind::Stages.name(), None),
            (None, None) => (PatternKind::Constant.name(), None),
        };
        if let Some(spec) = PATTERNS.iter().find(|p| p.name() == name) {
            return (spec, true);
        }
        let msg = format!(
            "pattern \"{name}\" is unknown; expected {}",
            pattern_names(|_| true, "or")
        );
        match span {
            Some(span) => self.diags.error(span, format!("[load] {msg}")),
            None => self.diags.error(None, format!("--pattern: {msg}")),
        }
        (FALLBACK, false)
    }

    /// Flags given for a model or pattern that does not read them.
    fn flags_that_do_not_apply(&mut self, o: &Overrides, open: bool, spec: &PatternSpec) {
        if open && o.users.is_some() {
            self.diags.error(
                None,
                "--users applies to the closed model; the open model takes --rate and --max-users",
            );
        }
        if o.seed.is_some() && spec.kind != PatternKind::Random {
            self.diags.error(
                None,
                format!("--seed applies to the random pattern, not {}", spec.name()),
            );
        }
        let level_flag = if open {
            o.rate.is_some()
        } else {
            o.users.is_some()
        };
        if level_flag && !spec.reads_level() {
            self.diags.error(
                None,
                format!(
                    "--{} applies to the {} patterns; pattern {} sets its load with its own keys",
                    value_name(open),
                    pattern_names(PatternSpec::reads_level, "and"),
                    spec.name()
                ),
            );
        }
    }

    /// The open model's settings, or the closed model (which has none).
    fn model(&mut self, l: &Load, o: &Overrides, open: bool) -> Option<Model> {
        if !open {
            if o.max_users.is_some() {
                self.diags
                    .error(None, "--max-users applies to the open model (set a rate)");
            }
            return Some(Model::Closed);
        }
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
        Some(Model::Open(OpenModel {
            max_users: max_users?,
            on_saturation,
            max_waiting: max_waiting?,
        }))
    }

    fn graceful_stop(&mut self, l: &Load) -> Option<Duration> {
        match &l.graceful_stop {
            None => Some(DEFAULT_GRACEFUL_STOP),
            Some(g) => match parse_duration_or_zero(&g.value) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.diags
                        .error(g.span.clone(), format!("[load] graceful_stop: {e}"));
                    None
                }
            },
        }
    }

    fn stage_count_within_limit(&mut self, l: &Load, pattern: &Pattern) -> Option<()> {
        match pattern.stage_count() {
            Some(stages) if stages > MAX_STAGES => {
                self.diags.error(
                    l.span.clone(),
                    format!("[load] this pattern would need {stages} stages (the limit is {MAX_STAGES}): its period or interval is too short for its duration"),
                );
                None
            }
            _ => Some(()),
        }
    }

    /// A users or rate level: non-negative, finite, within the model's
    /// limit, a whole number in the closed model.
    fn level(&mut self, p: &PatternInput, v: Num, name: &str, required: bool) -> Option<f64> {
        let open = p.open;
        let max = if open { MAX_RATE } else { MAX_USERS };
        let Some((value, span)) = v else {
            if required {
                self.diags.error(
                    p.load.span.clone(),
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

    /// The pattern's end: the `duration` setting, which it cannot do without.
    fn need_duration(&mut self, p: &PatternInput) -> Option<Duration> {
        if p.duration.is_none() && !p.duration_given {
            self.diags.error(
                p.load.span.clone(),
                format!(
                    "[load] pattern {} needs a `duration` (or the --duration flag)",
                    p.name
                ),
            );
        }
        p.duration
    }

    /// A duration key that may be absent (`Some(None)`) or zero; `None`
    /// when it is given but not a duration.
    fn optional_duration(
        &mut self,
        v: &Option<Spanned<String>>,
        name: &str,
    ) -> Option<Option<Duration>> {
        match v {
            None => Some(None),
            Some(v) => match parse_duration_or_zero(&v.value) {
                Ok(d) => Some(Some(d)),
                Err(e) => {
                    self.diags
                        .error(v.span.clone(), format!("[load] {name}: {e}"));
                    None
                }
            },
        }
    }

    /// A duration key the pattern needs, more than zero.
    fn required_duration(
        &mut self,
        p: &PatternInput,
        v: &Option<Spanned<String>>,
        name: &str,
    ) -> Option<Duration> {
        match self.optional_duration(v, name)? {
            Some(d) if d > Duration::ZERO => Some(d),
            Some(_) => {
                let span = v.as_ref().map(|v| v.span.clone());
                self.diags
                    .error(span, format!("[load] {name} must be more than zero"));
                None
            }
            None => {
                self.diags.error(
                    p.load.span.clone(),
                    format!("[load] pattern {} needs `{name}`", p.name),
                );
                None
            }
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

/// Users (closed) or rate (open) from the flag, or from the file when the
/// pattern reads it.
fn level_setting(l: &Load, o: &Overrides, open: bool, spec: &PatternSpec) -> Num {
    let from_flag = if open {
        o.rate
    } else {
        o.users.map(|u| u as f64)
    };
    let from_file = if open {
        l.rate.clone()
    } else {
        l.users
            .clone()
            .map(|u| Spanned::new(u.value as f64, u.span))
    };
    match (from_flag, from_file) {
        (Some(v), _) => Some((v, None)),
        (None, Some(v)) if spec.reads_level() => Some((v.value, Some(v.span))),
        _ => None,
    }
}

fn file_num(v: &Option<Spanned<f64>>) -> Num {
    v.as_ref().map(|v| (v.value, Some(v.span.clone())))
}

// ------------------------------------------------------- one per pattern

fn constant(c: &mut Compiler<'_>, p: &PatternInput<'_>) -> Built {
    let l = p.load;
    if !p.duration_given && p.iterations.is_none() {
        c.diags.error(
            l.span.clone(),
            "[load] needs `duration` (e.g. \"30s\") or `iterations`, or the --duration / --iterations flag",
        );
    }
    let value = match &p.level {
        None if p.open => {
            c.diags.error(
                l.span.clone(),
                "[load] the open model needs `rate` (iterations per second) or the --rate flag",
            );
            None
        }
        None => Some(1.0),
        Some(v) => c.level(p, Some(v.clone()), value_name(p.open), true),
    };
    Some(Some(Pattern::Constant {
        value: value?,
        duration: p.duration,
    }))
}

fn ramp(c: &mut Compiler<'_>, p: &PatternInput<'_>) -> Built {
    let l = p.load;
    let peak = c.level(p, p.level.clone(), value_name(p.open), true);
    let d = c.need_duration(p);
    let up = c.optional_duration(&l.ramp_up, "ramp_up");
    let down = c.optional_duration(&l.ramp_down, "ramp_down");
    let (peak, d, up, down) = (peak?, d?, up?, down?);
    let up = up.unwrap_or(d / 4);
    let down = down.unwrap_or(Duration::ZERO);
    if up + down > d {
        c.diags.error(
            l.span.clone(),
            format!(
                "[load] ramp_up + ramp_down ({}) is longer than the duration ({})",
                fmt_duration(up + down),
                fmt_duration(d)
            ),
        );
        return None;
    }
    Some(Some(Pattern::Ramp {
        peak,
        up,
        down,
        duration: d,
    }))
}

fn stages(c: &mut Compiler<'_>, p: &PatternInput<'_>) -> Built {
    let l = p.load;
    if let Some(d) = &l.duration {
        c.diags.error(
            d.span.clone(),
            "[load] the stages set the duration; remove `duration`",
        );
    } else if p.flags.duration.is_some() {
        c.diags.error(
            None,
            "--duration does not apply to pattern stages: the stages set the duration",
        );
    }
    if l.stages.is_empty() {
        c.diags.error(
            l.span.clone(),
            "[load] pattern stages needs `stages = [{ duration = \"30s\", target = 10 }, …]`",
        );
        return None;
    }
    let mut stages = Vec::new();
    for st in &l.stages {
        let d = c.optional_duration(&st.duration, "stage duration");
        let target = c.level(p, file_num(&st.target), "stage target", false);
        if st.duration.is_none() || st.target.is_none() {
            c.diags
                .error(st.span.clone(), "a stage needs `duration` and `target`");
        }
        if let (Some(Some(duration)), Some(target)) = (d, target) {
            stages.push(Stage { duration, target });
        }
    }
    // Each bad stage was reported; the model's settings are still checked.
    Some((stages.len() == l.stages.len()).then_some(Pattern::Stages(stages)))
}

fn spike(c: &mut Compiler<'_>, p: &PatternInput<'_>) -> Built {
    let l = p.load;
    let base = c.level(p, file_num(&l.base), "base", false).or(Some(0.0));
    let peak = c.level(p, file_num(&l.peak), "peak", true);
    let d = c.need_duration(p);
    let at = c.optional_duration(&l.spike_at, "spike_at");
    let ramp = c.optional_duration(&l.spike_ramp, "spike_ramp");
    let hold = c.optional_duration(&l.spike_hold, "spike_hold");
    let (base, peak, d, at, ramp, hold) = (base?, peak?, d?, at?, ramp?, hold?);
    if peak < base {
        let span = l.peak.as_ref().map(|p| p.span.clone());
        c.diags.error(
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
        c.diags.error(
            l.span.clone(),
            format!("[load] spike_at + 2 × spike_ramp + spike_hold ({}) is longer than the duration ({})", fmt_duration(at + ramp * 2 + hold), fmt_duration(d)),
        );
        return None;
    }
    Some(Some(Pattern::Spike {
        base,
        peak,
        at,
        ramp,
        hold,
        duration: d,
    }))
}

fn wave(c: &mut Compiler<'_>, p: &PatternInput<'_>) -> Built {
    let l = p.load;
    let base = c.level(p, file_num(&l.base), "base", true);
    let amplitude = c.level(p, file_num(&l.amplitude), "amplitude", true);
    let period = c.required_duration(p, &l.period, "period");
    let d = c.need_duration(p);
    Some(Some(Pattern::Wave {
        base: base?,
        amplitude: amplitude?,
        period: period?,
        duration: d?,
    }))
}

fn random(c: &mut Compiler<'_>, p: &PatternInput<'_>) -> Built {
    let l = p.load;
    let min = c.level(p, file_num(&l.min), "min", true);
    let max = c.level(p, file_num(&l.max), "max", true);
    let every = match &l.change_every {
        None => Some(DEFAULT_CHANGE_EVERY),
        Some(_) => c.required_duration(p, &l.change_every, "change_every"),
    };
    let d = c.need_duration(p);
    let (min, max, every, d) = (min?, max?, every?, d?);
    if max < min {
        let span = l.max.as_ref().map(|m| m.span.clone());
        c.diags.error(
            span,
            format!("[load] max ({max}) must be at least min ({min})"),
        );
        return None;
    }
    let seed = match (p.flags.seed, &l.seed) {
        (Some(s), _) => s,
        (None, Some(s)) if s.value >= 0 => s.value as u64,
        (None, Some(s)) => {
            c.diags
                .error(s.span.clone(), "[load] seed must be zero or more");
            return None;
        }
        (None, None) => rand::random(),
    };
    Some(Some(Pattern::Random {
        min,
        max,
        every,
        seed,
        duration: d,
    }))
}

fn burst(c: &mut Compiler<'_>, p: &PatternInput<'_>) -> Built {
    let l = p.load;
    let base = c.level(p, file_num(&l.base), "base", false).or(Some(0.0));
    let extra = c.level(p, file_num(&l.burst), "burst", true);
    let every = c.required_duration(p, &l.every, "every");
    let length = match &l.burst_length {
        None => Some(DEFAULT_BURST_LENGTH),
        Some(_) => c.required_duration(p, &l.burst_length, "burst_length"),
    };
    let d = c.need_duration(p);
    let (base, extra, every, length, d) = (base?, extra?, every?, length?, d?);
    if length > every {
        let span = l.burst_length.as_ref().map(|b| b.span.clone());
        c.diags
            .error(span, "[load] burst_length must not be longer than `every`");
        return None;
    }
    Some(Some(Pattern::Burst {
        base,
        extra,
        every,
        length,
        duration: d,
    }))
}

fn value_name(open: bool) -> &'static str {
    if open {
        "rate"
    } else {
        "users"
    }
}

/// Like [`parse_duration`], but zero is allowed (an instant ramp, no
/// think time).
pub(super) fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<jiff::SignedDuration>() {
        Ok(d) if d.is_zero() => Ok(Duration::ZERO),
        _ => parse_duration(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_pattern_once_in_order() {
        let kinds: Vec<PatternKind> = PATTERNS.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, PatternKind::ALL);
        assert_eq!(FALLBACK.kind, PatternKind::Constant);
    }

    #[test]
    fn pattern_lists_read_as_prose() {
        assert_eq!(
            pattern_names(|_| true, "or"),
            "constant, ramp, stages, spike, wave, random or burst"
        );
        assert_eq!(
            pattern_names(PatternSpec::reads_level, "and"),
            "constant and ramp"
        );
        assert_eq!(PATTERNS[1].reads(true), ["rate", "ramp_up", "ramp_down"]);
        assert_eq!(PATTERNS[1].reads(false), ["users", "ramp_up", "ramp_down"]);
    }
}
