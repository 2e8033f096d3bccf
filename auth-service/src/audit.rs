//! The audit trail's writer. Every event goes to the `audit` log target at once (the full trail),
//! and, when it concerns a user, to the store, off the request path: one task per process writes
//! them in order from a bounded queue, so a slow store never holds up an answer. A failed login
//! at an unknown account is stored too, among the recent events of [`NO_USER`]: it then costs
//! what one at an existing account costs, on the request path (one log line, one queued event)
//! and after it (one store write, which on a busy core competes with the next answers alike).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use crate::storage::{AuditEvent, AuditStore};

/// Whose recent events hold the failed logins at unknown accounts: not a user id (those are
/// UUIDs), so no user's list.
pub const NO_USER: &str = "unknown-account";

/// Events waiting to be stored, at most (beyond it they are dropped from the store, counted and
/// logged; the log line of each was written already).
const QUEUE: usize = 8192;

enum Job {
    Record(Option<String>, AuditEvent),
    Flush(oneshot::Sender<()>),
}

/// Queues audit events for the store. Cheap to clone; every clone feeds the one writer task.
#[derive(Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<Job>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter").finish_non_exhaustive()
    }
}

impl AuditWriter {
    /// Starts the writer task on the current runtime, storing into `store`.
    pub fn start(store: Arc<dyn AuditStore>) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                match job {
                    Job::Record(Some(user), event) => {
                        if let Err(e) = store.record(&user, &event).await {
                            tracing::warn!(error = %e, kind = %event.kind, "could not store an audit event");
                        }
                    }
                    // About no user (a client, a key): the log line is the record.
                    Job::Record(None, _) => {}
                    Job::Flush(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        AuditWriter {
            tx,
            dropped: Arc::default(),
        }
    }

    /// Records an event of now: on the `audit` log target at once (the full trail), and queued
    /// for the user's recent events (`None`: about no user; the log line is the record). The
    /// same work whether or not it concerns a user, and it never waits: a store failure is
    /// logged, not returned, since the action it describes has already happened.
    pub fn event(
        &self,
        user: Option<&str>,
        kind: &str,
        actor: Option<&str>,
        detail: serde_json::Value,
    ) {
        tracing::info!(target: "audit", kind, user_id = user, actor, detail = %detail, "audit");
        self.queue(user, event_now(kind, actor, detail));
    }

    /// Records a failed login: as [`AuditWriter::event`], and stored for an unknown account too
    /// (as [`NO_USER`]'s), so that an unknown account costs what an existing one does.
    pub fn failed_login(&self, user: Option<&str>, detail: serde_json::Value) {
        let kind = "login_failed";
        tracing::info!(target: "audit", kind, user_id = user, detail = %detail, "audit");
        self.queue(Some(user.unwrap_or(NO_USER)), event_now(kind, None, detail));
    }

    /// Queues `event` for `user`'s recent events (`None`: stored nowhere). Never waits.
    fn queue(&self, user: Option<&str>, event: AuditEvent) {
        if self
            .tx
            .try_send(Job::Record(user.map(str::to_owned), event))
            .is_err()
        {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(
                dropped = n,
                "the audit queue is full: an event was logged but not stored"
            );
        }
    }

    /// Waits until every event queued before this call is stored (or failed): a reader of the
    /// store then sees this process's events.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Job::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Events dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// An audit event of now.
fn event_now(kind: &str, actor: Option<&str>, detail: serde_json::Value) -> AuditEvent {
    AuditEvent {
        at_ms: shared::unix_now_ms(),
        kind: kind.to_owned(),
        actor: actor.map(str::to_owned),
        detail,
    }
}
