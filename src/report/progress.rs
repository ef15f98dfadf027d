//! Live progress on stderr: an indicatif bar on a terminal, a plain line
//! every few seconds otherwise (CI logs, pipes). The bar has no colour, so
//! `NO_COLOR` has nothing to turn off here. Other lines written to stderr
//! while the bar is drawn go through [`suspended`], so they do not land in
//! the middle of it.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::metrics::live::Progress;
use crate::units::trim_float;

/// How often the plain-text fallback prints.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// The bar on the terminal now, if any: one per process, since there is
/// one terminal.
static ACTIVE_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Runs `write` (a log line to stderr, say) with the live bar, if one is
/// drawn, cleared away first and redrawn after.
pub fn suspended<R>(write: impl FnOnce() -> R) -> R {
    let bar = ACTIVE_BAR.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match bar {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

pub struct ProgressDisplay {
    bar: Option<ProgressBar>,
    last_plain: Option<Duration>,
    quiet: bool,
}

impl ProgressDisplay {
    pub fn new(quiet: bool, duration: Option<Duration>) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = match duration {
                Some(d) => ProgressBar::new(d.as_secs().max(1)),
                None => ProgressBar::new_spinner(),
            };
            bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            let template = if duration.is_some() {
                "{elapsed_precise} [{bar:30}] {msg}"
            } else {
                "{elapsed_precise} {spinner} {msg}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("the template is fixed and valid")
                    .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            *ACTIVE_BAR.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar.clone());
            bar
        });
        ProgressDisplay {
            bar,
            last_plain: None,
            quiet,
        }
    }

    pub fn update(&mut self, p: &Progress) {
        let line = line(p);
        if let Some(bar) = &self.bar {
            bar.set_position(p.elapsed.as_secs());
            bar.set_message(line);
        } else if !self.quiet {
            let due = match self.last_plain {
                None => true,
                Some(last) => p.elapsed >= last + PLAIN_EVERY,
            };
            if due {
                self.last_plain = Some(p.elapsed);
                eprintln!("[{:>5}] {line}", elapsed(p));
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            ACTIVE_BAR.lock().unwrap_or_else(|e| e.into_inner()).take();
            bar.finish_and_clear();
        }
    }
}

/// One second of progress as text. The run's last interval may be shorter
/// than a second: its rates are per second of its real length, and the
/// line says how long it was, so the end of a run does not read as a
/// collapse.
fn line(p: &Progress) -> String {
    // No request completed in the interval: there is no p95 to show.
    let p95 = if p.rps > 0.0 {
        format!("{:.1}ms", p.p95_ms)
    } else {
        "-".to_string()
    };
    let mut line = if p.open {
        format!(
            "arrivals {:.0}/s (target {:.0})  busy users {}  req/s {:.0}  requests {}  errors {}  dropped {}  p95 {p95}",
            p.started_per_second(), p.target, p.users, p.rps, p.requests, p.failures, p.dropped
        )
    } else {
        format!(
            "users {} (target {:.0})  req/s {:.0}  requests {}  errors {}  p95 {p95}",
            p.users, p.target, p.rps, p.requests, p.failures
        )
    };
    if p.is_partial() {
        line.push_str(&format!(
            "  (last {}s, rates per second)",
            trim_float(p.span.as_secs_f64(), 2)
        ));
    }
    if let (true, Some(cpu)) = (p.is_saturated(), p.cpu) {
        line.push_str(&format!(
            "  generator CPU {:.0}%: latencies may include its own delay",
            cpu * 100.0
        ));
    }
    line
}

/// `6s`, or `6.45s` for a run that ended within its last second.
fn elapsed(p: &Progress) -> String {
    if p.is_partial() {
        format!("{}s", trim_float(p.elapsed.as_secs_f64(), 2))
    } else {
        format!("{}s", p.elapsed.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(span_ms: u64, started: u64, rps: f64) -> Progress {
        Progress {
            elapsed: Duration::from_secs(5) + Duration::from_millis(span_ms),
            span: Duration::from_millis(span_ms),
            duration: Some(Duration::from_secs(6)),
            open: true,
            target: 3000.0,
            users: 12,
            requests: 15_000,
            failures: 0,
            dropped: 0,
            started,
            rps,
            p95_ms: 1.5,
            live: None,
            cpu: None,
        }
    }

    #[test]
    fn a_whole_second_reads_as_it_always_did() {
        let p = progress(1000, 3000, 3000.0);
        assert_eq!(elapsed(&p), "6s");
        assert_eq!(
            line(&p),
            "arrivals 3000/s (target 3000)  busy users 12  req/s 3000  requests 15000  errors 0  dropped 0  p95 1.5ms"
        );
    }

    #[test]
    fn a_partial_last_second_is_scaled_and_says_so() {
        let p = progress(400, 1200, 3000.0);
        assert_eq!(elapsed(&p), "5.4s");
        let text = line(&p);
        assert!(text.starts_with("arrivals 3000/s (target 3000)"), "{text}");
        assert!(text.ends_with("(last 0.4s, rates per second)"), "{text}");
    }

    #[test]
    fn an_interval_without_requests_has_no_p95() {
        let mut p = progress(1000, 0, 0.0);
        p.open = false;
        p.p95_ms = 0.0;
        assert!(line(&p).ends_with("p95 -"), "{}", line(&p));
    }
}
