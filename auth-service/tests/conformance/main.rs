//! The storage conformance suite: the same test bodies run against both backends (PostgreSQL +
//! Redis, and the embedded SQLite store), each test on stores of its own.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use std::sync::Arc;
use std::time::Duration;

use auth_service::storage::postgres::PgStore;
use auth_service::storage::redis::RedisStore;
use auth_service::storage::sqlite::SqliteStore;
use auth_service::storage::{
    AuditStore, ClientStore, ConsentStore, KeyStore, RateLimitStore, RevocationFeed,
    RevocationStore, SessionStore, UserStore,
};
use secrecy::SecretString;

mod bodies;

/// The leeway every conformance store is built with.
pub const LEEWAY: i64 = 30;
/// The feed retention every conformance store is built with.
pub const RETENTION: u64 = 100;

/// One backend's stores, and whatever keeps them alive (database, prefix, directory).
pub struct Stores {
    pub users: Arc<dyn UserStore>,
    pub keys: Arc<dyn KeyStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub revocations: Arc<dyn RevocationStore>,
    pub feed: Arc<dyn RevocationFeed>,
    pub rate: Arc<dyn RateLimitStore>,
    pub audit: Arc<dyn AuditStore>,
    pub clients: Arc<dyn ClientStore>,
    pub consents: Arc<dyn ConsentStore>,
    _guard: Box<dyn std::any::Any + Send + Sync>,
}

impl Stores {
    /// One shape's stores (the service's own constructor), kept alive by `guard`.
    fn from_set(
        set: auth_service::storage::Stores,
        guard: Box<dyn std::any::Any + Send + Sync>,
    ) -> Stores {
        Stores {
            users: set.users,
            keys: set.keys,
            sessions: set.sessions,
            revocations: set.revocations,
            feed: set.feed,
            rate: set.rate_limits,
            audit: set.audit,
            clients: set.clients,
            consents: set.consents,
            _guard: guard,
        }
    }
}

async fn postgres_redis() -> Stores {
    let resources = testkit::stores::Resources::create().await;
    let pg = PgStore::new(
        &SecretString::from(testkit::stores::url_for_db(&resources.db)),
        4,
        Duration::from_secs(5),
    )
    .unwrap();
    pg.migrate().await.unwrap();
    let pg = Arc::new(pg);
    let redis = Arc::new(
        RedisStore::connect(
            &SecretString::from(testkit::stores::redis_url()),
            &resources.prefix,
            LEEWAY,
            30 * 86_400,
            RETENTION,
            Duration::from_secs(5),
        )
        .await
        .unwrap(),
    );
    let set = auth_service::storage::Stores::shared(pg, redis);
    Stores::from_set(set, Box::new(resources))
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn sqlite() -> Stores {
    let dir = std::env::temp_dir().join(format!("conformance-{}", uuid::Uuid::new_v4().simple()));
    let store = Arc::new(SqliteStore::open(&dir.join("auth.db"), LEEWAY, RETENTION).unwrap());
    Stores::from_set(
        auth_service::storage::Stores::embedded(store),
        Box::new(TempDir(dir)),
    )
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod postgres_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::bodies::$name(&crate::postgres_redis().await).await;
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::bodies::$name(&crate::sqlite().await).await;
                }
            )*
        }
    };
}

conformance!(
    users_are_unique_case_insensitively_and_found_by_name_or_id,
    the_bootstrap_admin_goes_only_into_an_empty_table_once,
    changes_that_revoke_raise_tokens_not_before,
    users_are_listed_in_creation_order_by_keyset_pages,
    keys_move_from_next_to_current_to_retired_to_removed,
    a_compromise_replaces_every_key_with_one_current_key,
    refresh_rotation_reuse_and_grace,
    refresh_records_are_read_without_spending_and_end_at_the_tokens_expiry,
    concurrent_rotations_of_one_token_have_exactly_one_winner,
    the_absolute_session_limit_is_never_extended,
    sessions_are_listed_ended_one_by_one_or_all_together,
    revocations_merge_and_match_the_tokens_they_cover,
    the_feed_lists_events_in_order_and_every_live_entry,
    a_follower_wakes_up_for_a_new_event,
    a_clients_sign_in_profile_round_trips_and_changes_whole,
    browser_sessions_end_with_the_sessions_issued_through_them,
    an_issued_session_ends_when_its_browser_session_has_expired,
    using_an_app_keeps_its_browser_session_alive,
    an_authorization_code_is_taken_once,
    consents_grow_are_listed_withdrawn_and_go_with_the_user,
    expired_revocations_are_neither_live_nor_enforced,
    rate_limit_counters_count_within_a_window,
    rate_limit_counters_can_be_read_and_cleared,
    a_gate_grows_its_delays_and_admits_one_attempt_per_opening,
    the_audit_trail_keeps_each_users_recent_events_newest_first,
    clients_are_registered_updated_rotated_and_deleted,
);
