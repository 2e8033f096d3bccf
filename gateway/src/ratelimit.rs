//! Per-route rate limits, enforced by each gateway process on its own (like Envoy's local rate
//! limit: with N gateways a client gets up to N times the rate). GCRA, i.e. a token bucket of
//! `requests` tokens refilled over `per`, kept as one instant per key: no timer, no background
//! task, O(1) per request.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a limit counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitBy {
    /// The client address (through trusted proxies only; IPv6 per /64).
    Client,
    /// The verified user (`sub`); the client address on public routes.
    User,
}

const SHARDS: usize = 16;
/// Keys a shard keeps before it drops the ones whose bucket is full again.
const SHARD_KEYS: usize = 8192;

/// One route's limit and its buckets.
pub struct RateLimit {
    /// Requests allowed in a burst, and per `per`.
    pub requests: u32,
    /// The refill period.
    pub per: Duration,
    /// The key.
    pub by: LimitBy,
    interval: Duration,
    tolerance: Duration,
    hasher: std::collections::hash_map::RandomState,
    shards: Vec<Mutex<HashMap<String, Instant>>>,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("requests", &self.requests)
            .field("per", &self.per)
            .field("by", &self.by)
            .finish_non_exhaustive()
    }
}

impl RateLimit {
    /// `requests` per `per` (at least 1 and a positive period).
    pub fn new(requests: u32, per: Duration, by: LimitBy) -> RateLimit {
        let requests = requests.max(1);
        let interval = per / requests;
        RateLimit {
            requests,
            per,
            by,
            interval,
            tolerance: per.saturating_sub(interval),
            hasher: std::collections::hash_map::RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    /// Takes one token for `key` at `now`; `Err(wait)` when there is none.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let shard = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        let mut map = self.shards[shard]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let tat = map.get(key).copied().unwrap_or(now).max(now);
        let ahead = tat - now;
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        if map.len() >= SHARD_KEYS && !map.contains_key(key) {
            map.retain(|_, t| *t > now);
        }
        map.insert(key.to_owned(), tat + self.interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_requests_then_one_per_interval() {
        let l = RateLimit::new(3, Duration::from_secs(3), LimitBy::Client);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check("a", t0).is_ok());
        }
        let wait = l.check("a", t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        assert!(l.check("b", t0).is_ok(), "keys are separate");
        assert!(l.check("a", t0 + Duration::from_millis(999)).is_err());
        assert!(l.check("a", t0 + Duration::from_secs(1)).is_ok());
        assert!(l.check("a", t0 + Duration::from_secs(1)).is_err());
        // After a full period the whole burst is back.
        let later = t0 + Duration::from_secs(10);
        for _ in 0..3 {
            assert!(l.check("a", later).is_ok());
        }
        assert!(l.check("a", later).is_err());
    }

    #[test]
    fn idle_keys_are_dropped_when_a_shard_fills() {
        let l = RateLimit::new(1, Duration::from_millis(10), LimitBy::Client);
        let t0 = Instant::now();
        for i in 0..(SHARD_KEYS * SHARDS * 2) {
            let _ = l.check(&format!("k{i}"), t0);
        }
        let later = t0 + Duration::from_secs(1);
        for i in 0..(SHARD_KEYS * SHARDS * 2) {
            let _ = l.check(&format!("n{i}"), later);
        }
        let total: usize = l.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= SHARD_KEYS * SHARDS * 2, "{total}");
    }
}
