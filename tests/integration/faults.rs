//! Misbehaving targets: loadctl must finish on time, classify every
//! failure, keep loading the healthy steps, and count exactly what it sent.
//!
//! [`FaultServer`] speaks raw TCP on 127.0.0.1, port 0, so it can break
//! HTTP in ways a well-behaved server library would not. It counts every
//! request head it reads: that is what "the server received".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{run_quiet, scenario, summary, write};

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Read the request, then reset the connection (RST).
    Reset,
    /// Send half a header block, then close.
    HalfHeaders,
    /// Answer bytes that are not HTTP.
    Garbage,
    /// Promise 1000 body bytes, send 10, close.
    ShortBody,
    /// Read the request and never answer.
    Silent,
    /// Answer correctly, one byte every 20 ms.
    Trickle,
    /// Answer with a 4 MiB body.
    Huge,
    /// Answer 200, but 500 on every 3rd request.
    EveryThird,
    /// Answer 200 with keep-alive, then close the connection once it has
    /// been idle for 30 ms, as servers do when their keep-alive times out.
    IdleClose,
}

const HUGE: usize = 4 << 20;

/// Requests received, by path.
#[derive(Default)]
struct Counts {
    faulty: AtomicU64,
    healthy: AtomicU64,
}

/// Answers `/ok` correctly and breaks every other request with its fault.
struct FaultServer {
    port: u16,
    counts: Arc<Counts>,
    _runtime: tokio::runtime::Runtime,
}

impl FaultServer {
    fn start(fault: Fault) -> FaultServer {
        let (runtime, listener) = crate::server::loopback();
        let port = listener.local_addr().unwrap().port();
        let counts = Arc::new(Counts::default());
        let counter = counts.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve(stream, fault, counter.clone()));
            }
        });
        FaultServer {
            port,
            counts,
            _runtime: runtime,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests to the faulty path and to `/ok`.
    fn received(&self) -> (u64, u64) {
        (
            self.counts.faulty.load(Ordering::SeqCst),
            self.counts.healthy.load(Ordering::SeqCst),
        )
    }
}

