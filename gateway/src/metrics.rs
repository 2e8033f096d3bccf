//! Counters and gauges of the gateway, rendered in the Prometheus text format on the admin
//! listener. Lock-free on the request path: plain atomics.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latency histogram bucket bounds, seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Verification failure reasons: `missing` (no token), then the shared verifier's.
fn reasons() -> impl Iterator<Item = &'static str> {
    std::iter::once("missing").chain(shared::verifier::FAILURE_REASONS)
}
const REASON_COUNT: usize = shared::verifier::FAILURE_REASONS.len() + 1;

#[derive(Default)]
struct RouteStats {
    by_class: [AtomicU64; 5],
    rate_limited: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// All metrics of one gateway process.
pub struct Metrics {
    routes: Vec<String>,
    per_route: Vec<RouteStats>,
    verify_failures: [AtomicU64; REASON_COUNT],
    jwks_ok: AtomicU64,
    jwks_failed: AtomicU64,
    unknown_kid: AtomicU64,
    keys: AtomicU64,
    /// The verified-token cache: hits, misses, evictions.
    token_cache: [AtomicU64; 3],
}

/// What happened in the verified-token cache.
#[derive(Debug, Clone, Copy)]
pub enum CacheEvent {
    /// A token found verified.
    Hit,
    /// A token not in the cache (verified now, if it can be).
    Miss,
    /// A token dropped to make room.
    Eviction,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics for these route prefixes (index = route index; one more slot for "no route").
    pub fn new(routes: Vec<String>) -> Self {
        let per_route = (0..=routes.len()).map(|_| RouteStats::default()).collect();
        Metrics {
            routes,
            per_route,
            verify_failures: Default::default(),
            jwks_ok: AtomicU64::new(0),
            jwks_failed: AtomicU64::new(0),
            unknown_kid: AtomicU64::new(0),
            keys: AtomicU64::new(0),
            token_cache: Default::default(),
        }
    }

