//! Argon2id password hashing on a dedicated pool of threads, with a bounded queue.
//!
//! Hashing is CPU- and memory-heavy (19 MiB and ~13 ms per hash by default), so it never runs on
//! the request workers. It runs on `concurrency` threads of its own, each owning one block buffer
//! (allocated once: a fresh 19 MiB per hash cost ~15% of a login's CPU in page faults), so memory
//! stays flat under a login flood. The threads run at a lower scheduling priority (nice 9): a
//! worker that wakes for a cheap request (a refresh, `/healthz`) pre-empts a hash instead of
//! waiting out its time slice. A full queue turns overload into a quick 503, not an unbounded wait.
//! Hashes are standard PHC strings: any Argon2 library can verify them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;

use crate::configuration::HashSettings;

/// Why hashing did not happen.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The queue of requests waiting for a hashing thread is full.
    #[error("password hashing is saturated")]
    Busy,
    /// Hashing itself failed (a bug, or the pool is gone).
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCheck {
    /// The password matches.
    pub ok: bool,
    /// The stored hash uses other parameters than the current ones: rehash after login.
    pub needs_rehash: bool,
}

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// Hashes and verifies passwords.
#[derive(Debug)]
pub struct Hasher {
    params: Params,
    jobs: SyncSender<Job>,
    queued: Arc<AtomicUsize>,
    verifications: AtomicUsize,
    /// Hash of a random password, verified against when a user does not exist, so unknown users
    /// cost the same time as known ones.
    dummy: String,
}

/// Lowered priority of the hashing threads (`Crossplatform(23)` is nice 9 on Linux).
const HASH_THREAD_PRIORITY: u8 = 23;

fn hashing_thread(jobs: Arc<Mutex<Receiver<Job>>>, queued: Arc<AtomicUsize>) {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
    };
    let lowered = ThreadPriorityValue::try_from(HASH_THREAD_PRIORITY)
        .map_err(|e| e.to_string())
        .and_then(|p| {
            thread_priority::set_thread_priority_and_policy(
                thread_priority::thread_native_id(),
                ThreadPriority::Crossplatform(p),
                ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Other),
            )
            .map_err(|e| format!("{e:?}"))
        });
    if let Err(e) = lowered {
        tracing::warn!(error = %e, "could not lower the priority of a hashing thread");
    }
    let mut blocks: Vec<Block> = Vec::new();
    loop {
        let job = {
            let rx = jobs
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            rx.recv()
        };
        let Ok(job) = job else { return };
        queued.fetch_sub(1, Ordering::Relaxed);
        job(&mut blocks);
    }
}

impl Hasher {
    /// Starts the hashing threads and computes the dummy hash.
    pub async fn new(settings: &HashSettings) -> anyhow::Result<Self> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("invalid Argon2 parameters: {e}"))?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(settings.queue_limit);
        let rx = Arc::new(Mutex::new(rx));
        let queued = Arc::new(AtomicUsize::new(0));
        for i in 0..settings.concurrency {
            let (rx, queued) = (Arc::clone(&rx), Arc::clone(&queued));
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || hashing_thread(rx, queued))?;
        }
        let mut hasher = Hasher {
            params,
            jobs: tx,
            queued,
            verifications: AtomicUsize::new(0),
            dummy: String::new(),
        };
        hasher.dummy = hasher
            .hash(&SecretString::from(crate::crypto::random_id()))
            .await?;
        Ok(hasher)
    }

    /// Requests waiting for a hashing thread right now.
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Password verifications performed (real and dummy alike).
    pub fn verifications(&self) -> usize {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Hashes a password to a PHC string.
    pub async fn hash(&self, password: &SecretString) -> Result<String, HashError> {
        let params = self.params.clone();
        let pw = password.clone();
        self.run(move |blocks| hash_with(&params, &pw, blocks))
            .await
    }

    /// Verifies `password` against `stored` (a PHC string), or against the dummy hash when there
    /// is no user, so both paths take the same time. With no user the result is never `ok`.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<PasswordCheck, HashError> {
        let real = stored.is_some();
        let phc = stored.unwrap_or(&self.dummy).to_owned();
        let pw = password.clone();
        let current = self.params.clone();
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let outcome = self
            .run(move |blocks| {
                let Ok(hash) = PasswordHash::new(&phc) else {
                    return Ok(PasswordCheck {
                        ok: false,
                        needs_rehash: false,
                    });
                };
                let ok = verify_with(pw.expose_secret().as_bytes(), &hash, blocks).unwrap_or(false);
                let same_params = hash.algorithm.as_str() == "argon2id"
                    && Params::try_from(&hash).is_ok_and(|p| {
                        p.m_cost() == current.m_cost()
                            && p.t_cost() == current.t_cost()
                            && p.p_cost() == current.p_cost()
                    });
                Ok(PasswordCheck {
                    ok,
                    needs_rehash: ok && !same_params,
                })
            })
            .await?;
        Ok(PasswordCheck {
            ok: outcome.ok && real,
            needs_rehash: outcome.needs_rehash && real,
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, HashError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |blocks| {
            let _ = tx.send(work(blocks));
        });
        self.queued.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.jobs.try_send(job) {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(match e {
                TrySendError::Full(_) => HashError::Busy,
                TrySendError::Disconnected(_) => {
                    HashError::Internal(anyhow::anyhow!("the hashing threads are gone"))
                }
            });
        }
        let out = rx
            .await
            .map_err(|_| HashError::Internal(anyhow::anyhow!("a hashing thread dropped a job")))?;
        Ok(out?)
    }
}

/// The Argon2 function itself, on the thread's block buffer.
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
        blocks: &mut Vec<Block>,
    ) -> anyhow::Result<()> {
        let need = self.params.block_count();
        if blocks.len() < need {
            blocks.resize(need, Block::default());
        }
        Argon2::new(self.algorithm, self.version, self.params.clone())
            .hash_password_into_with_memory(password, salt, out, &mut blocks[..need])
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    }
}

fn hash_with(
    params: &Params,
    password: &SecretString,
    blocks: &mut Vec<Block>,
) -> anyhow::Result<String> {
    let mut salt = [0u8; Salt::RECOMMENDED_LENGTH];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| anyhow::anyhow!("no randomness for a salt"))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    Function {
        algorithm: Algorithm::Argon2id,
        version: Version::V0x13,
        params,
    }
    .compute(password.expose_secret().as_bytes(), &salt, &mut out, blocks)?;
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
fn verify_with(
    password: &[u8],
    stored: &PasswordHash,
    blocks: &mut Vec<Block>,
) -> anyhow::Result<bool> {
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
    .compute(password, salt.as_ref(), &mut out, blocks)?;
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
            PasswordCheck {
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
            PasswordCheck {
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