/// Reads one request head (the scenarios only send GETs without a body)
/// and returns its path.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            return head.split(' ').nth(1).map(str::to_string);
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn serve(mut stream: TcpStream, fault: Fault, counts: Arc<Counts>) {
    let mut buf = Vec::new();
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    while let Some(path) = read_head(&mut stream, &mut buf).await {
        if path == "/ok" {
            counts.healthy.fetch_add(1, Ordering::SeqCst);
            if stream.write_all(ok).await.is_err() {
                return;
            }
            continue;
        }
        let n = counts.faulty.fetch_add(1, Ordering::SeqCst) + 1;
        match fault {
            Fault::Reset => {
                let _ = stream.set_zero_linger();
                return;
            }
            Fault::HalfHeaders => {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Le").await;
                return;
            }
            Fault::Garbage => {
                let _ = stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").await;
                return;
            }
            Fault::ShortBody => {
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
                    .await;
                return;
            }
            Fault::Silent => {
                // Hold the connection until the client gives up.
                let mut sink = [0u8; 64];
                while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
            Fault::Trickle => {
                for byte in ok {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    if stream.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                }
            }
            Fault::Huge => {
                let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {HUGE}\r\n\r\n");
                let chunk = vec![b'x'; 64 * 1024];
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for _ in 0..HUGE / chunk.len() {
                    if stream.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            }
            Fault::IdleClose => {
                if stream.write_all(ok).await.is_err() {
                    return;
                }
                let idle = Duration::from_millis(30);
                if buf.is_empty() && tokio::time::timeout(idle, stream.readable()).await.is_err() {
                    return;
                }
            }
            Fault::EveryThird => {
                let answer: &[u8] = if n.is_multiple_of(3) {
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nfail"
                } else {
                    ok
                };
                if stream.write_all(answer).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Runs a two-flow scenario against the fault server: one user class
/// requests the faulty path, the other `/ok`. Checks that the healthy step
/// kept going untouched and that loadctl counted exactly what the server
/// received, then returns the faulty step's stats and the run's length.
fn run_against(server: &FaultServer, timeout: &str) -> (serde_json::Value, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[target]
base_url = "{}"
timeout = "{timeout}"
[load]
users = 4
duration = "2s"
graceful_stop = "300ms"
[[flow]]
name = "faulty"
  [[flow.step]]
  name = "fault"
  path = "/fault"
[[flow]]
name = "healthy"
  [[flow.step]]
  name = "ok"
  path = "/ok"
"#,
        server.url()
    );
    let file = write(dir.path(), "s.toml", &text);
    let started = Instant::now();
    run_quiet(&file, dir.path()).success();
    let took = started.elapsed();
    let s = summary(dir.path());
    let (faulty, healthy) = server.received();
    let step = |name: &str| {
        s["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|st| st["name"] == name)
            .unwrap()
            .clone()
    };
    let ok = step("ok");
    assert_eq!(
        ok["requests"].as_u64().unwrap(),
        healthy,
        "loadctl counted what the server received"
    );
    assert!(healthy > 10, "the healthy users kept going: {healthy}");
    let fault = step("fault");
    assert_eq!(
        fault["requests"].as_u64().unwrap(),
        faulty,
        "loadctl counted what the server received"
    );
    assert!(
        faulty >= 2,
        "users replace broken connections and go on: {faulty}"
    );
    assert!(s["failures"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["step"] == "fault"));
    (fault, took)
}

/// One fault: every request to it failed with `kind`, and the run ended
/// within duration + timeout + grace (plus process start-up).
fn check_fault(fault: Fault, kind: &str) {
    let server = FaultServer::start(fault);
    let (step, took) = run_against(&server, "500ms");
    let requests = step["requests"].as_u64().unwrap();
    assert_eq!(step["failures"].as_u64().unwrap(), requests, "{fault:?}");
    let by_kind = step["errors"][kind].as_u64().unwrap_or(0);
    // A request still in flight when the run ends may be aborted instead.
    let aborted = step["errors"]["aborted"].as_u64().unwrap_or(0);
    assert_eq!(by_kind + aborted, requests, "{fault:?}: {}", step["errors"]);
    assert!(by_kind > 0, "{fault:?}");
    // 2 s + 500 ms timeout + 300 ms grace, with slack for a loaded CI machine:
    // this catches a hang, not a slow run.
    assert!(took < Duration::from_secs(10), "{fault:?}: took {took:?}");
}

#[test]
fn a_reset_connection_is_a_reset() {
    check_fault(Fault::Reset, "reset");
}

#[test]
fn half_a_header_block_is_a_reset() {
    check_fault(Fault::HalfHeaders, "reset");
}

#[test]
fn bytes_that_are_not_http_are_a_protocol_error() {
    check_fault(Fault::Garbage, "protocol");
}

#[test]
fn a_short_body_is_a_body_error() {
    check_fault(Fault::ShortBody, "body");
}

#[test]
fn a_silent_server_times_out() {
    check_fault(Fault::Silent, "timeout");
}

#[test]
fn a_slow_but_complete_answer_succeeds() {
    let server = FaultServer::start(Fault::Trickle);
    let (step, took) = run_against(&server, "2s");
    // Each answer takes ~800 ms; one still in flight when the run ends gets
    // the grace period, then counts as aborted.
    let aborted = step["errors"]["aborted"].as_u64().unwrap_or(0);
    assert_eq!(
        step["failures"].as_u64().unwrap(),
        aborted,
        "{}",
        step["errors"]
    );
    assert!(step["requests"].as_u64().unwrap() > aborted);
    assert!(step["latency_ms"]["max"].as_f64().unwrap() > 700.0);
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[test]
fn a_huge_body_is_counted_not_kept() {
    let server = FaultServer::start(Fault::Huge);
    let (step, _) = run_against(&server, "5s");
    let complete = step["requests"].as_u64().unwrap() - step["failures"].as_u64().unwrap();
    assert!(complete > 0);
    let body = step["body_bytes"].as_u64().unwrap();
    assert!(body >= complete * HUGE as u64, "{body}");
}

#[test]
fn every_third_request_failing_is_counted_exactly() {
    let server = FaultServer::start(Fault::EveryThird);
    let (step, _) = run_against(&server, "1s");
    let requests = step["requests"].as_u64().unwrap();
    assert_eq!(step["failures"].as_u64().unwrap(), requests / 3);
    assert_eq!(step["errors"]["status"].as_u64().unwrap(), requests / 3);
    assert_eq!(step["status_codes"]["500"].as_u64().unwrap(), requests / 3);
}

#[test]
fn a_connection_the_server_closes_while_idle_is_replaced_without_a_failure() {
    let server = FaultServer::start(Fault::IdleClose);
    let dir = tempfile::tempdir().unwrap();
    let text = scenario(
        &server.url(),
        "users = 2\nduration = \"1500ms\"",
        "think_time = \"100ms\"\n[[flow.step]]\npath = \"/fault\"",
        "",
    );
    let file = write(dir.path(), "s.toml", &text);
    run_quiet(&file, dir.path()).success();
    let s = summary(dir.path());
    let (faulty, _) = server.received();
    assert_eq!(s["totals"]["requests"].as_u64().unwrap(), faulty);
    assert!(faulty >= 10, "{faulty}");
    assert_eq!(s["totals"]["failures"], 0, "{}", s["failures"]);
}
