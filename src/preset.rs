//! Starter scenarios: the presets, and splicing values into them.
//!
//! Presets are ordinary scenario files under `scenarios/presets/`, compiled
//! into the binary. [`render`] splices a URL, a user count and a duration
//! into a preset's text at the spans of the values they replace, so
//! comments and layout survive, and validates the result: what it returns
//! always passes `validate`. `loadctl init` and the MCP tool
//! `create_scenario` both call it.
//!
//! The rest of a preset's load follows the flags in proportion: with
//! `--users`, the other counts of its pattern (the spike's `base`) keep
//! their ratio to the user count; with `--duration`, its timings (the
//! spike's `spike_at`, `spike_ramp` and `spike_hold`) keep their share of
//! the duration. A preset's comments state no numbers the flags change.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::diag::{Diagnostics, Span, Spanned};
use crate::plan::{self, Inputs, Overrides};
use crate::scenario;
use crate::validate::{check_text, Checked};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Basic,
    RestApi,
    Spike,
    Soak,
    McpServer,
}

impl Preset {
    pub const ALL: [Preset; 5] = [
        Preset::Basic,
        Preset::RestApi,
        Preset::Spike,
        Preset::Soak,
        Preset::McpServer,
    ];

    /// The name users type: `basic`, `rest-api`, `spike`, `soak`.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Basic => "basic",
            Preset::RestApi => "rest-api",
            Preset::Spike => "spike",
            Preset::Soak => "soak",
            Preset::McpServer => "mcp-server",
        }
    }

    pub fn from_name(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == name)
    }

    /// One line saying what the preset does.
    pub fn description(self) -> &'static str {
        match self {
            Preset::Basic => "A few users requesting one page",
            Preset::RestApi => "List, read and create through a JSON API, with extracted values",
            Preset::Spike => "Base load, a sudden surge of users, back to base",
            Preset::Soak => "Steady moderate load for a long time",
            Preset::McpServer => {
                "An MCP server: sessions, tools and a resource, plus security checks that must be refused"
            }
        }
    }

    /// The preset's scenario text, as shipped.
    pub fn text(self) -> &'static str {
        match self {
            Preset::Basic => include_str!("../scenarios/presets/basic.toml"),
            Preset::RestApi => include_str!("../scenarios/presets/rest-api.toml"),
            Preset::Spike => include_str!("../scenarios/presets/spike.toml"),
            Preset::Soak => include_str!("../scenarios/presets/soak.toml"),
            Preset::McpServer => include_str!("../scenarios/presets/mcp-server.toml"),
        }
    }
}

/// Values to splice into a preset; `None` keeps the preset's own.
#[derive(Debug, Clone, Default)]
pub struct Params {
    /// Its origin becomes the base URL, its path and query the first
    /// step's path.
    pub url: Option<String>,
    /// Concurrent users (for the spike preset: the users at the peak).
    pub users: Option<u64>,
    /// e.g. `30s`, `5m`.
    pub duration: Option<String>,
}

#[derive(Debug)]
pub enum PresetError {
    /// A parameter is wrong. The message is `name` followed by `rest`,
    /// so each front end can write the name its users know
    /// (`--users` on the command line, `users` in a tool call).
    Parameter { name: &'static str, rest: String },
    /// The preset has no value where one was to be spliced.
    Preset(String),
    /// The spliced scenario does not validate.
    Invalid(Box<Checked>),
}

impl PresetError {
    /// The message, with a parameter's name after `prefix` (`"--"` for flags).
    pub fn message(&self, prefix: &str) -> String {
        match self {
            PresetError::Parameter { name, rest } => format!("{prefix}{name}{rest}"),
            PresetError::Preset(message) => message.clone(),
            PresetError::Invalid(checked) => format!(
                "the scenario would not be valid:\n{}",
                checked.rendered().collect::<Vec<_>>().join("\n")
            ),
        }
    }
}

impl fmt::Display for PresetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message(""))
    }
}

