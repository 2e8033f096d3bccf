//! The revocation feed (`GET /v1/revocations`): one hub per process follows the store's event
//! stream with blocking reads on a connection of its own and fans the events out to every
//! connected gateway, so that a hundred gateways cost one Redis connection, not a hundred.
//!
//! Each gateway connection then gets, in order: a `snapshot` (or, when it resumes with
//! `Last-Event-ID`, the events it missed, read from the stream), then the hub's events (ids it
//! has already had are skipped), `heartbeat`s while the hub reads the stream successfully, and
//! `reset` plus a new snapshot when its position cannot be resumed or the stream was lost.
//!
//! **Store outages.** With `AUTH_FEED_OUTAGE_GRACE`, the hub registers itself in the store after
//! each read: its position and the followers (gateways naming themselves with
//! `Revocation-Subscriber`) it serves. When it cannot read the store, it tells those followers
//! (`outage`) that nothing will be acknowledged without them until its last registration plus the
//! grace (less a margin): every replica's store waits, before acknowledging a revocation, until
//! each registered hub has read it or its window has closed (`storage::redis`). Gateways that
//! fail closed on a stale list so keep serving through a store outage, while a revocation is
//! still refused everywhere within a second of its acknowledgement.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use shared::RevocationEvent;
use shared::feed::{self, Heartbeat, Position, Reset, Snapshot, StreamId};
use tokio::sync::{broadcast, mpsc};

use crate::storage::{FeedFollower, FeedState, OUTAGE_MARGIN, RevocationFeed, StoreError};

/// The longest pause between attempts to read the store again: short, because acknowledgements
/// wait for this hub to read once the store is back.
const MAX_RETRY: Duration = Duration::from_millis(250);

/// Events read per round trip.
const BATCH: usize = 1000;

/// What the hub tells every connection.
#[derive(Debug, Clone)]
pub enum HubMessage {
    /// A new event: its SSE name, its `data` already serialised.
    Event(StreamId, &'static str, Arc<str>),
    /// The stream was read successfully at this time (Unix ms).
    Heartbeat(i64),
    /// The stream's epoch changed (the store lost it): every connection starts over.
    Reset,
    /// The store cannot be read; the followers named in `to` (those the last registration
    /// listed) may trust their lists for `grace_ms` more.
    Outage {
        grace_ms: u64,
        to: Arc<HashSet<String>>,
    },
}

/// The followers the hub serves, by name, for its registrations.
#[derive(Debug, Default)]
struct Subscribers {
    /// Name → connections open under it.
    live: HashMap<String, usize>,
    /// Names whose last connection ended since the last registration.
    left: HashSet<String>,
    /// The names the last successful registration listed: the only ones a grace is promised to.
    registered: Arc<HashSet<String>>,
    /// When the last successful registration was sent.
    registered_at: Option<Instant>,
}

/// A follower's name held while its connection lasts.
pub struct Attached {
    subscribers: Arc<Mutex<Subscribers>>,
    name: Option<String>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        let Some(name) = self.name.take() else {
            return;
        };
        let mut s = self
            .subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = s.live.get_mut(&name) {
            *n -= 1;
            if *n == 0 {
                s.live.remove(&name);
                s.left.insert(name);
            }
        }
    }
}

