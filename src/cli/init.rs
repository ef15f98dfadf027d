//! `loadctl init`: write a starter scenario from a preset.
//!
//! Presets are ordinary scenario files under `scenarios/presets/`, compiled
//! into the binary. `--url`, `--users` and `--duration` are spliced into the
//! preset's text at the spans of the values they replace, so comments and
//! layout survive, and the result is validated before it is written.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};

use super::Exit;
use crate::diag::{Diagnostics, SourceFile, Span};
use crate::plan::{self, Overrides};
use crate::scenario;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Which starter scenario to write
    #[arg(long, value_enum, default_value_t = Preset::Basic)]
    preset: Preset,
    /// The URL to test: its origin becomes the base URL, its path and query the first step's path
    #[arg(long)]
    url: Option<String>,
    /// Concurrent users (for the spike preset: the users at the peak)
    #[arg(long)]
    users: Option<u64>,
    /// Test duration, e.g. 30s, 5m
    #[arg(long)]
    duration: Option<String>,
    /// Where to write the scenario ("-" for standard output)
    #[arg(short, long, default_value = "loadctl.toml")]
    output: PathBuf,
    /// Overwrite the output file if it exists
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// A few users requesting one page
    Basic,
    /// List, read and create through a JSON API, with extracted values
    RestApi,
    /// Base load, a sudden surge of users, back to base
    Spike,
    /// Steady moderate load for a long time
    Soak,
}

impl Preset {
    pub fn text(self) -> &'static str {
        match self {
            Preset::Basic => include_str!("../../scenarios/presets/basic.toml"),
            Preset::RestApi => include_str!("../../scenarios/presets/rest-api.toml"),
            Preset::Spike => include_str!("../../scenarios/presets/spike.toml"),
            Preset::Soak => include_str!("../../scenarios/presets/soak.toml"),
        }
    }
}

pub fn init(args: InitArgs) -> anyhow::Result<Exit> {
    let text = match render(&args) {
        Ok(text) => text,
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(Exit::Invalid);
        }
    };
    if args.output.as_os_str() == "-" {
        std::io::stdout().write_all(text.as_bytes())?;
        return Ok(Exit::Success);
    }
    if args.output.exists() && !args.force {
        eprintln!(
            "error: {} already exists; pass --force to overwrite it",
            args.output.display()
        );
        return Ok(Exit::Invalid);
    }
    crate::report::write_atomic(&args.output, |w| w.write_all(text.as_bytes()))
        .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!(
        "wrote {}; check it with `loadctl validate {0}` and run it with `loadctl run {0}`",
        args.output.display()
    );
    Ok(Exit::Success)
}

/// The preset's text with the flags' values spliced in, validated.
fn render(args: &InitArgs) -> Result<String, String> {
    let text = args.preset.text();
    let mut diags = Diagnostics::default();
    let parsed = scenario::parse(text, &mut diags).ok_or("the preset is not valid TOML")?;
    let mut edits: Vec<(Span, String)> = Vec::new();
    let span_of = |v: &Option<crate::diag::Spanned<String>>| v.as_ref().map(|v| v.span.clone());
    if let Some(url) = &args.url {
        let (base, path) = split_url(url)?;
        edits.push((
            span_of(&parsed.target.base_url).ok_or("the preset has no base_url")?,
            toml_string(&base),
        ));
        let first_path = parsed
            .flows
            .first()
            .and_then(|f| f.steps.first())
            .and_then(|s| s.path.as_ref())
            .map(|p| p.span.clone())
            .ok_or("the preset has no step")?;
        edits.push((first_path, toml_string(&path)));
    }
    if let Some(users) = args.users {
        if users == 0 {
            return Err("--users must be at least 1".into());
        }
        let span = (parsed.load.users.as_ref().map(|u| u.span.clone()))
            .or_else(|| parsed.load.peak.as_ref().map(|p| p.span.clone()))
            .ok_or("the preset has no users")?;
        edits.push((span, users.to_string()));
    }
    if let Some(duration) = &args.duration {
        plan::parse_duration(duration).map_err(|e| format!("--duration: {e}"))?;
        edits.push((
            span_of(&parsed.load.duration).ok_or("the preset has no duration")?,
            toml_string(duration),
        ));
    }
    let mut out = text.to_string();
    edits.sort_by_key(|(span, _)| std::cmp::Reverse(span.start));
    for (span, replacement) in edits {
        out.replace_range(span, &replacement);
    }
    // Whatever the flags were, what we write must pass `validate`.
    let mut diags = Diagnostics::default();
    let source = SourceFile::new(&args.output, out.clone());
    if let Some(s) = scenario::parse(&out, &mut diags) {
        plan::compile(&s, None, &Overrides::default(), &mut diags);
    }
    if diags.has_errors() {
        let problems: Vec<String> = diags.items().iter().map(|d| source.render(d)).collect();
        return Err(format!(
            "the scenario would not be valid:\n{}",
            problems.join("\n")
        ));
    }
    Ok(out)
}

/// `http://host:8080/a/b?c=d` → (`http://host:8080`, `/a/b?c=d`).
fn split_url(url: &str) -> Result<(String, String), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("--url `{url}` is not a URL: {e}"))?;
    let endpoint = plan::parse_endpoint(&format!(
        "{}://{}",
        uri.scheme_str().unwrap_or(""),
        uri.authority().map(|a| a.as_str()).unwrap_or("")
    ))
    .map_err(|e| format!("--url: {e}"))?;
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
}