impl std::error::Error for PresetError {}

fn parameter(name: &'static str, rest: impl Into<String>) -> PresetError {
    PresetError::Parameter {
        name,
        rest: rest.into(),
    }
}

/// The preset's text with `params` spliced in, validated. Problems in the
/// result are reported under the name `shown_as`.
pub fn render(preset: Preset, params: &Params, shown_as: &Path) -> Result<String, PresetError> {
    let text = preset.text();
    let mut diags = Diagnostics::default();
    let parsed = scenario::parse(text, &mut diags)
        .ok_or_else(|| PresetError::Preset("the preset is not valid TOML".into()))?;
    let missing = |what: &str| PresetError::Preset(format!("the preset has no {what}"));
    let span_of = |v: &Option<Spanned<String>>| v.as_ref().map(|v| v.span.clone());
    let mut edits: Vec<(Span, String)> = Vec::new();
    if let Some(url) = &params.url {
        let (base, path) = split_url(url)?;
        let base_span = span_of(&parsed.target.base_url).ok_or_else(|| missing("base_url"))?;
        edits.push((base_span, toml_string(&base)));
        let first_path = parsed
            .flows
            .first()
            .and_then(|f| f.steps.first())
            .and_then(|s| s.path.as_ref())
            .map(|p| p.span.clone())
            .ok_or_else(|| missing("step"))?;
        edits.push((first_path, toml_string(&path)));
    }
    if let Some(users) = params.users {
        if users == 0 {
            return Err(parameter("users", " must be at least 1"));
        }
        let level = (parsed.load.users.as_ref())
            .map(|u| Spanned::new(u.value as f64, u.span.clone()))
            .or_else(|| parsed.load.peak.clone())
            .ok_or_else(|| missing("users"))?;
        edits.push((level.span.clone(), users.to_string()));
        edits.extend(scaled_counts(&parsed.load, level.value, users));
    }
    if let Some(duration) = &params.duration {
        let new =
            plan::parse_duration(duration).map_err(|e| parameter("duration", format!(": {e}")))?;
        let old = parsed
            .load
            .duration
            .as_ref()
            .ok_or_else(|| missing("duration"))?;
        let old_duration = plan::parse_duration(&old.value)
            .map_err(|e| PresetError::Preset(format!("the preset's duration: {e}")))?;
        edits.push((old.span.clone(), toml_string(duration)));
        edits.extend(scaled_timings(&parsed.load, old_duration, new));
    }
    let mut out = text.to_string();
    edits.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
    for (span, replacement) in edits {
        out.replace_range(span, &replacement);
    }
    // Whatever the parameters were, what we return must pass `validate`.
    // Presets read no files and no environment.
    let checked = check_text(shown_as, &out, &Overrides::default(), &Inputs::sealed());
    if !checked.valid() {
        return Err(PresetError::Invalid(Box::new(checked)));
    }
    Ok(out)
}

/// The pattern's other counts, scaled from the preset's level (`users` or
/// the spike's `peak`) to `users`: each keeps its ratio to the level,
/// rounded, and stays between 1 and `users` when it was above zero, so
/// `peak >= base` holds for any user count.
fn scaled_counts(load: &scenario::Load, level: f64, users: u64) -> Vec<(Span, String)> {
    let counts = [
        &load.base,
        &load.amplitude,
        &load.min,
        &load.max,
        &load.burst,
    ];
    counts
        .into_iter()
        .flatten()
        .map(|count| {
            let mut scaled = (count.value * users as f64 / level.max(1.0)).round() as u64;
            if count.value > 0.0 {
                scaled = scaled.clamp(1, users);
            }
            (count.span.clone(), scaled.to_string())
        })
        .collect()
}