/// Whether `name` may name a follower: 1 to 64 of `A-Z a-z 0-9 _ -`.
pub fn valid_subscriber(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Fans the event stream out to the feed's connections.
#[derive(Debug, Clone)]
pub struct Hub {
    tx: broadcast::Sender<HubMessage>,
    closing: Arc<tokio::sync::watch::Sender<bool>>,
    subscribers: Arc<Mutex<Subscribers>>,
    /// This process's reader name in the store (random).
    id: Arc<str>,
}

impl Default for Hub {
    fn default() -> Self {
        let mut id = [0u8; 12];
        let _ = aws_lc_rs::rand::fill(&mut id);
        Hub {
            tx: broadcast::channel(4096).0,
            closing: Arc::new(tokio::sync::watch::Sender::new(false)),
            subscribers: Arc::default(),
            id: id
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into(),
        }
    }
}

impl Hub {
    /// A receiver of everything the hub sends from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HubMessage> {
        self.tx.subscribe()
    }

    /// Feed connections open now.
    pub fn connections(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Ends every feed connection (at shutdown: they would otherwise hold it up until its
    /// timeout); gateways reconnect to another replica and resume.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Whether [`Hub::close`] was called.
    pub fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }

    fn send(&self, m: HubMessage) {
        // No receivers is fine: nobody is connected.
        let _ = self.tx.send(m);
    }

    /// Holds `name` (a follower's `Revocation-Subscriber`, if it sent one) as served by this
    /// hub until the returned value is dropped.
    pub fn attach(&self, name: Option<String>) -> Attached {
        if let Some(n) = &name {
            let mut s = self.lock();
            *s.live.entry(n.clone()).or_default() += 1;
            s.left.remove(n);
        }
        Attached {
            subscribers: Arc::clone(&self.subscribers),
            name,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Subscribers> {
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers this hub at `position` with the followers it serves now (see the module docs).
    async fn register(
        &self,
        store: &dyn RevocationFeed,
        position: StreamId,
    ) -> Result<(), StoreError> {
        let (serving, left): (Vec<String>, Vec<String>) = {
            let s = self.lock();
            (
                s.live.keys().cloned().collect(),
                s.left.iter().cloned().collect(),
            )
        };
        let sent = Instant::now();
        if store
            .confirm_reader(&self.id, position, &serving, &left)
            .await?
        {
            let mut s = self.lock();
            for l in &left {
                s.left.remove(l);
            }
            s.registered = Arc::new(serving.into_iter().collect());
            s.registered_at = Some(sent);
        }
        Ok(())
    }

    /// Tells the registered followers how long they may still trust their lists: until the last
    /// registration plus `grace`, less the margin.
    fn promise(&self, grace: Duration) {
        let (at, to) = {
            let s = self.lock();
            (s.registered_at, Arc::clone(&s.registered))
        };
        let Some(at) = at else {
            return;
        };
        if grace.is_zero() || to.is_empty() {
            return;
        }
        let left = (at + grace)
            .checked_duration_since(Instant::now())
            .and_then(|d| d.checked_sub(OUTAGE_MARGIN));
        if let Some(left) = left
            && !left.is_zero()
        {
            self.send(HubMessage::Outage {
                grace_ms: u64::try_from(left.as_millis()).unwrap_or(u64::MAX),
                to,
            });
        }
    }

    /// Follows the stream forever: blocking reads of up to `heartbeat`, then a heartbeat (after
    /// confirming the stream's epoch) at most once per `heartbeat`. While the store is
    /// unreachable no heartbeat is sent, so gateways see the feed's staleness grow, unless an
    /// `outage_grace` lets the hub vouch for them (an `outage` event after each failed attempt,
    /// or when a read takes half a heartbeat longer than it can). Every revoked key it reads is
    /// handed to `on_key_revoked` (this process's own keys), whether or not any gateway is
    /// connected.
    pub async fn run(
        self,
        store: Arc<dyn RevocationFeed>,
        heartbeat: Duration,
        outage_grace: Duration,
        on_key_revoked: impl Fn(&str, i64) + Send,
    ) {
        let mut follower: Option<Box<dyn FeedFollower>> = None;
        let mut at: Option<(String, StreamId)> = None;
        let mut checked = Instant::now();
        let mut backoff = Duration::from_millis(100);
        let mut failing = false;
        // A healthy read returns within `heartbeat` plus a round trip.
        let stalled = heartbeat + heartbeat / 2 + Duration::from_millis(100);
        loop {
            let step = {
                let step = self.step(
                    &*store,
                    &mut follower,
                    &mut at,
                    &mut checked,
                    heartbeat,
                    &on_key_revoked,
                );
                tokio::pin!(step);
                loop {
                    tokio::select! {
                        r = &mut step => break r,
                        () = tokio::time::sleep(stalled) => self.promise(outage_grace),
                    }
                }
            };
            match step {
                Ok(()) => {
                    if failing {
                        tracing::info!("revocation stream readable again");
                    }
                    failing = false;
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "cannot read the revocation stream; retrying");
                    }
                    failing = true;
                    self.promise(outage_grace);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_RETRY);
                }
            }
        }
    }

    async fn step(
        &self,
        store: &dyn RevocationFeed,
        follower: &mut Option<Box<dyn FeedFollower>>,
        at: &mut Option<(String, StreamId)>,
        checked: &mut Instant,
        heartbeat: Duration,
        on_key_revoked: &(impl Fn(&str, i64) + Send),
    ) -> Result<(), StoreError> {
        let (epoch, position) = match at {
            Some(p) => p,
            None => {
                let state = store.feed_state().await?;
                *checked = Instant::now();
                at.insert((state.epoch, state.last))
            }
        };
        let reader = match follower {
            Some(f) => f,
            None => follower.insert(store.follower().await?),
        };
        let events = reader.wait_after(*position, heartbeat, BATCH).await?;
        for (id, event) in events {
            if let Some(kid) = event.kid() {
                on_key_revoked(kid, event.exp());
            }
            let data: Arc<str> = serde_json::to_string(&event)
                .map_err(|e| StoreError::Other(e.into()))?
                .into();
            *position = id;
            self.send(HubMessage::Event(id, event_name(&event), data));
        }
        // Everything read so far is with the connections: register that (acknowledgements of
        // revocations wait for it).
        self.register(store, *position).await?;
        if checked.elapsed() >= heartbeat {
            let state = store.feed_state().await?;
            *checked = Instant::now();
            if state.epoch != *epoch {
                tracing::warn!(
                    "the revocation stream was lost and restarted: gateways get a reset and a new snapshot"
                );
                *at = Some((state.epoch, state.last));
                self.send(HubMessage::Reset);
            } else {
                self.send(HubMessage::Heartbeat(shared::unix_now_ms()));
            }
        }
        Ok(())
    }
}

/// The SSE event name an entry travels under: `key_revoked` for a key, `revoke` for the rest.
fn event_name(event: &RevocationEvent) -> &'static str {
    if event.kid().is_some() {
        feed::KEY_REVOKED
    } else {
        feed::REVOKE
    }
}

