//! Argon2id password hashing, off the async workers, with bounded concurrency and queue.
//!
//! Hashing is CPU- and memory-heavy (19 MiB per hash by default). A semaphore caps how many run at
//! once (memory stays flat under a login flood) and a waiting-room bound turns overload into a
//! quick 503 instead of an unbounded queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::configuration::HashSettings;

/// Why hashing did not happen.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Too many requests are already waiting for a hashing slot.
    #[error("password hashing is saturated")]
    Busy,
    /// Hashing itself failed (a bug, or the blocking pool shut down).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The password matches.
    pub ok: bool,
    /// The stored hash uses other parameters than the current ones: rehash after login.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords.
#[derive(Debug)]
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    queue_limit: usize,
    verifications: AtomicUsize,
    /// Hash of a random password, verified against when a user does not exist, so unknown users
    /// cost the same time as known ones.
    dummy: String,
}

impl Hasher {
    /// Builds the hasher and computes its dummy hash.
    pub async fn new(settings: &HashSettings) -> anyhow::Result<Self> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("invalid Argon2 parameters: {e}"))?;
        let p = params.clone();
        let dummy = tokio::task::spawn_blocking(move || {
            hash_with(&p, &SecretString::from(crate::crypto::random_id()))
        })
        .await??;
        Ok(Hasher {
            params,
            permits: Arc::new(Semaphore::new(settings.concurrency)),
            waiting: AtomicUsize::new(0),
            queue_limit: settings.queue_limit,
            verifications: AtomicUsize::new(0),
            dummy,
        })
    }

    /// Requests waiting for a hashing slot right now.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Password verifications performed (real and dummy alike).
    pub fn verifications(&self) -> usize {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Hashes a password to a PHC string.
    pub async fn hash(&self, password: &SecretString) -> Result<String, HashError> {
        let params = self.params.clone();
        let pw = password.clone();
        self.run(move || hash_with(&params, &pw)).await
    }

    /// Verifies `password` against `stored` (a PHC string), or against the dummy hash when there
    /// is no user, so both paths take the same time. With no user the result is never `ok`.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<Verified, HashError> {
        let real = stored.is_some();
        let phc = stored.unwrap_or(&self.dummy).to_owned();
        let pw = password.clone();
        let current = self.params.clone();
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let outcome = self
            .run(move || {
                let Ok(hash) = PasswordHash::new(&phc) else {
                    return Ok(Verified {
                        ok: false,
                        needs_rehash: false,
                    });
                };
                let ok = Argon2::default()
                    .verify_password(pw.expose_secret().as_bytes(), &hash)
                    .is_ok();
                let same_params = hash.algorithm.as_str() == "argon2id"
                    && Params::try_from(&hash).is_ok_and(|p| {
                        p.m_cost() == current.m_cost()
                            && p.t_cost() == current.t_cost()
                            && p.p_cost() == current.p_cost()
                    });
                Ok(Verified {
                    ok,
                    needs_rehash: ok && !same_params,
                })
            })
            .await?;
        Ok(Verified {
            ok: outcome.ok && real,
            needs_rehash: outcome.needs_rehash && real,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, HashError> {
        let waiting = self.waiting.fetch_add(1, Ordering::Relaxed);
        let leave = WaitGuard(&self.waiting);
        if waiting >= self.queue_limit + self.permits.available_permits() {
            return Err(HashError::Busy);
        }
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| HashError::Internal(e.into()))?;
        drop(leave);
        let out = tokio::task::spawn_blocking(move || {
            let out = work();
            drop(permit);
            out
        })
        .await
        .map_err(|e| HashError::Internal(e.into()))?;
        Ok(out?)
    }
}

struct WaitGuard<'a>(&'a AtomicUsize);

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn hash_with(params: &Params, password: &SecretString) -> anyhow::Result<String> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let hash = argon
        .hash_password(password.expose_secret().as_bytes())
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(concurrency: usize, queue_limit: usize) -> HashSettings {
        HashSettings {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            concurrency,
            queue_limit,
        }
    }

    #[tokio::test]
    async fn hashes_are_argon2id_phc_with_owasp_parameters() {
        let h = Hasher::new(&settings(1, 8)).await.unwrap();
        let pw = SecretString::from("correct horse battery staple".to_owned());
        let phc = h.hash(&pw).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert_eq!(
            h.verify(&pw, Some(&phc)).await.unwrap(),
            Verified {
                ok: true,
                needs_rehash: false
            }
        );
        let wrong = SecretString::from("correct horse battery stapl".to_owned());
        assert!(!h.verify(&wrong, Some(&phc)).await.unwrap().ok);
        // No user: compared with the dummy, never ok.
        assert!(!h.verify(&pw, None).await.unwrap().ok);
        // Garbage in the column is a mismatch, not a crash.
        assert!(!h.verify(&pw, Some("not a phc string")).await.unwrap().ok);
    }

    #[tokio::test]
    async fn older_parameters_ask_for_a_rehash() {
        let old = Hasher::new(&HashSettings {
            memory_kib: 47_104,
            iterations: 1,
            ..settings(1, 8)
        })
        .await
        .unwrap();
        let pw = SecretString::from("correct horse battery staple".to_owned());
        let phc = old.hash(&pw).await.unwrap();
        let current = Hasher::new(&settings(1, 8)).await.unwrap();
        assert_eq!(
            current.verify(&pw, Some(&phc)).await.unwrap(),
            Verified {
                ok: true,
                needs_rehash: true
            }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_waiting_room_answers_busy() {
        let h = Arc::new(Hasher::new(&settings(1, 2)).await.unwrap());
        let pw = SecretString::from("correct horse battery staple".to_owned());
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let (h, pw) = (Arc::clone(&h), pw.clone());
                tokio::spawn(async move { h.hash(&pw).await })
            })
            .collect();
        let mut busy = 0;
        let mut done = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => done += 1,
                Err(HashError::Busy) => busy += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(busy > 0, "no request was turned away");
        assert!(done >= 1);
        assert_eq!(h.queue_depth(), 0);
    }
}
