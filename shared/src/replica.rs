//! A local replica of the issuer's revocation list, and the task that keeps it in step with the
//! revocation feed (`GET /v1/revocations`, Server-Sent Events; see [`crate::feed`]). The gateway
//! runs it, and so can any downstream service through [`crate::Authenticator::with_revocations`].
//!
//! The request path only reads memory: three hash lookups under a read lock. The follower loads
//! a snapshot, then applies events as they come; it reconnects with a backoff and resumes from
//! the last event id; on `reset` it merges the new snapshot into what it holds, so an entry is
//! never forgotten before its `exp` (plus the leeway) has passed. A revoked key
//! ([`RevocationEvent::Kid`]) is handed to the [`KeyCache`], which drops it at once and keeps it
//! out of every later JWKS; it is applied before the snapshot that carries it counts as loaded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http_body_util::BodyExt as _;

use crate::feed::{self, Heartbeat, Snapshot, SseParser, StreamId};
use crate::keys::KeyCache;
use crate::{AccessClaims, RevocationEvent};

/// The largest SSE event accepted (a snapshot of a few million entries).
const MAX_EVENT_BYTES: usize = 512 << 20;
/// The longest wait between reconnection attempts (before jitter), see [`ReplicaFollower::run`].
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How a replica follows the feed and judges its freshness.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// Seconds an entry is kept past its `exp` (the verification leeway).
    pub leeway: i64,
    /// Fail closed once the list has not been confirmed by the feed for this long; `None`: keep
    /// verifying with the last known list while the feed is down.
    pub max_staleness: Option<Duration>,
    /// Reconnect when the feed has sent nothing (heartbeats included) for this long.
    pub idle_timeout: Duration,
    /// The longest store-outage grace accepted from the feed (an `outage` event: the issuer
    /// cannot read its store, and holds back every acknowledgement this replica has not had for
    /// that long); zero: none, a store outage counts as staleness like any other silence.
    pub max_outage_grace: Duration,
}