/// The pattern's timings, scaled from the preset's duration `old` to
/// `new`, each rounded down to the millisecond so that together they still
/// fit in the duration. A timing that must be more than zero (a wave's
/// period, a burst's interval) stays at least a millisecond.
fn scaled_timings(load: &scenario::Load, old: Duration, new: Duration) -> Vec<(Span, String)> {
    let may_be_zero = [
        &load.ramp_up,
        &load.ramp_down,
        &load.spike_at,
        &load.spike_ramp,
        &load.spike_hold,
    ];
    let above_zero = [
        &load.period,
        &load.change_every,
        &load.every,
        &load.burst_length,
    ];
    let scale = |timing: &Spanned<String>, floor: Duration| {
        // A value the preset writes wrong is left for validation to report.
        let value = plan::parse_duration(&timing.value).unwrap_or(Duration::ZERO);
        // In whole numbers, so a share of the duration is never rounded up.
        let millis = value.as_nanos() * new.as_millis() / old.as_nanos().max(1);
        let scaled = Duration::from_millis(millis as u64).max(floor);
        (
            timing.span.clone(),
            toml_string(&crate::units::fmt_duration(scaled)),
        )
    };
    let zero_ok = may_be_zero
        .into_iter()
        .flatten()
        .map(|t| scale(t, Duration::ZERO));
    let positive = above_zero
        .into_iter()
        .flatten()
        .map(|t| scale(t, Duration::from_millis(1)));
    zero_ok.chain(positive).collect()
}

/// `http://host:8080/a/b?c=d` → (`http://host:8080`, `/a/b?c=d`).
pub fn split_url(url: &str) -> Result<(String, String), PresetError> {
    if url == "demo" {
        return Ok(("demo".to_string(), "/".to_string()));
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|e| parameter("url", format!(" `{url}` is not a URL: {e}")))?;
    if uri.scheme_str().is_none() {
        return Err(parameter(
            "url",
            format!(
                " `{url}` needs a scheme, e.g. http://{url} (or \"demo\" for the built-in target)"
            ),
        ));
    }
    let endpoint = plan::parse_endpoint(&format!(
        "{}://{}",
        uri.scheme_str().unwrap_or(""),
        uri.authority().map(|a| a.as_str()).unwrap_or("")
    ))
    .map_err(|e| parameter("url", format!(": {e}")))?;
    let base = endpoint.display();
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let path = if path.is_empty() { "/" } else { path };
    Ok((base, path.to_string()))
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_origin_and_path() {
        assert_eq!(
            split_url("http://localhost:8080/api/v1?x=1").unwrap(),
            ("http://localhost:8080".into(), "/api/v1?x=1".into())
        );
        assert_eq!(split_url("https://example.test").unwrap().1, "/");
        assert!(split_url("not a url").is_err());
    }

    #[test]
    fn names_round_trip() {
        for preset in Preset::ALL {
            assert_eq!(Preset::from_name(preset.name()), Some(preset));
        }
        assert_eq!(Preset::from_name("nope"), None);
    }

    #[test]
    fn every_preset_takes_every_parameter_and_stays_valid() {
        let params = Params {
            url: Some("http://127.0.0.1:8080/api/items?page=2".into()),
            users: Some(7),
            duration: Some("45s".into()),
        };
        for preset in Preset::ALL {
            let text = render(preset, &params, Path::new("x.toml")).unwrap();
            assert!(
                text.contains("base_url = \"http://127.0.0.1:8080\""),
                "{text}"
            );
            assert!(text.contains("duration = \"45s\""), "{text}");
        }
    }

    #[test]
    fn a_bad_parameter_names_itself_as_the_caller_writes_it() {
        let params = Params {
            users: Some(0),
            ..Params::default()
        };
        let e = render(Preset::Basic, &params, Path::new("x.toml")).unwrap_err();
        assert_eq!(e.message("--"), "--users must be at least 1");
        assert_eq!(e.to_string(), "users must be at least 1");
        let params = Params {
            url: Some("ftp://x".into()),
            ..Params::default()
        };
        let e = render(Preset::Basic, &params, Path::new("x.toml")).unwrap_err();
        assert!(e.message("--").starts_with("--url: scheme `ftp`"), "{e}");
    }
}
