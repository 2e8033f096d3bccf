//! An open-loop HTTP/1.1 load generator for the soak of `scripts/chaos/run.sh`: a fixed request
//! rate spread over keep-alive connections and several targets, each request carrying the next
//! bearer token from a file, latency measured from the moment the request was *due* (so a
//! stalled server is charged for the requests it held up, as wrk2 does), reported per interval.
//!
//! ```text
//! cargo run --release -p testkit --example loadgen -- \
//!     --targets 127.0.0.1:8080,127.0.0.1:8081 --path /api/soak --tokens tokens.txt \
//!     --connections 32 --rate 5000 --seconds 600 --interval 10
//! ```
//!
//! The tokens file is read again whenever it changes (checked every second), so a run longer than
//! the tokens' lifetime can be fed fresh ones: replace the file whole (write another, rename it).
//!
//! `--rate 0` runs closed-loop (each connection sends its next request as soon as the last is
//! answered): the soak's capacity search starts from the figure it reports. One JSON line
//! per interval on stdout (`t`, `ok`, `failed` by status, `p50_ms`, `p99_ms`, `max_ms`, `rate`),
//! then a summary line with `"summary": true`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

struct Args {
    targets: Vec<String>,
    path: String,
    tokens_file: String,
    /// The file's tokens, as last read.
    tokens: Mutex<Arc<Vec<String>>>,
    connections: usize,
    rate: f64,
    seconds: f64,
    interval: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut m = BTreeMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let k = k
            .strip_prefix("--")
            .ok_or_else(|| format!("unexpected argument {k}"))?
            .to_owned();
        let v = it.next().ok_or_else(|| format!("--{k} needs a value"))?;
        m.insert(k, v);
    }
    let get = |k: &str| {
        m.get(k)
            .cloned()
            .ok_or_else(|| format!("--{k} is required"))
    };
    let num = |k: &str, d: f64| -> Result<f64, String> {
        m.get(k).map_or(Ok(d), |v| {
            v.parse().map_err(|_| format!("--{k}: not a number"))
        })
    };
    let tokens_file = get("tokens")?;
    let tokens = read_tokens(&tokens_file)?;
    Ok(Args {
        targets: get("targets")?.split(',').map(str::to_owned).collect(),
        path: m.get("path").cloned().unwrap_or_else(|| "/".into()),
        tokens_file,
        tokens: Mutex::new(Arc::new(tokens)),
        connections: num("connections", 32.0)? as usize,
        rate: num("rate", 0.0)?,
        seconds: num("seconds", 10.0)?,
        interval: num("interval", 10.0)?,
    })
}

/// The tokens of a file, one per line; an error if it holds none.
fn read_tokens(path: &str) -> Result<Vec<String>, String> {
    let tokens: Vec<String> = std::fs::read_to_string(path)
        .map_err(|e| format!("--tokens: {e}"))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if tokens.is_empty() {
        return Err("--tokens: the file holds no token".into());
    }
    Ok(tokens)
}

/// The tokens now in use.
fn tokens(args: &Args) -> Arc<Vec<String>> {
    args.tokens
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// Reads the tokens file again whenever its modification time changes. A file that cannot be
/// read, or holds no token, leaves the tokens as they were (said on stderr).
async fn watch_tokens(args: Arc<Args>) {
    let modified = || {
        std::fs::metadata(&args.tokens_file)
            .and_then(|m| m.modified())
            .ok()
    };
    let mut seen = modified();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = modified();
        if now == seen {
            continue;
        }
        seen = now;
        match read_tokens(&args.tokens_file) {
            Ok(t) => {
                *args
                    .tokens
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(t);
            }
            Err(e) => eprintln!("loadgen: keeping the tokens: {e}"),
        }
    }
}

/// What one request came to.
struct Outcome {
    /// Seconds since the start at which the answer came.
    at: f64,
    /// From the moment it was due (open loop) or sent (closed loop) to its answer.
    latency: Duration,
    /// The status, or 0 when the connection failed.
    status: u16,
}

/// Reads one response; returns its status. Handles `Content-Length` and chunked bodies.
async fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<u16> {
    let mut line = String::new();
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    if r.read_line(&mut line).await? == 0 {
        return Err(bad("connection closed"));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err(bad("closed in the headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("content-length") {
                length = v.parse().map_err(|_| bad("bad content-length"))?;
            } else if k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked") {
                chunked = true;
            }
        }
    }
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("bad chunk size"))?;
            let mut skip = vec![0; size + 2];
            r.read_exact(&mut skip).await?;
            if size == 0 {
                break;
            }
        }
    } else {
        let mut skip = vec![0; length];
        r.read_exact(&mut skip).await?;
    }
    Ok(status)
}