impl Default for ReplicaConfig {
    /// A 30 s leeway, no staleness bound, reconnect after 20 s of silence (the feed's heartbeat
    /// is 5 s by default), store-outage graces of up to 5 minutes accepted.
    fn default() -> Self {
        ReplicaConfig {
            leeway: 30,
            max_staleness: None,
            idle_timeout: Duration::from_secs(20),
            max_outage_grace: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Default)]
struct Lists {
    /// jti → exp.
    jti: HashMap<Box<str>, i64>,
    /// sid → exp.
    sid: HashMap<Box<str>, i64>,
    /// sub → (iat_before, exp).
    sub: HashMap<Box<str>, (i64, i64)>,
    /// Revoked signing keys, kid → exp (enforced by the key cache; kept here so that a
    /// snapshot merge and the sweep treat them like every other entry).
    kid: HashMap<Box<str>, i64>,
}

impl Lists {
    fn len(&self) -> usize {
        self.jti.len() + self.sid.len() + self.sub.len() + self.kid.len()
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
            RevocationEvent::Kid { value, exp } => merge(&mut self.kid, value, exp),
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
        self.kid.retain(|_, exp| live(*exp));
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
    /// The list has not loaded yet (a cold verifier must not fail open).
    NotLoaded,
    /// The list is older than the configured maximum staleness (fail closed).
    Stale,
}

/// The replica, shared by every worker.
#[derive(Debug)]
pub struct RevocationReplica {
    lists: RwLock<Lists>,
    loaded: AtomicBool,
    /// Unix ms at which the feed last confirmed the list (snapshot, event or heartbeat).
    synced_ms: AtomicI64,
    /// Unix ms until which an `outage` event vouches for the list (0: none); cleared by the next
    /// confirmation.
    grace_until_ms: AtomicI64,
    outages: AtomicU64,
    connected: AtomicBool,
    /// Last event's delay from its creation to its application, ms.
    lag_ms: AtomicI64,
    events: AtomicU64,
    resets: AtomicU64,
    reconnects: AtomicU64,
    config: ReplicaConfig,
    /// Bumped whenever an entry revokes more (long-lived connections re-check their token).
    changes: tokio::sync::watch::Sender<u64>,
}

impl RevocationReplica {
    /// An empty, not yet loaded replica.
    pub fn new(config: ReplicaConfig) -> Self {
        RevocationReplica {
            lists: RwLock::new(Lists::default()),
            loaded: AtomicBool::new(false),
            synced_ms: AtomicI64::new(0),
            grace_until_ms: AtomicI64::new(0),
            outages: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            lag_ms: AtomicI64::new(0),
            events: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            config,
            changes: tokio::sync::watch::Sender::new(0),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ReplicaConfig {
        &self.config
    }

    /// The check on the request path.
    pub fn check(&self, claims: &AccessClaims) -> Check {
        if !self.loaded.load(Ordering::Acquire) {
            return Check::NotLoaded;
        }
        if let Some(max) = self.config.max_staleness
            && self.staleness() > max
            && self.outage_grace().is_none()
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

    /// True when this token is revoked by what the replica holds (no freshness rules; keys are
    /// the key cache's to judge).
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
            u64::try_from(crate::unix_now_ms().saturating_sub(synced)).unwrap_or(0),
        )
    }

    /// How much longer a store-outage grace from the feed vouches for the list, if one does.
    pub fn outage_grace(&self) -> Option<Duration> {
        let until = self.grace_until_ms.load(Ordering::Relaxed);
        let left = until.saturating_sub(crate::unix_now_ms());
        (until > 0 && left > 0).then(|| Duration::from_millis(left.unsigned_abs()))
    }

    /// `outage` events received (each a store outage at the issuer, or a repeat of one).
    pub fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    /// Takes an `outage` event's grace (capped by [`ReplicaConfig::max_outage_grace`]). Only a
    /// grace for a list that has loaded counts.
    pub fn outage(&self, grace: Duration) {
        self.outages.fetch_add(1, Ordering::Relaxed);
        let grace = grace.min(self.config.max_outage_grace);
        if grace.is_zero() || !self.loaded() {
            return;
        }
        let until = crate::unix_now_ms()
            .saturating_add(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
        self.grace_until_ms.store(until, Ordering::Relaxed);
    }

    /// A new feed connection was answered: a grace from an earlier one lasts at most `within`
    /// more. The replica that vouched for it may no longer be the one this follower is
    /// registered by, so the new connection must confirm the list soon (its catch-up or first
    /// heartbeat does at once) or the grace ends.
    fn reconnected(&self, within: Duration) {
        let cap = crate::unix_now_ms()
            .saturating_add(i64::try_from(within.as_millis()).unwrap_or(i64::MAX));
        let _ = self
            .grace_until_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |until| {
                (until > cap).then_some(cap)
            });
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
            .store(crate::unix_now_ms(), Ordering::Relaxed);
        // The feed reads its store again: an earlier outage's grace no longer holds (another
        // silence from now on is a cut feed, not a store outage the issuer vouched for).
        self.grace_until_ms.store(0, Ordering::Relaxed);
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
        let now = crate::unix_now();
        let leeway = self.config.leeway;
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
                crate::unix_now_ms().saturating_sub(c).max(0),
                Ordering::Relaxed,
            );
        }
        self.synced();
    }

    /// Marks the list as confirmed now without a feed (tests, or a verifier whose operator
    /// accepts running without revocations).
    #[doc(hidden)]
    pub fn set_synced_ms(&self, ms: i64) {
        self.synced_ms.store(ms, Ordering::Relaxed);
    }

    /// Drops expired entries; returns how many.
    pub fn sweep(&self) -> usize {
        self.lists
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .sweep(crate::unix_now(), self.config.leeway)
    }

