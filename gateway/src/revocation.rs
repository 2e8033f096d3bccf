//! The local replica of the revocation list, and the task that keeps it in step with the
//! issuer's feed (`GET /v1/revocations`, Server-Sent Events; see `shared::feed`).
//!
//! The request path only reads memory: three hash lookups under a read lock. The follower loads
//! a snapshot, then applies events as they come; it reconnects with a backoff and resumes from
//! the last event id; on `reset` it merges the new snapshot into what it holds, so an entry is
//! never forgotten before its `exp` (plus the leeway) has passed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http_body_util::BodyExt as _;
use shared::feed::{self, Heartbeat, Snapshot, SseParser, StreamId};
use shared::{AccessClaims, RevocationEvent};

use crate::configuration::RevocationSettings;
use crate::keys::KeyManager;

/// The largest SSE event accepted (a snapshot of a few million entries).
const MAX_EVENT_BYTES: usize = 512 << 20;

#[derive(Debug, Default)]
struct Lists {
    /// jti → exp.
    jti: HashMap<Box<str>, i64>,
    /// sid → exp.
    sid: HashMap<Box<str>, i64>,
    /// sub → (iat_before, exp).
    sub: HashMap<Box<str>, (i64, i64)>,
}

impl Lists {
    fn len(&self) -> usize {
        self.jti.len() + self.sid.len() + self.sub.len()
    }

    /// Adds an entry, keeping the later `exp` and `iat_before` of a duplicate. True if it
    /// revokes more than before.
    fn apply(&mut self, event: RevocationEvent) -> bool {
        fn merge(map: &mut HashMap<Box<str>, i64>, value: String, exp: i64) -> bool {
            match map.get_mut(value.as_str()) {
                Some(e) => {
                    *e = (*e).max(exp);
                    false
                }
                None => {
                    map.insert(value.into_boxed_str(), exp);
                    true
                }
            }
        }
        match event {
            RevocationEvent::Jti { value, exp } => merge(&mut self.jti, value, exp),
            RevocationEvent::Sid { value, exp } => merge(&mut self.sid, value, exp),
            RevocationEvent::Sub {
                value,
                iat_before,
                exp,
            } => match self.sub.get_mut(value.as_str()) {
                Some((ib, e)) => {
                    let wider = iat_before > *ib;
                    *ib = (*ib).max(iat_before);
                    *e = (*e).max(exp);
                    wider
                }
                None => {
                    self.sub.insert(value.into_boxed_str(), (iat_before, exp));
                    true
                }
            },
        }
    }

    fn covers(&self, c: &AccessClaims) -> bool {
        self.jti.contains_key(c.jti.as_str())
            || c.sid
                .as_deref()
                .is_some_and(|sid| self.sid.contains_key(sid))
            || self
                .sub
                .get(c.sub.as_str())
                .is_some_and(|(iat_before, _)| c.iat < *iat_before)
    }

    /// Drops entries whose `exp` plus `leeway` has passed: every token they cover has expired.
    fn sweep(&mut self, now: i64, leeway: i64) -> usize {
        let before = self.len();
        let live = |exp: i64| exp.saturating_add(leeway) >= now;
        self.jti.retain(|_, exp| live(*exp));
        self.sid.retain(|_, exp| live(*exp));
        self.sub.retain(|_, (_, exp)| live(*exp));
        before - self.len()
    }
}

/// Whether a verified token may pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Not revoked.
    Pass,
    /// Revoked.
    Revoked,
    /// The list has not loaded yet (a cold gateway must not fail open).
    NotLoaded,
    /// The list is older than the configured maximum staleness (fail closed).
    Stale,
}

/// The replica, shared by every worker.
#[derive(Debug)]
pub struct Revocations {
    lists: RwLock<Lists>,
    loaded: AtomicBool,
    /// Unix ms at which the feed last confirmed the list (snapshot, event or heartbeat).
    synced_ms: AtomicI64,
    connected: AtomicBool,
    /// Last `revoke` event's delay from its creation to its application, ms.
    lag_ms: AtomicI64,
    events: AtomicU64,
    resets: AtomicU64,
    reconnects: AtomicU64,
    leeway: i64,
    max_staleness: Option<Duration>,
    /// Bumped whenever an entry revokes more (WebSocket connections re-check their token).
    changes: tokio::sync::watch::Sender<u64>,
}

