//! The access log: one JSON line per request on stdout, in the shape of the other log lines
//! (`tracing-subscriber`'s flattened JSON: `timestamp`, `level`, `message`, the fields,
//! `target` = `access`), and on when `RUST_LOG` lets `access` log at `info`.
//!
//! Why not a `tracing` event per request: formatting it through the subscriber cost ~2 µs of
//! user time per request and a `write` per line, which took the gateway from 1.05× nginx's
//! throughput to 0.8× with both logging (BENCHMARKS.md). Here each worker formats its lines by
//! hand into its own buffer and writes the buffer out when it holds 16 KiB, or 100 ms after its
//! first unwritten line, whichever comes first, and when the worker ends: many lines per `write`
//! under load, no line later than 100 ms when quiet (nginx's `access_log … buffer= flush=`).

use std::cell::{Cell, RefCell};
use std::io::Write as _;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

/// A buffer this full is written at once.
const FLUSH_AT: usize = 16 * 1024;
/// The longest a line waits in the buffer.
const FLUSH_AFTER: Duration = Duration::from_millis(100);

/// One request, as its line reports it (never a token).
#[derive(Debug)]
pub struct Entry<'a> {
    /// The request id (the client's, or made by the gateway).
    pub request_id: &'a str,
    /// Method.
    pub method: &'a str,
    /// The normalised path.
    pub path: &'a str,
    /// The route's prefix, if one matched.
    pub route: Option<&'a str>,
    /// The answer's status.
    pub status: u16,
    /// From the request's head to its answer.
    pub latency: Duration,
    /// The verified subject, if any.
    pub user_id: Option<&'a str>,
    /// The client's address.
    pub peer: IpAddr,
}

/// One worker's access log.
#[derive(Debug)]
pub struct AccessLog {
    buf: RefCell<Vec<u8>>,
    flush_scheduled: Cell<bool>,
    /// The second of the last timestamp, and its `YYYY-MM-DDTHH:MM:SS` text.
    second: Cell<(u64, [u8; 19])>,
}

impl AccessLog {
    /// An empty log; lines are written by the task this worker runs.
    pub fn new() -> Rc<Self> {
        Rc::new(AccessLog {
            buf: RefCell::new(Vec::with_capacity(FLUSH_AT + 1024)),
            flush_scheduled: Cell::new(false),
            second: Cell::new((u64::MAX, [b'0'; 19])),
        })
    }

    /// Adds the request's line; writes the buffer out when it is full, or arranges for it to be
    /// written soon.
    pub fn log(self: &Rc<Self>, e: &Entry<'_>) {
        let full = {
            let mut buf = self.buf.borrow_mut();
            self.format(&mut buf, e, SystemTime::now());
            buf.len() >= FLUSH_AT
        };
        if full {
            self.flush();
        } else if !self.flush_scheduled.replace(true) {
            let log = Rc::clone(self);
            tokio::task::spawn_local(async move {
                tokio::time::sleep(FLUSH_AFTER).await;
                log.flush_scheduled.set(false);
                log.flush();
            });
        }
    }

    /// Writes out what the buffer holds.
    pub fn flush(&self) {
        let mut buf = self.buf.borrow_mut();
        if buf.is_empty() {
            return;
        }
        // Nowhere to report a failed write to stdout: the lines are dropped, as `tracing`'s
        // writer drops them.
        let _ = std::io::stdout().lock().write_all(&buf);
        buf.clear();
    }

    fn format(&self, out: &mut Vec<u8>, e: &Entry<'_>, now: SystemTime) {
        let since = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = since.as_secs();
        let (cached, mut text) = self.second.get();
        if cached != secs {
            text = date_time(secs);
            self.second.set((secs, text));
        }
        out.extend_from_slice(b"{\"timestamp\":\"");
        out.extend_from_slice(&text);
        let _ = write!(out, ".{:06}Z\"", since.subsec_micros());
        out.extend_from_slice(b",\"level\":\"INFO\",\"message\":\"request\",\"request_id\":");
        string(out, e.request_id);
        out.extend_from_slice(b",\"method\":");
        string(out, e.method);
        out.extend_from_slice(b",\"path\":");
        string(out, e.path);
        if let Some(route) = e.route {
            out.extend_from_slice(b",\"route\":");
            string(out, route);
        }
        let _ = write!(
            out,
            ",\"status\":{},\"latency_ms\":{}",
            e.status,
            e.latency.as_secs_f64() * 1000.0
        );
        if let Some(user) = e.user_id {
            out.extend_from_slice(b",\"user_id\":");
            string(out, user);
        }
        out.extend_from_slice(b",\"peer\":\"");
        let mut ip = [0u8; 64];
        out.extend_from_slice(crate::forwarding::ip_text(e.peer, &mut ip));
        out.extend_from_slice(b"\",\"target\":\"access\"}\n");
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.flush();
    }
}