    /// Drops expired entries every `every`, forever.
    pub async fn sweep_forever(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let dropped = self.sweep();
            if dropped > 0 {
                tracing::debug!(dropped, "expired revocation entries dropped");
            }
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

/// Follows the feed into a [`RevocationReplica`], and revoked keys into the [`KeyCache`].
pub struct ReplicaFollower {
    replica: Arc<RevocationReplica>,
    keys: Arc<KeyCache>,
    token: String,
    last_event_id: Option<String>,
    /// This follower's name at the feed ([`feed::SUBSCRIBER_HEADER`]): random, per process.
    subscriber: String,
}

impl std::fmt::Debug for ReplicaFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaFollower")
            .field("last_event_id", &self.last_event_id)
            .finish_non_exhaustive()
    }
}

impl ReplicaFollower {
    /// A follower for `replica`, reaching the feed through the issuer's metadata (or the key
    /// cache's configured `feed_url`) with the key cache's HTTP client, and presenting `token`
    /// (one of the issuer's `AUTH_FEED_TOKEN` values).
    pub fn new(replica: Arc<RevocationReplica>, keys: Arc<KeyCache>, token: String) -> Self {
        let mut id = [0u8; 16];
        let _ = aws_lc_rs::rand::fill(&mut id);
        ReplicaFollower {
            replica,
            keys,
            token,
            last_event_id: None,
            subscriber: id.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// Follows forever: reconnects with a jittered backoff (100 ms doubling to 1 s, back to the
    /// start once a connection delivered something), resuming from the last event id. The cap is
    /// low on purpose: a gateway that fails closed on a stale list is down until it reconnects,
    /// so after an outage of the issuer's store it must come back within about a second of the
    /// feed (measured by `scripts/chaos/run.sh`: with a 5 s cap, gateways stayed down up to
    /// ~6 s after Redis was back); a follower costs the issuer at most a request a second.
    pub async fn run(mut self) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let before = self.replica.synced_ms.load(Ordering::Relaxed);
            let result = self.connect().await;
            self.replica.connected.store(false, Ordering::Relaxed);
            let progressed = self.replica.synced_ms.load(Ordering::Relaxed) != before;
            if progressed {
                backoff = Duration::from_millis(100);
            }
            if let Err(e) = result {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "revocation feed disconnected; keeping the current list");
            }
            self.replica.reconnects.fetch_add(1, Ordering::Relaxed);
            // Jitter (0–50%) so that a fleet of followers does not reconnect in lockstep.
            let mut byte = [0u8; 1];
            let _ = aws_lc_rs::rand::fill(&mut byte);
            let jitter = u64::from(byte[0]) * backoff.as_millis() as u64 / 512;
            tokio::time::sleep(backoff + Duration::from_millis(jitter)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Starts [`ReplicaFollower::run`], and a sweep of expired entries every 30 s, on the current
    /// Tokio runtime; abort the handles to stop.
    pub fn spawn(self) -> [tokio::task::JoinHandle<()>; 2] {
        let replica = Arc::clone(&self.replica);
        [
            tokio::spawn(self.run()),
            tokio::spawn(replica.sweep_forever(Duration::from_secs(30))),
        ]
    }

    /// One connection, until it fails.
    async fn connect(&mut self) -> Result<(), FeedError> {
        let idle_timeout = self.replica.config.idle_timeout;
        let url = self
            .keys
            .feed_url()
            .await
            .map_err(|e| FeedError::Connect(e.to_string()))?;
        let mut request = hyper::Request::get(&url)
            .header(http::header::ACCEPT, "text/event-stream")
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            );
        if !self.replica.config.max_outage_grace.is_zero() {
            request = request.header(feed::SUBSCRIBER_HEADER, self.subscriber.as_str());
        }
        if let Some(id) = &self.last_event_id {
            request = request.header("last-event-id", id.as_str());
        }
        let request = request
            .body(crate::http_client::empty())
            .map_err(|e| FeedError::Connect(format!("{url}: {e}")))?;
        let res = tokio::time::timeout(idle_timeout, self.keys.client().request(request))
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
        self.replica.connected.store(true, Ordering::Relaxed);
        self.replica.reconnected(Duration::from_secs(1));
        let mut body = res.into_body();
        let mut parser = SseParser::new(MAX_EVENT_BYTES);
        loop {
            let frame = tokio::time::timeout(idle_timeout, body.frame())
                .await
                .map_err(|_| FeedError::Idle(idle_timeout))?;
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

    /// Hands a revoked key to the key cache, for as long as its entry lives; when the cache held
    /// it, the JWKS is fetched again at once for the key that replaced it.
    fn revoke_key(&self, event: &RevocationEvent) {
        if let Some(kid) = event.kid() {
            let until = event.exp().saturating_add(self.replica.config.leeway);
            if until >= crate::unix_now() && self.keys.revoke_key(kid, until) {
                let keys = Arc::clone(&self.keys);
                tokio::spawn(async move {
                    let _ = keys.fetch().await;
                });
            }
        }
    }

    fn handle(&mut self, event: feed::SseEvent) -> Result<(), FeedError> {
        let bad = |e: serde_json::Error| FeedError::Protocol(format!("{}: {e}", event.event));
        match event.event.as_str() {
            feed::SNAPSHOT => {
                let snapshot: Snapshot = serde_json::from_str(&event.data).map_err(bad)?;
                let n = snapshot.entries.len();
                // Keys first: the list counts as loaded once the snapshot is merged.
                for e in &snapshot.entries {
                    self.revoke_key(e);
                }
                self.replica.merge_snapshot(snapshot.entries);
                self.last_event_id = event.id;
                tracing::info!(
                    entries = n,
                    held = self.replica.len(),
                    "revocation snapshot loaded"
                );
            }
            feed::REVOKE | feed::KEY_REVOKED => {
                let e: RevocationEvent = serde_json::from_str(&event.data).map_err(bad)?;
                let created = event
                    .id
                    .as_deref()
                    .and_then(|id| id.split_once('/'))
                    .and_then(|(_, id)| id.parse::<StreamId>().ok())
                    .and_then(|id| i64::try_from(id.ms).ok());
                self.revoke_key(&e);
                self.replica.apply(e, created);
                if event.id.is_some() {
                    self.last_event_id = event.id;
                }
            }
            feed::HEARTBEAT => {
                let _: Heartbeat = serde_json::from_str(&event.data).map_err(bad)?;
                self.replica.synced();
            }
            feed::OUTAGE => {
                let o: feed::Outage = serde_json::from_str(&event.data).map_err(bad)?;
                let before = self.replica.outage_grace().is_some();
                self.replica.outage(Duration::from_millis(o.grace_ms));
                if !before && let Some(g) = self.replica.outage_grace() {
                    tracing::warn!(
                        grace_ms = g.as_millis() as u64,
                        "the issuer cannot read its store: keeping the list, vouched for by the feed"
                    );
                }
            }
            feed::RESET => {
                // A snapshot follows; it is merged into what we hold.
                self.replica.resets.fetch_add(1, Ordering::Relaxed);
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
    use crate::claims::Audience;

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

    fn config(max_staleness: Option<u64>) -> ReplicaConfig {
        ReplicaConfig {
            max_staleness: max_staleness.map(Duration::from_secs),
            ..ReplicaConfig::default()
        }
    }

    #[test]
    fn nothing_passes_before_the_first_snapshot_and_entries_match_their_tokens() {
        let r = RevocationReplica::new(config(None));
        let c = claims("j1", "s1", "u1", 100);
        assert_eq!(r.check(&c), Check::NotLoaded);
        let far = crate::unix_now() + 3600;
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
        // A key entry is held (and swept) like the others; it is the key cache that enforces it.
        r.apply(
            RevocationEvent::Kid {
                value: "k1".into(),
                exp: far,
            },
            None,
        );
        assert_eq!(r.len(), 4);
        assert_eq!(r.check(&claims("j3", "s3", "u3", 100)), Check::Pass);
    }

    #[test]
    fn a_snapshot_merges_and_never_forgets_live_entries() {
        let r = RevocationReplica::new(config(None));
        let far = crate::unix_now() + 3600;
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
        let r = RevocationReplica::new(config(None));
        let now = crate::unix_now();
        r.merge_snapshot(vec![
            RevocationEvent::Jti {
                value: "old".into(),
                exp: now - 31,
            },
            RevocationEvent::Jti {
                value: "in-leeway".into(),
                exp: now - 10,
            },
            RevocationEvent::Kid {
                value: "old-key".into(),
                exp: now - 31,
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
        r.apply(
            RevocationEvent::Kid {
                value: "gone-key".into(),
                exp: now - 100,
            },
            None,
        );
        assert_eq!(r.sweep(), 2);
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn changes_are_signalled_only_when_more_is_revoked() {
        let r = RevocationReplica::new(config(None));
        let rx = r.changes();
        let far = crate::unix_now() + 3600;
        let e = RevocationEvent::Sid {
            value: "s1".into(),
            exp: far,
        };
        r.merge_snapshot(vec![e.clone()]);
        assert_eq!(*rx.borrow(), 1);
        r.apply(e, None);
        assert_eq!(*rx.borrow(), 1, "a duplicate changes nothing");
        r.apply(
            RevocationEvent::Kid {
                value: "k".into(),
                exp: far,
            },
            None,
        );
        assert_eq!(*rx.borrow(), 2, "a revoked key is more revoked");
    }

    #[test]
    fn staleness_beyond_the_bound_fails_closed() {
        let r = RevocationReplica::new(config(Some(1)));
        r.merge_snapshot(vec![]);
        let c = claims("j", "s", "u", 1);
        assert_eq!(r.check(&c), Check::Pass);
        r.set_synced_ms(crate::unix_now_ms() - 5_000);
        assert_eq!(r.check(&c), Check::Stale);
        // Without a bound, a stale list keeps serving.
        let open = RevocationReplica::new(config(None));
        open.merge_snapshot(vec![]);
        open.set_synced_ms(crate::unix_now_ms() - 5_000_000);
        assert_eq!(open.check(&c), Check::Pass);
    }

    #[test]
    fn an_outage_grace_vouches_for_a_stale_list_until_it_ends_or_the_feed_speaks_again() {
        let far = crate::unix_now() + 3600;
        let c = claims("j", "s", "u", 1);
        let revoked = claims("jr", "s2", "u2", 1);

        // Not before the list has loaded: a grace cannot stand in for a snapshot.
        let cold = RevocationReplica::new(config(Some(1)));
        cold.outage(Duration::from_secs(30));
        assert_eq!(cold.outage_grace(), None);
        assert_eq!(cold.check(&c), Check::NotLoaded);

        let r = RevocationReplica::new(config(Some(1)));
        r.merge_snapshot(vec![RevocationEvent::Jti {
            value: "jr".into(),
            exp: far,
        }]);
        r.set_synced_ms(crate::unix_now_ms() - 5_000);
        assert_eq!(r.check(&c), Check::Stale);
        r.outage(Duration::from_secs(30));
        let left = r.outage_grace().expect("a grace runs");
        assert!(left > Duration::from_secs(25) && left <= Duration::from_secs(30));
        assert_eq!(r.check(&c), Check::Pass, "the grace vouches for the list");
        assert_eq!(
            r.check(&revoked),
            Check::Revoked,
            "what the list holds is still refused"
        );
        assert_eq!(r.outages(), 1);

        // The feed speaks again: the grace is over, and the next silence counts from there.
        r.apply(
            RevocationEvent::Sid {
                value: "s9".into(),
                exp: far,
            },
            None,
        );
        assert_eq!(r.outage_grace(), None);
        r.set_synced_ms(crate::unix_now_ms() - 5_000);
        assert_eq!(r.check(&c), Check::Stale);

        // A grace that has run out vouches for nothing.
        r.outage(Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(r.outage_grace(), None);
        assert_eq!(r.check(&c), Check::Stale);

        // A new connection leaves an earlier grace a second at most, for it to confirm the list.
        r.outage(Duration::from_secs(30));
        r.reconnected(Duration::from_secs(1));
        assert!(r.outage_grace().unwrap() <= Duration::from_secs(1));
        r.reconnected(Duration::from_secs(5));
        assert!(
            r.outage_grace().unwrap() <= Duration::from_secs(1),
            "never lengthened"
        );

        // The replica's own cap bounds what the feed offers, and zero refuses every grace.
        let capped = RevocationReplica::new(ReplicaConfig {
            max_outage_grace: Duration::from_secs(2),
            ..config(Some(1))
        });
        capped.merge_snapshot(vec![]);
        capped.outage(Duration::from_secs(600));
        assert!(capped.outage_grace().unwrap() <= Duration::from_secs(2));
        let none = RevocationReplica::new(ReplicaConfig {
            max_outage_grace: Duration::ZERO,
            ..config(Some(1))
        });
        none.merge_snapshot(vec![]);
        none.set_synced_ms(crate::unix_now_ms() - 5_000);
        none.outage(Duration::from_secs(600));
        assert_eq!(none.outage_grace(), None);
        assert_eq!(none.check(&c), Check::Stale);
    }
}
