//! Live progress on stderr: an indicatif bar on a terminal, a plain line
//! every few seconds otherwise (CI logs, pipes).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::metrics::live::Progress;

/// How often the plain-text fallback prints.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

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
            bar
        });
        ProgressDisplay {
            bar,
            last_plain: None,
            quiet,
        }
    }

    pub fn update(&mut self, p: &Progress) {
        let line = if p.open {
            format!(
                "arrivals {}/s (target {:.0})  busy users {}  req/s {:.0}  requests {}  errors {}  dropped {}  p95 {:.1}ms",
                p.started, p.target, p.users, p.rps, p.requests, p.failures, p.dropped, p.p95_ms
            )
        } else {
            format!(
                "users {} (target {:.0})  req/s {:.0}  requests {}  errors {}  p95 {:.1}ms",
                p.users, p.target, p.rps, p.requests, p.failures, p.p95_ms
            )
        };
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
                eprintln!("[{:>4}s] {line}", p.elapsed.as_secs());
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
