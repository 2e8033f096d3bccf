//! Argon2id password hashing, off the async workers, with bounded concurrency and queue.
//!
//! Hashing is CPU- and memory-heavy (19 MiB per hash by default). A semaphore caps how many run at
//! once, each with a block buffer from a pool of the same size, so memory is allocated once and
//! stays flat under a login flood (allocating 19 MiB per hash costs page faults: ~15% of a login's
//! CPU in the benchmark). A waiting-room bound turns overload into a quick 503 instead of an
//! unbounded queue. Hashes are standard PHC strings: any Argon2 library can verify them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
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
    buffers: Arc<BufferPool>,
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
        let buffers = Arc::new(BufferPool::default());
        let b = Arc::clone(&buffers);
        let dummy = tokio::task::spawn_blocking(move || {
            hash_with(&p, &SecretString::from(crate::crypto::random_id()), &b)
        })
        .await??;
        Ok(Hasher {
            params,
            permits: Arc::new(Semaphore::new(settings.concurrency)),
            waiting: AtomicUsize::new(0),
            queue_limit: settings.queue_limit,
            verifications: AtomicUsize::new(0),
            buffers,
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
        let buffers = Arc::clone(&self.buffers);
        self.run(move || hash_with(&params, &pw, &buffers)).await
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
        let buffers = Arc::clone(&self.buffers);
        let outcome = self
            .run(move || {
                let Ok(hash) = PasswordHash::new(&phc) else {
                    return Ok(Verified {
                        ok: false,
                        needs_rehash: false,
                    });
                };
                let ok =
                    verify_with(pw.expose_secret().as_bytes(), &hash, &buffers).unwrap_or(false);
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

/// Argon2 block buffers, reused across hashes; at most one per concurrent hash ever exists.
#[derive(Debug, Default)]
struct BufferPool(std::sync::Mutex<Vec<Vec<Block>>>);

impl BufferPool {
    fn with<R>(&self, blocks: usize, f: impl FnOnce(&mut [Block]) -> R) -> R {
        let mut buf = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        if buf.len() < blocks {
            buf.resize(blocks, Block::default());
        }
        let out = f(&mut buf[..blocks]);
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(buf);
        out
    }
}

/// The Argon2 function itself, on a pooled buffer.
struct Function<'a> {
    algorithm: Algorithm,
    version: Version,
    params: &'a Params,
}

impl Function<'_> {
    fn compute(
        &self,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
        pool: &BufferPool,
    ) -> anyhow::Result<()> {
        pool.with(self.params.block_count(), |blocks| {
            Argon2::new(self.algorithm, self.version, self.params.clone())
                .hash_password_into_with_memory(password, salt, out, blocks)
                .map_err(|e| anyhow::anyhow!("argon2: {e}"))
        })
    }
}

fn hash_with(
    params: &Params,
    password: &SecretString,
    pool: &BufferPool,
) -> anyhow::Result<String> {
    let mut salt = [0u8; Salt::RECOMMENDED_LENGTH];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| anyhow::anyhow!("no randomness for a salt"))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Function {
        algorithm: Algorithm::Argon2id,
        version: Version::V0x13,
        params,
    }
    .compute(password.expose_secret().as_bytes(), &salt, &mut out, pool)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?,
        salt: Some(Salt::new(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?),
        hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("output: {e}"))?),
    };
    Ok(phc.to_string())
}

/// Recomputes the stored hash's function (any Argon2 variant, its own parameters and salt) and
/// compares in constant time.
fn verify_with(password: &[u8], stored: &PasswordHash, pool: &BufferPool) -> anyhow::Result<bool> {
    let algorithm =
        Algorithm::try_from(stored.algorithm.as_str()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let version = match stored.version {
        Some(v) => Version::try_from(v).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => Version::V0x13,
    };
    let params = Params::try_from(stored).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return Ok(false);
    };
    let mut out = vec![0u8; expected.len()];
    Function {
        algorithm,
        version,
        params: &params,
    }
    .compute(password, salt.as_ref(), &mut out, pool)?;
    // `Output` equality is constant-time.
    Ok(Output::new(&out).map_err(|e| anyhow::anyhow!("{e}"))? == *expected)
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
        // Standard PHC: the crate's own verifier agrees, both ways.
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery staple", &parsed)
                .is_ok()
        );
        let theirs = Argon2::default()
            .hash_password(b"correct horse battery staple")
            .unwrap()
            .to_string();
        assert!(h.verify(&pw, Some(&theirs)).await.unwrap().ok);
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
