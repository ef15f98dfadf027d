//! What this process costs the machine it runs on: its CPU use, for the
//! generator-saturation warning (a load generator near 100% CPU delays its
//! own requests, and the latencies it reports include that delay).
//!
//! A leaf module: it knows the operating system, nothing of loadctl.

use std::time::{Duration, Instant};

/// Above this fraction of the machine's cores, a load generator's own
/// scheduling delay may show in its latencies.
pub const SATURATED_CPU: f64 = 0.9;

/// The cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// This machine's host name, when the system can say.
#[cfg(unix)]
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let status = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if status != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_string();
    (!name.is_empty()).then_some(name)
}

#[cfg(not(unix))]
pub fn hostname() -> Option<String> {
    None
}

/// Measures this process's CPU use between successive samples.
#[derive(Debug)]
pub struct CpuMeter {
    last: Option<(Instant, Duration)>,
    cores: f64,
}

impl Default for CpuMeter {
    fn default() -> Self {
        Self::new()
    }
}

/// A sample over less time than this says more about a moment (start-up)
/// than about load: it is not taken.
const MIN_SAMPLE: Duration = Duration::from_millis(500);

impl CpuMeter {
    /// Measures against every core.
    pub fn new() -> Self {
        Self::for_threads(0)
    }

    /// Measures against the cores `threads` generator threads can use
    /// (0: every core): one busy thread of one is saturated, whatever the
    /// machine's other cores do.
    pub fn for_threads(threads: usize) -> Self {
        let cores = match threads {
            0 => cores(),
            n => n.min(cores()),
        };
        CpuMeter {
            last: process_cpu_time().map(|cpu| (Instant::now(), cpu)),
            cores: cores as f64,
        }
    }

    /// The share of its cores this process used since the last sample
    /// (or since the meter was made): 0.0 to 1.0. `None` where the
    /// system cannot say, or when less than half a second has passed.
    pub fn sample(&mut self) -> Option<f64> {
        let now = Instant::now();
        let cpu = process_cpu_time()?;
        let (then, cpu_then) = self.last?;
        let wall = now.duration_since(then);
        if wall < MIN_SAMPLE {
            return None;
        }
        self.last = Some((now, cpu));
        let used = cpu.saturating_sub(cpu_then).as_secs_f64();
        Some((used / (wall.as_secs_f64() * self.cores)).clamp(0.0, 1.0))
    }
}

/// CPU use seen over a run: the latest, the mean, the peak, and how many
/// samples were at or above [`SATURATED_CPU`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuStats {
    pub latest: Option<f64>,
    pub peak: f64,
    sum: f64,
    pub samples: u64,
    pub saturated: u64,
}

impl CpuStats {
    pub fn record(&mut self, used: f64) {
        let used = used.clamp(0.0, 1.0);
        self.latest = Some(used);
        self.peak = self.peak.max(used);
        self.sum += used;
        self.samples += 1;
        if used >= SATURATED_CPU {
            self.saturated += 1;
        }
    }

    pub fn mean(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.sum / self.samples as f64)
    }

    /// The report's warning when `who` (the generator, a worker) was
    /// saturated for some of its samples (taken once a second).
    pub fn warning(&self, who: &str) -> Option<String> {
        (self.saturated > 0).then(|| {
            format!(
                "{who} used {:.0}% or more of its CPU for {} s (peak {:.0}%): latencies may include \
                 its own delay; run fewer users per machine, or spread the load over more workers",
                SATURATED_CPU * 100.0,
                self.saturated,
                self.peak * 100.0
            )
        })
    }
}

/// User plus system CPU time of this whole process so far.
#[cfg(unix)]
fn process_cpu_time() -> Option<Duration> {
    // SAFETY: getrusage writes only into the struct it is given, which is
    // zeroed and of the type it expects.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return None;
        }
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Some(time(usage.ru_utime) + time(usage.ru_stime))
}

#[cfg(not(unix))]
fn process_cpu_time() -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_thread_shows_as_cpu_use() {
        let mut meter = CpuMeter::for_threads(1);
        assert_eq!(meter.sample(), None, "too soon to say");
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < MIN_SAMPLE + Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let used = meter.sample().expect("unix reports CPU time");
        assert!(used > 0.0 && used <= 1.0, "{used}");
    }
}