    /// One request done.
    pub fn request(&self, route: Option<usize>, status: u16, elapsed: Duration) {
        let Some(s) = self.per_route.get(route.unwrap_or(self.routes.len())) else {
            return;
        };
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        s.by_class[class].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            s.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        s.count.fetch_add(1, Ordering::Relaxed);
        s.sum_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The verified-token cache at work.
    pub fn token_cache(&self, event: CacheEvent) {
        self.token_cache[event as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// A request refused by its route's rate limit.
    pub fn rate_limited(&self, route: usize) {
        if let Some(s) = self.per_route.get(route) {
            s.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A token was refused for `reason` (a `VerifyError::reason`, or `missing`).
    pub fn verify_failure(&self, reason: &str) {
        if let Some(i) = reasons().position(|r| r == reason) {
            self.verify_failures[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A JWKS fetch finished.
    pub fn jwks_fetch(&self, ok: bool) {
        if ok { &self.jwks_ok } else { &self.jwks_failed }.fetch_add(1, Ordering::Relaxed);
    }

    /// An unknown `kid` triggered a refetch.
    pub fn unknown_kid_refetch(&self) {
        self.unknown_kid.fetch_add(1, Ordering::Relaxed);
    }

    /// Keys now held.
    pub fn set_keys(&self, n: usize) {
        self.keys.store(n as u64, Ordering::Relaxed);
    }

    /// Prometheus text exposition. `key_age` is the age of the key set, if any.
    pub fn render(&self, key_age: Option<Duration>) -> String {
        let mut out = String::new();
        let label = |i: usize| {
            self.routes
                .get(i)
                .map_or("(none)", String::as_str)
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
        };
        let _ = writeln!(
            out,
            "# HELP gateway_requests_total Requests answered, by route prefix and status class."
        );
        let _ = writeln!(out, "# TYPE gateway_requests_total counter");
        for (i, s) in self.per_route.iter().enumerate() {
            for (c, n) in s.by_class.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "gateway_requests_total{{route=\"{}\",code=\"{}xx\"}} {}",
                    label(i),
                    c + 1,
                    n.load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP gateway_request_duration_seconds Time to answer, by route prefix."
        );
        let _ = writeln!(out, "# TYPE gateway_request_duration_seconds histogram");
        for (i, s) in self.per_route.iter().enumerate() {
            let mut cumulative = 0;
            for (b, n) in BUCKETS.iter().zip(&s.buckets) {
                cumulative += n.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "gateway_request_duration_seconds_bucket{{route=\"{}\",le=\"{b}\"}} {cumulative}",
                    label(i)
                );
            }
            let count = s.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "gateway_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {count}",
                label(i)
            );
            let _ = writeln!(
                out,
                "gateway_request_duration_seconds_sum{{route=\"{}\"}} {}",
                label(i),
                s.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "gateway_request_duration_seconds_count{{route=\"{}\"}} {count}",
                label(i)
            );
        }
        let _ = writeln!(
            out,
            "# HELP gateway_rate_limited_total Requests refused by their route's rate limit (429)."
        );
        let _ = writeln!(out, "# TYPE gateway_rate_limited_total counter");
        for (i, s) in self.per_route.iter().enumerate().take(self.routes.len()) {
            let _ = writeln!(
                out,
                "gateway_rate_limited_total{{route=\"{}\"}} {}",
                label(i),
                s.rate_limited.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP gateway_token_verification_failures_total Tokens refused, by reason."
        );
        let _ = writeln!(
            out,
            "# TYPE gateway_token_verification_failures_total counter"
        );
        for (r, n) in reasons().zip(&self.verify_failures) {
            let _ = writeln!(
                out,
                "gateway_token_verification_failures_total{{reason=\"{r}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP gateway_jwks_fetches_total JWKS fetches, by result."
        );
        let _ = writeln!(out, "# TYPE gateway_jwks_fetches_total counter");
        let _ = writeln!(
            out,
            "gateway_jwks_fetches_total{{result=\"ok\"}} {}",
            self.jwks_ok.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "gateway_jwks_fetches_total{{result=\"error\"}} {}",
            self.jwks_failed.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP gateway_jwks_unknown_kid_refetches_total Refetches caused by tokens naming an unknown key."
        );
        let _ = writeln!(
            out,
            "# TYPE gateway_jwks_unknown_kid_refetches_total counter"
        );
        let _ = writeln!(
            out,
            "gateway_jwks_unknown_kid_refetches_total {}",
            self.unknown_kid.load(Ordering::Relaxed)
        );
        let cache = |e: CacheEvent| self.token_cache[e as usize].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP gateway_token_cache_lookups_total Tokens looked up in the verified-token cache, by result (a miss costs a signature verification)."
        );
        let _ = writeln!(out, "# TYPE gateway_token_cache_lookups_total counter");
        let _ = writeln!(
            out,
            "gateway_token_cache_lookups_total{{result=\"hit\"}} {}",
            cache(CacheEvent::Hit)
        );
        let _ = writeln!(
            out,
            "gateway_token_cache_lookups_total{{result=\"miss\"}} {}",
            cache(CacheEvent::Miss)
        );
        let _ = writeln!(
            out,
            "# HELP gateway_token_cache_evictions_total Verified tokens dropped from the cache to make room."
        );
        let _ = writeln!(out, "# TYPE gateway_token_cache_evictions_total counter");
        let _ = writeln!(
            out,
            "gateway_token_cache_evictions_total {}",
            cache(CacheEvent::Eviction)
        );
        let _ = writeln!(out, "# HELP gateway_jwks_keys Verifying keys held.");
        let _ = writeln!(out, "# TYPE gateway_jwks_keys gauge");
        let _ = writeln!(
            out,
            "gateway_jwks_keys {}",
            self.keys.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP gateway_jwks_age_seconds Seconds since the keys were last fetched successfully."
        );
        let _ = writeln!(out, "# TYPE gateway_jwks_age_seconds gauge");
        let _ = writeln!(
            out,
            "gateway_jwks_age_seconds {}",
            key_age.map_or(-1.0, |a| a.as_secs_f64())
        );
        out
    }
}

/// `gateway_jwks_revoked_keys`, and `gateway_jwks_revoked_key{kid}` for each key the issuer
/// revoked (a compromise) that this gateway refuses.
pub fn render_revoked_keys(out: &mut String, kids: &[String]) {
    let _ = writeln!(
        out,
        "# HELP gateway_jwks_revoked_keys Keys the issuer revoked (compromised) that this gateway refuses."
    );
    let _ = writeln!(out, "# TYPE gateway_jwks_revoked_keys gauge");
    let _ = writeln!(out, "gateway_jwks_revoked_keys {}", kids.len());
    let _ = writeln!(
        out,
        "# HELP gateway_jwks_revoked_key A key the issuer revoked, refused here (1 while refused)."
    );
    let _ = writeln!(out, "# TYPE gateway_jwks_revoked_key gauge");
    for kid in kids {
        let kid = kid
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = writeln!(out, "gateway_jwks_revoked_key{{kid=\"{kid}\"}} 1");
    }
}

/// `gateway_jwks_key_age_seconds{kid}`: how long each held key has been known here (a rotation
/// shows as a new, young kid; a removed key disappears).
pub fn render_key_ages(out: &mut String, ages: &[(String, Duration)]) {
    let _ = writeln!(
        out,
        "# HELP gateway_jwks_key_age_seconds Seconds since this gateway first saw each verifying key."
    );
    let _ = writeln!(out, "# TYPE gateway_jwks_key_age_seconds gauge");
    for (kid, age) in ages {
        let kid = kid
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = writeln!(
            out,
            "gateway_jwks_key_age_seconds{{kid=\"{kid}\"}} {:.3}",
            age.as_secs_f64()
        );
    }
}

/// What the process's allocator holds, in bytes: `allocated` to live objects; `active` in the
/// pages those objects occupy (the gap is fragmentation inside them); `resident` in physical
/// memory the allocator maps (also its metadata and freed pages not yet given back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocatorStats {
    /// Bytes allocated to live objects.
    pub allocated: u64,
    /// Bytes in the pages live objects occupy.
    pub active: u64,
    /// Bytes of physical memory the allocator holds.
    pub resident: u64,
}

static ALLOCATOR_STATS: OnceLock<fn() -> Option<AllocatorStats>> = OnceLock::new();

/// Says how to read the allocator's statistics. The gateway binary registers jemalloc's; a
/// process that registers nothing (a test linking the library) renders no allocator gauges.
pub fn set_allocator_stats(read: fn() -> Option<AllocatorStats>) {
    let _ = ALLOCATOR_STATS.set(read);
}

/// `gateway_allocator_{allocated,active,resident}_bytes`, when the allocator's statistics can be
/// read: they tell a leak (live bytes growing) from memory the allocator keeps (resident growing
/// while live bytes stay flat).
pub fn render_allocator(out: &mut String) {
    let Some(stats) = ALLOCATOR_STATS.get().and_then(|read| read()) else {
        return;
    };
    for (name, help, value) in [
        (
            "allocated",
            "Bytes the allocator has handed out to live objects.",
            stats.allocated,
        ),
        (
            "active",
            "Bytes in the allocator's pages that hold live objects.",
            stats.active,
        ),
        (
            "resident",
            "Bytes of physical memory the allocator holds (live pages, metadata, freed pages not yet returned).",
            stats.resident,
        ),
    ] {
        let _ = writeln!(out, "# HELP gateway_allocator_{name}_bytes {help}");
        let _ = writeln!(out, "# TYPE gateway_allocator_{name}_bytes gauge");
        let _ = writeln!(out, "gateway_allocator_{name}_bytes {value}");
    }
}