/// One SSE frame.
fn frame(event: &str, id: Option<&Position>, data: &str) -> Bytes {
    let mut s = String::with_capacity(data.len() + 64);
    s.push_str("event: ");
    s.push_str(event);
    s.push('\n');
    if let Some(id) = id {
        s.push_str("id: ");
        s.push_str(&id.to_string());
        s.push('\n');
    }
    s.push_str("data: ");
    s.push_str(data);
    s.push_str("\n\n");
    Bytes::from(s)
}

/// Why a connection's task ended.
enum Stop {
    /// The gateway went away.
    Gone,
    /// The store failed; the gateway reconnects and resumes.
    Store(StoreError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, Stop> {
    serde_json::to_string(v).map_err(|e| Stop::Store(StoreError::Other(e.into())))
}

/// One gateway's connection.
struct Connection {
    store: Arc<dyn RevocationFeed>,
    tx: mpsc::Sender<Bytes>,
    epoch: String,
    last: StreamId,
    /// The follower's name, if it gave one.
    subscriber: Option<String>,
}

impl Connection {
    async fn send(&self, bytes: Bytes) -> Result<(), Stop> {
        self.tx.send(bytes).await.map_err(|_| Stop::Gone)
    }

    fn position(&self) -> Position {
        Position {
            epoch: self.epoch.clone(),
            id: self.last,
        }
    }

    async fn revoke(&mut self, id: StreamId, name: &str, data: &str) -> Result<(), Stop> {
        self.last = id;
        let f = frame(name, Some(&self.position()), data);
        self.send(f).await
    }

    /// The events after our position, from the stream.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        loop {
            let events = self.store.events_after(self.last, BATCH).await?;
            let done = events.len() < BATCH;
            for (id, event) in events {
                self.revoke(id, event_name(&event), &json(&event)?).await?;
            }
            if done {
                return Ok(());
            }
        }
    }