impl Revocations {
    /// An empty, not yet loaded replica.
    pub fn new(settings: &RevocationSettings, leeway: i64) -> Self {
        Revocations {
            lists: RwLock::new(Lists::default()),
            loaded: AtomicBool::new(false),
            synced_ms: AtomicI64::new(0),
            connected: AtomicBool::new(false),
            lag_ms: AtomicI64::new(0),
            events: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            leeway,
            max_staleness: settings.max_staleness,
            changes: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The check on the request path.
    pub fn check(&self, claims: &AccessClaims) -> Check {
        if !self.loaded.load(Ordering::Acquire) {
            return Check::NotLoaded;
        }
        if let Some(max) = self.max_staleness
            && self.staleness() > max
        {
            return Check::Stale;
        }
        let lists = self
            .lists
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if lists.covers(claims) {
            Check::Revoked
        } else {
            Check::Pass
        }
    }

    /// True when this token is revoked by what the replica holds (no freshness rules).
    pub fn covers(&self, claims: &AccessClaims) -> bool {
        self.lists
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .covers(claims)
    }

    /// Whether the first snapshot has loaded (sticky: readiness does not flap with the feed).
    pub fn loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// How long since the feed last confirmed the list (since start, if it never did).
    pub fn staleness(&self) -> Duration {
        let synced = self.synced_ms.load(Ordering::Relaxed);
        Duration::from_millis(
            u64::try_from(shared::unix_now_ms().saturating_sub(synced)).unwrap_or(0),
        )
    }

    /// Unix seconds of the last confirmation, if any.
    pub fn last_sync(&self) -> Option<f64> {
        let ms = self.synced_ms.load(Ordering::Relaxed);
        (ms > 0).then(|| ms as f64 / 1000.0)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lists
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the feed connection is up.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Counters for metrics: (events applied, resets, reconnects, last lag in ms).
    pub fn counters(&self) -> (u64, u64, u64, i64) {
        (
            self.events.load(Ordering::Relaxed),
            self.resets.load(Ordering::Relaxed),
            self.reconnects.load(Ordering::Relaxed),
            self.lag_ms.load(Ordering::Relaxed),
        )
    }

    /// Notified when an entry revokes more than before.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn synced(&self) {
        // Unix time, not `Instant`: staleness is also shown as a timestamp.
        self.synced_ms
            .store(shared::unix_now_ms(), Ordering::Relaxed);
    }

    fn apply_all(&self, events: impl IntoIterator<Item = RevocationEvent>) {
        let wider = {
            let mut lists = self
                .lists
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut wider = false;
            for e in events {
                wider |= lists.apply(e);
            }
            wider
        };
        if wider {
            self.changes.send_modify(|g| *g += 1);
        }
    }

    /// Merges a snapshot (never dropping live entries) and marks the list loaded.
    pub fn merge_snapshot(&self, entries: Vec<RevocationEvent>) {
        let now = shared::unix_now();
        let leeway = self.leeway;
        self.apply_all(
            entries
                .into_iter()
                .filter(|e| e.exp().saturating_add(leeway) >= now),
        );
        self.loaded.store(true, Ordering::Release);
        self.synced();
    }

    /// Applies one event created at `created_ms` (its stream id's time).
    pub fn apply(&self, event: RevocationEvent, created_ms: Option<i64>) {
        self.apply_all([event]);
        self.events.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = created_ms {
            self.lag_ms.store(
                shared::unix_now_ms().saturating_sub(c).max(0),
                Ordering::Relaxed,
            );
        }
        self.synced();
    }

    /// Appends the replica's metrics (Prometheus text format).
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let (events, resets, reconnects, lag_ms) = self.counters();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        };
        metric(
            "gateway_revocation_entries",
            "gauge",
            "Revocation entries held in the local replica.",
            self.len().to_string(),
        );
        metric(
            "gateway_revocation_loaded",
            "gauge",
            "1 once the first snapshot has loaded.",
            u8::from(self.loaded()).to_string(),
        );
        metric(
            "gateway_revocation_feed_connected",
            "gauge",
            "1 while the revocation feed connection is up.",
            u8::from(self.connected()).to_string(),
        );
        metric(
            "gateway_revocation_staleness_seconds",
            "gauge",
            "Seconds since the feed last confirmed the list (snapshot, event or heartbeat).",
            format!("{:.3}", self.staleness().as_secs_f64()),
        );
        metric(
            "gateway_revocation_last_sync_timestamp_seconds",
            "gauge",
            "Unix time the feed last confirmed the list (0: never).",
            format!("{:.3}", self.last_sync().unwrap_or(0.0)),
        );
        metric(
            "gateway_revocation_lag_seconds",
            "gauge",
            "Delay of the last revocation event from its creation to its application here.",
            format!("{:.3}", lag_ms as f64 / 1000.0),
        );
        metric(
            "gateway_revocation_events_total",
            "counter",
            "Revocation events applied.",
            events.to_string(),
        );
        metric(
            "gateway_revocation_resets_total",
            "counter",
            "Feed resets (a new snapshot merged after the position could not be resumed).",
            resets.to_string(),
        );
        metric(
            "gateway_revocation_feed_reconnects_total",
            "counter",
            "Feed connections that ended and were retried.",
            reconnects.to_string(),
        );
    }