/// One connection's loop: every `period` (or back to back when `None`) a request with the next
/// token, until `end`. A failed connection is counted and opened again on the next target.
#[allow(clippy::too_many_arguments)]
async fn connection(
    n: usize,
    args: Arc<Args>,
    start: Instant,
    end: Instant,
    period: Option<Duration>,
    tx: mpsc::UnboundedSender<Outcome>,
) {
    let mut target = n % args.targets.len();
    let mut conn: Option<BufReader<TcpStream>> = None;
    let mut token = n;
    // Connections start spread over the first period, so the rate is even, not bursty.
    let mut due = start
        + period.map_or(Duration::ZERO, |p| {
            p.mul_f64(n as f64 / args.connections as f64)
        });
    loop {
        if period.is_some() {
            if due >= end {
                return;
            }
            tokio::time::sleep_until(due.into()).await;
        } else if Instant::now() >= end {
            return;
        }
        let sent = Instant::now();
        let from = if period.is_some() { due } else { sent };
        let held = tokens(&args);
        token %= held.len();
        let status = match send(&mut conn, &args, target, &held[token]).await {
            Ok(s) => s,
            Err(_) => {
                conn = None;
                target = (target + 1) % args.targets.len();
                0
            }
        };
        let done = Instant::now();
        let _ = tx.send(Outcome {
            at: (done - start).as_secs_f64(),
            latency: done - from,
            status,
        });
        token = (token + args.connections) % held.len();
        if let Some(p) = period {
            due += p;
        }
    }
}

async fn send(
    conn: &mut Option<BufReader<TcpStream>>,
    args: &Args,
    target: usize,
    token: &str,
) -> std::io::Result<u16> {
    let c = match conn {
        Some(c) => c,
        None => {
            let s = TcpStream::connect(&args.targets[target]).await?;
            s.set_nodelay(true)?;
            conn.insert(BufReader::new(s))
        }
    };
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\r\n",
        args.path, args.targets[target]
    );
    c.get_mut().write_all(req.as_bytes()).await?;
    read_response(c).await
}

/// The `p` quantile of sorted microseconds, in milliseconds.
fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

struct Interval {
    /// Microseconds.
    latencies: Vec<u32>,
    failed: BTreeMap<u16, u64>,
}

impl Interval {
    fn new() -> Self {
        Interval {
            latencies: Vec::new(),
            failed: BTreeMap::new(),
        }
    }

    fn add(&mut self, o: &Outcome) {
        if o.status == 200 {
            self.latencies
                .push(u32::try_from(o.latency.as_micros()).unwrap_or(u32::MAX));
        } else {
            *self.failed.entry(o.status).or_default() += 1;
        }
    }

    fn report(&mut self, t: f64, seconds: f64, summary: bool) -> String {
        self.latencies.sort_unstable();
        let failed: u64 = self.failed.values().sum();
        let by_status: serde_json::Map<String, serde_json::Value> = self
            .failed
            .iter()
            .map(|(k, v)| (k.to_string(), (*v).into()))
            .collect();
        serde_json::json!({
            "t": (t * 10.0).round() / 10.0,
            "ok": self.latencies.len(),
            "failed": failed,
            "failed_by_status": by_status,
            "rate": ((self.latencies.len() as u64 + failed) as f64 / seconds).round(),
            "p50_ms": percentile(&self.latencies, 0.50),
            "p99_ms": percentile(&self.latencies, 0.99),
            "max_ms": percentile(&self.latencies, 1.0),
            "summary": summary,
        })
        .to_string()
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(async move {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let start = Instant::now() + Duration::from_millis(100);
        let end = start + Duration::from_secs_f64(args.seconds);
        let period =
            (args.rate > 0.0).then(|| Duration::from_secs_f64(args.connections as f64 / args.rate));
        let watcher = tokio::spawn(watch_tokens(args.clone()));
        for n in 0..args.connections {
            tokio::spawn(connection(n, args.clone(), start, end, period, tx.clone()));
        }
        drop(tx);
        let mut interval = Interval::new();
        let mut total = Interval::new();
        let mut bound = args.interval;
        while let Some(o) = rx.recv().await {
            while o.at >= bound {
                println!("{}", interval.report(bound, args.interval, false));
                interval = Interval::new();
                bound += args.interval;
            }
            interval.add(&o);
            total.add(&o);
        }
        // The last interval, if the run ended inside it (answers that came after the end count
        // in the summary only).
        if bound <= args.seconds + 1e-9
            && (!interval.latencies.is_empty() || !interval.failed.is_empty())
        {
            println!("{}", interval.report(bound, args.interval, false));
        }
        println!("{}", total.report(args.seconds, args.seconds, true));
        watcher.abort();
    });
}