    /// Every live entry as of `state`, then whatever came after.
    async fn snapshot(&mut self, state: &FeedState) -> Result<(), Stop> {
        self.epoch = state.epoch.clone();
        self.last = state.last;
        let entries: Vec<RevocationEvent> = self.store.live_entries(shared::unix_now()).await?;
        let snapshot = Snapshot {
            position: self.position().to_string(),
            time_ms: shared::unix_now_ms(),
            entries,
        };
        let f = frame(feed::SNAPSHOT, Some(&self.position()), &json(&snapshot)?);
        self.send(f).await?;
        self.catch_up().await
    }

    async fn reset(&mut self, reason: &str, state: &FeedState) -> Result<(), Stop> {
        let data = json(&Reset {
            reason: reason.to_owned(),
        })?;
        self.send(frame(feed::RESET, None, &data)).await?;
        self.snapshot(state).await
    }

    /// Resumes from `position` if every later event is still retained, else resets.
    async fn start(
        &mut self,
        resume: Option<Result<Position, ()>>,
        state: FeedState,
    ) -> Result<(), Stop> {
        match resume {
            None => self.snapshot(&state).await,
            Some(Err(())) => self.reset("invalid", &state).await,
            Some(Ok(position)) => match state.resume(&position) {
                Ok(()) => {
                    self.epoch = position.epoch;
                    self.last = position.id;
                    self.catch_up().await
                }
                Err(reason) => self.reset(reason, &state).await,
            },
        }
    }

    async fn follow(
        &mut self,
        mut rx: broadcast::Receiver<HubMessage>,
        mut closing: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        loop {
            let message = tokio::select! {
                m = rx.recv() => m,
                () = self.tx.closed() => return Err(Stop::Gone),
                _ = closing.wait_for(|c| *c) => return Err(Stop::Gone),
            };
            match message {
                Ok(HubMessage::Event(id, name, data)) => {
                    if id > self.last {
                        self.revoke(id, name, &data).await?;
                    }
                }
                Ok(HubMessage::Heartbeat(time_ms)) => {
                    let data = json(&Heartbeat { time_ms })?;
                    self.send(frame(feed::HEARTBEAT, None, &data)).await?;
                }
                Ok(HubMessage::Outage { grace_ms, to }) => {
                    if self.subscriber.as_ref().is_some_and(|n| to.contains(n)) {
                        let data = json(&feed::Outage {
                            time_ms: shared::unix_now_ms(),
                            grace_ms,
                        })?;
                        self.send(frame(feed::OUTAGE, None, &data)).await?;
                    }
                }
                Ok(HubMessage::Reset) => {
                    let state = self.store.feed_state().await?;
                    self.reset("epoch", &state).await?;
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too slow for the hub's buffer: read what we missed from the stream.
                    let state = self.store.feed_state().await?;
                    match state.resume(&self.position()) {
                        Ok(()) => self.catch_up().await?,
                        Err(reason) => self.reset(reason, &state).await?,
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return Err(Stop::Gone),
            }
        }
    }
}

/// Serves one gateway: `state` was read after subscribing to the hub, so nothing falls between
/// what the stream read returns and what the hub sends. Ends when the gateway goes away or the
/// store fails (the gateway then resumes on a new connection).
pub async fn serve(
    store: Arc<dyn RevocationFeed>,
    hub: &Hub,
    rx: broadcast::Receiver<HubMessage>,
    state: FeedState,
    resume: Option<Result<Position, ()>>,
    tx: mpsc::Sender<Bytes>,
    subscriber: Option<String>,
) {
    let closing = hub.closing();
    let _attached = hub.attach(subscriber.clone());
    let mut conn = Connection {
        store,
        tx,
        epoch: state.epoch.clone(),
        last: state.last,
        subscriber,
    };
    let result = match conn.start(resume, state).await {
        Ok(()) => conn.follow(rx, closing).await,
        Err(e) => Err(e),
    };
    if let Err(Stop::Store(e)) = result {
        tracing::warn!(error = %e, "revocation feed connection ended by a store failure");
    }
}

/// The response body: frames from the connection's task.
pub struct FeedBody(pub mpsc::Receiver<Bytes>);

impl futures_util::Stream for FeedBody {
    type Item = Result<Bytes, std::convert::Infallible>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|b| b.map(Ok))
    }
}