/// `s` as a JSON string (escaped as `serde_json` escapes).
fn string(out: &mut Vec<u8>, s: &str) {
    // Writing a &str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of a time in seconds since the epoch (the proleptic Gregorian
/// calendar, by the days-from-civil inverse of Howard Hinnant's algorithms).
fn date_time(secs: u64) -> [u8; 19] {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut text = [b'0'; 19];
    let mut w = &mut text[..];
    let _ = write!(w, "{year:04}-{month:02}-{d:02}T{h:02}:{m:02}:{s:02}");
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_the_calendars() {
        for (secs, want) in [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_709_251_199, "2024-02-29T23:59:59"),
            (1_796_558_309, "2026-12-06T11:58:29"),
            (4_102_444_800, "2100-01-01T00:00:00"),
        ] {
            assert_eq!(std::str::from_utf8(&date_time(secs)).unwrap(), want);
        }
        // And against httpdate's calendar for a spread of days.
        for day in (0..100_000u64).step_by(97) {
            let secs = day * 86_400 + 3_723;
            let http = httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
            let ours = date_time(secs);
            let (y, mo, d) = (&ours[0..4], &ours[5..7], &ours[8..10]);
            let d: u32 = std::str::from_utf8(d).unwrap().parse().unwrap();
            assert!(http.contains(&format!(" {d:02} ")), "{http} vs {ours:?}");
            assert!(http.contains(std::str::from_utf8(y).unwrap()), "{http}");
            let months = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let mo: usize = std::str::from_utf8(mo).unwrap().parse().unwrap();
            assert!(http.contains(months[mo - 1]), "{http} vs {ours:?}");
            assert!(ours.ends_with(b"T01:02:03"));
        }
    }

    /// A full buffer is written at once; a line on its own waits at most `FLUSH_AFTER`.
    #[tokio::test(start_paused = true)]
    async fn lines_are_written_when_16_kib_wait_or_100_ms_after_the_first() {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let log = AccessLog::new();
                let e = Entry {
                    request_id: "r",
                    method: "GET",
                    path: "/",
                    route: None,
                    status: 200,
                    latency: Duration::ZERO,
                    user_id: None,
                    peer: "127.0.0.1".parse().unwrap(),
                };
                log.log(&e);
                let one = log.buf.borrow().len();
                assert!(one > 0 && one < FLUSH_AT);
                tokio::time::sleep(FLUSH_AFTER + Duration::from_millis(1)).await;
                assert!(log.buf.borrow().is_empty(), "written within 100 ms");
                for _ in 0..FLUSH_AT / one + 1 {
                    log.log(&e);
                }
                assert!(
                    log.buf.borrow().len() < FLUSH_AT,
                    "written as soon as 16 KiB waited"
                );
            })
            .await;
    }

    #[test]
    fn a_line_is_json_in_the_shape_of_the_other_log_lines() {
        let log = AccessLog::new();
        let mut out = Vec::new();
        let e = Entry {
            request_id: "r-1",
            method: "GET",
            path: "/a\"b\\c",
            route: Some("/a"),
            status: 200,
            latency: Duration::from_micros(1500),
            user_id: Some("u-1"),
            peer: "10.0.0.1".parse().unwrap(),
        };
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_558_309_000_042);
        log.format(&mut out, &e, t);
        assert_eq!(out.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["timestamp"], "2026-12-06T11:58:29.000042Z");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "request");
        assert_eq!(v["target"], "access");
        assert_eq!(v["request_id"], "r-1");
        assert_eq!(v["path"], "/a\"b\\c");
        assert_eq!(v["route"], "/a");
        assert_eq!(v["status"], 200);
        assert_eq!(v["latency_ms"], 1.5);
        assert_eq!(v["user_id"], "u-1");
        assert_eq!(v["peer"], "10.0.0.1");
        let mut out = Vec::new();
        let e = Entry {
            route: None,
            user_id: None,
            ..e
        };
        log.format(&mut out, &e, t);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(v.get("route").is_none() && v.get("user_id").is_none());
    }
}