    /// Drops expired entries; returns how many.
    pub fn sweep(&self) -> usize {
        self.lists
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .sweep(shared::unix_now(), self.leeway)
    }
}

/// Drops expired entries every `every`, forever.
pub async fn sweep_forever(revocations: Arc<Revocations>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let dropped = revocations.sweep();
        if dropped > 0 {
            tracing::debug!(dropped, "expired revocation entries dropped");
        }
    }
}

/// Why a feed connection ended.
#[derive(Debug, thiserror::Error)]
enum FeedError {
    #[error("{0}")]
    Connect(String),
    #[error("the feed sent nothing for {0:?}")]
    Idle(Duration),
    #[error("the feed ended the stream")]
    Ended,
    #[error("{0}")]
    Protocol(String),
}

/// Follows the feed into a [`Revocations`].
pub struct Follower {
    revocations: Arc<Revocations>,
    keys: Arc<KeyManager>,
    token: secrecy::SecretString,
    idle_timeout: Duration,
    last_event_id: Option<String>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("last_event_id", &self.last_event_id)
            .finish_non_exhaustive()
    }
}

impl Follower {
    /// A follower for `revocations`, reaching the feed through the issuer's metadata (or the
    /// configured `feed_url`) with the key manager's HTTP client.
    pub fn new(
        revocations: Arc<Revocations>,
        keys: Arc<KeyManager>,
        token: secrecy::SecretString,
        settings: &RevocationSettings,
    ) -> Self {
        Follower {
            revocations,
            keys,
            token,
            idle_timeout: settings.idle_timeout,
            last_event_id: None,
        }
    }

