//! The gateway's side of the revocation replica (`shared::replica`, which it shares with
//! downstream services): the replica's configuration from the gateway's, and its metrics.

use shared::replica::{ReplicaConfig, RevocationReplica};

use crate::configuration::RevocationSettings;

/// The replica's configuration: the gateway's `[revocation]` settings and its leeway.
pub fn replica_config(settings: &RevocationSettings, leeway: i64) -> ReplicaConfig {
    ReplicaConfig {
        leeway,
        max_staleness: settings.max_staleness,
        idle_timeout: settings.idle_timeout,
        max_outage_grace: settings.max_outage_grace,
    }
}

/// Appends the replica's metrics (Prometheus text format).
pub fn render_metrics(replica: &RevocationReplica, out: &mut String) {
    use std::fmt::Write as _;
    let (events, resets, reconnects, lag_ms) = replica.counters();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    metric(
        "gateway_revocation_entries",
        "gauge",
        "Revocation entries held in the local replica.",
        replica.len().to_string(),
    );
    metric(
        "gateway_revocation_loaded",
        "gauge",
        "1 once the first snapshot has loaded.",
        u8::from(replica.loaded()).to_string(),
    );
    metric(
        "gateway_revocation_feed_connected",
        "gauge",
        "1 while the revocation feed connection is up.",
        u8::from(replica.connected()).to_string(),
    );
    metric(
        "gateway_revocation_staleness_seconds",
        "gauge",
        "Seconds since the feed last confirmed the list (snapshot, event or heartbeat).",
        format!("{:.3}", replica.staleness().as_secs_f64()),
    );
    metric(
        "gateway_revocation_outage_grace_seconds",
        "gauge",
        "Seconds the issuer's store-outage grace still vouches for the list (0: none running).",
        format!(
            "{:.3}",
            replica.outage_grace().unwrap_or_default().as_secs_f64()
        ),
    );
    metric(
        "gateway_revocation_outages_total",
        "counter",
        "Store-outage notices received from the feed.",
        replica.outages().to_string(),
    );
    metric(
        "gateway_revocation_last_sync_timestamp_seconds",
        "gauge",
        "Unix time the feed last confirmed the list (0: never).",
        format!("{:.3}", replica.last_sync().unwrap_or(0.0)),
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