    /// Follows forever: reconnects with a jittered backoff (100 ms doubling to 5 s, back to the
    /// start once a connection delivered something), resuming from the last event id.
    pub async fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let before = self.revocations.synced_ms.load(Ordering::Relaxed);
            let result = self.connect().await;
            self.revocations.connected.store(false, Ordering::Relaxed);
            let progressed = self.revocations.synced_ms.load(Ordering::Relaxed) != before;
            if progressed {
                backoff = Duration::from_millis(100);
            }
            if let Err(e) = result {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "revocation feed disconnected; keeping the current list");
            }
            self.revocations.reconnects.fetch_add(1, Ordering::Relaxed);
            // Jitter (0–50%) so that a fleet of gateways does not reconnect in lockstep.
            let jitter =
                u64::from(uuid::Uuid::new_v4().as_bytes()[0]) * backoff.as_millis() as u64 / 512;
            tokio::time::sleep(backoff + Duration::from_millis(jitter)).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// One connection, until it fails.
    async fn connect(&mut self) -> Result<(), FeedError> {
        let url = self
            .keys
            .feed_url()
            .await
            .map_err(|e| FeedError::Connect(e.to_string()))?;
        let mut request = hyper::Request::get(&url)
            .header(http::header::ACCEPT, "text/event-stream")
            .header(
                http::header::AUTHORIZATION,
                format!(
                    "Bearer {}",
                    secrecy::ExposeSecret::expose_secret(&self.token)
                ),
            );
        if let Some(id) = &self.last_event_id {
            request = request.header("last-event-id", id.as_str());
        }
        let request = request
            .body(crate::upstream::empty())
            .map_err(|e| FeedError::Connect(format!("{url}: {e}")))?;
        let res = tokio::time::timeout(self.idle_timeout, self.keys.client().request(request))
            .await
            .map_err(|_| FeedError::Connect(format!("{url}: timed out")))?
            .map_err(|e| FeedError::Connect(format!("{url}: {e}")))?;
        if res.status() != http::StatusCode::OK {
            return Err(FeedError::Connect(format!("{url}: HTTP {}", res.status())));
        }
        let sse = res
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !sse {
            return Err(FeedError::Protocol(format!(
                "{url} does not answer with text/event-stream"
            )));
        }
        self.revocations.connected.store(true, Ordering::Relaxed);
        let mut body = res.into_body();
        let mut parser = SseParser::new(MAX_EVENT_BYTES);
        loop {
            let frame = tokio::time::timeout(self.idle_timeout, body.frame())
                .await
                .map_err(|_| FeedError::Idle(self.idle_timeout))?;
            let Some(frame) = frame else {
                return Err(FeedError::Ended);
            };
            let frame = frame.map_err(|e| FeedError::Connect(e.to_string()))?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            let events = parser
                .push(data)
                .map_err(|e| FeedError::Protocol(e.to_string()))?;
            for event in events {
                self.handle(event)?;
            }
        }
    }

    fn handle(&mut self, event: feed::SseEvent) -> Result<(), FeedError> {
        let bad = |e: serde_json::Error| FeedError::Protocol(format!("{}: {e}", event.event));
        match event.event.as_str() {
            feed::SNAPSHOT => {
                let snapshot: Snapshot = serde_json::from_str(&event.data).map_err(bad)?;
                let n = snapshot.entries.len();
                self.revocations.merge_snapshot(snapshot.entries);
                self.last_event_id = event.id;
                tracing::info!(
                    entries = n,
                    held = self.revocations.len(),
                    "revocation snapshot loaded"
                );
            }
            feed::REVOKE => {
                let e: RevocationEvent = serde_json::from_str(&event.data).map_err(bad)?;
                let created = event
                    .id
                    .as_deref()
                    .and_then(|id| id.split_once('/'))
                    .and_then(|(_, id)| id.parse::<StreamId>().ok())
                    .and_then(|id| i64::try_from(id.ms).ok());
                self.revocations.apply(e, created);
                if event.id.is_some() {
                    self.last_event_id = event.id;
                }
            }
            feed::HEARTBEAT => {
                let _: Heartbeat = serde_json::from_str(&event.data).map_err(bad)?;
                self.revocations.synced();
            }
            feed::RESET => {
                // A snapshot follows; it is merged into what we hold.
                self.revocations.resets.fetch_add(1, Ordering::Relaxed);
                self.last_event_id = None;
                tracing::warn!(data = %event.data, "revocation feed reset: reloading a snapshot");
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::claims::Audience;

    fn claims(jti: &str, sid: &str, sub: &str, iat: i64) -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            sub: sub.into(),
            aud: Audience::One("api".into()),
            client_id: "app".into(),
            exp: iat + 900,
            iat,
            nbf: iat,
            jti: jti.into(),
            sid: Some(sid.into()),
            roles: vec![],
            scope: String::new(),
        }
    }

    fn settings(max_staleness: Option<u64>) -> RevocationSettings {
        RevocationSettings {
            enabled: true,
            max_staleness: max_staleness.map(Duration::from_secs),
            idle_timeout: Duration::from_secs(20),
            sweep_interval: Duration::from_secs(30),
        }
    }

    #[test]
    fn nothing_passes_before_the_first_snapshot_and_entries_match_their_tokens() {
        let r = Revocations::new(&settings(None), 30);
        let c = claims("j1", "s1", "u1", 100);
        assert_eq!(r.check(&c), Check::NotLoaded);
        let far = shared::unix_now() + 3600;
        r.merge_snapshot(vec![RevocationEvent::Sid {
            value: "s9".into(),
            exp: far,
        }]);
        assert_eq!(r.check(&c), Check::Pass);
        r.apply(
            RevocationEvent::Jti {
                value: "j1".into(),
                exp: far,
            },
            None,
        );
        assert_eq!(r.check(&c), Check::Revoked);
        let c2 = claims("j2", "s1", "u1", 100);
        assert_eq!(r.check(&c2), Check::Pass);
        r.apply(
            RevocationEvent::Sub {
                value: "u1".into(),
                iat_before: 100,
                exp: far,
            },
            None,
        );
        assert_eq!(
            r.check(&c2),
            Check::Pass,
            "iat == iat_before is not covered"
        );
        r.apply(
            RevocationEvent::Sub {
                value: "u1".into(),
                iat_before: 50,
                exp: far,
            },
            None,
        );
        assert_eq!(
            r.check(&c2),
            Check::Pass,
            "a smaller iat_before never narrows"
        );
        r.apply(
            RevocationEvent::Sub {
                value: "u1".into(),
                iat_before: 101,
                exp: far,
            },
            None,
        );
        assert_eq!(r.check(&c2), Check::Revoked);
    }

    #[test]
    fn a_snapshot_merges_and_never_forgets_live_entries() {
        let r = Revocations::new(&settings(None), 30);
        let far = shared::unix_now() + 3600;
        r.merge_snapshot(vec![RevocationEvent::Sid {
            value: "s1".into(),
            exp: far,
        }]);
        r.merge_snapshot(vec![RevocationEvent::Sid {
            value: "s2".into(),
            exp: far,
        }]);
        assert_eq!(r.len(), 2);
        assert_eq!(r.check(&claims("j", "s1", "u", 1)), Check::Revoked);
    }

    #[test]
    fn expired_entries_are_swept_and_not_loaded() {
        let r = Revocations::new(&settings(None), 30);
        let now = shared::unix_now();
        r.merge_snapshot(vec![
            RevocationEvent::Jti {
                value: "old".into(),
                exp: now - 31,
            },
            RevocationEvent::Jti {
                value: "in-leeway".into(),
                exp: now - 10,
            },
        ]);
        assert_eq!(r.len(), 1, "an entry past exp + leeway is not even loaded");
        r.apply(
            RevocationEvent::Jti {
                value: "gone".into(),
                exp: now - 100,
            },
            None,
        );
        assert_eq!(r.sweep(), 1);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn changes_are_signalled_only_when_more_is_revoked() {
        let r = Revocations::new(&settings(None), 30);
        let rx = r.changes();
        let far = shared::unix_now() + 3600;
        let e = RevocationEvent::Sid {
            value: "s1".into(),
            exp: far,
        };
        r.merge_snapshot(vec![e.clone()]);
        assert_eq!(*rx.borrow(), 1);
        r.apply(e, None);
        assert_eq!(*rx.borrow(), 1, "a duplicate changes nothing");
    }

    #[test]
    fn staleness_beyond_the_bound_fails_closed() {
        let r = Revocations::new(&settings(Some(1)), 30);
        r.merge_snapshot(vec![]);
        let c = claims("j", "s", "u", 1);
        assert_eq!(r.check(&c), Check::Pass);
        r.synced_ms
            .store(shared::unix_now_ms() - 5_000, Ordering::Relaxed);
        assert_eq!(r.check(&c), Check::Stale);
        // Without a bound, a stale list keeps serving.
        let open = Revocations::new(&settings(None), 30);
        open.merge_snapshot(vec![]);
        open.synced_ms
            .store(shared::unix_now_ms() - 5_000_000, Ordering::Relaxed);
        assert_eq!(open.check(&c), Check::Pass);
    }
}
