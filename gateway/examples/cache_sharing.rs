//! Should the gateway's workers share one verified-token cache? Measures both sides with the
//! cache crate the gateway uses (`quick_cache`), on the benchmark's workload (100,000 tokens,
//! Zipf with exponent 1.0) and its cache bound:
//!
//! 1. hit rates when requests reach N workers spread evenly (connections pooled by a load
//!    balancer carry every user's tokens): a cache per worker (the gateway today; each token
//!    verified up to N times) against one cache shared by all, at the same memory per worker and
//!    at the same total memory;
//! 2. what a hit costs: the unsynchronised per-worker table against the shared, locked one, on
//!    one thread and with two threads reading the same hot entries.
//!
//! `cargo run --release -p gateway --example cache_sharing [tokens] [bound] [requests]`
//! Figures, not assertions: BENCHMARKS.md quotes a run.

use std::sync::Arc;
use std::time::Instant;

/// xorshift64*: a fixed, dependency-free stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Token ranks drawn from Zipf(1.0) over `n` (rank 0 the most frequent), by the inverse CDF.
fn zipf_trace(n: usize, len: usize, seed: u64) -> Vec<u64> {
    let mut cdf = Vec::with_capacity(n);
    let mut acc = 0.0;
    for i in 1..=n {
        acc += 1.0 / i as f64;
        cdf.push(acc);
    }
    let mut rng = Rng(seed);
    (0..len)
        .map(|_| {
            let x = rng.unit() * acc;
            cdf.partition_point(|c| *c < x) as u64
        })
        .collect()
}

fn hit_rate_per_worker(trace: &[u64], workers: usize, bound: usize) -> f64 {
    let mut caches: Vec<quick_cache::unsync::Cache<u64, ()>> = (0..workers)
        .map(|_| quick_cache::unsync::Cache::new(bound))
        .collect();
    let mut rng = Rng(7);
    let mut hits = 0usize;
    for t in trace {
        let c = &mut caches[(rng.next() % workers as u64) as usize];
        if c.get(t).is_some() {
            hits += 1;
        } else {
            c.insert(*t, ());
        }
    }
    hits as f64 / trace.len() as f64
}

fn hit_rate_shared(trace: &[u64], bound: usize) -> f64 {
    let mut c: quick_cache::unsync::Cache<u64, ()> = quick_cache::unsync::Cache::new(bound);
    let mut hits = 0usize;
    for t in trace {
        if c.get(t).is_some() {
            hits += 1;
        } else {
            c.insert(*t, ());
        }
    }
    hits as f64 / trace.len() as f64
}

fn main() {
    // The figures this prints are quoted in BENCHMARKS.md.
    let arg = |i: usize, d: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(d)
    };
    let (tokens, bound, requests) = (arg(1, 100_000), arg(2, 10_000), arg(3, 4_000_000));
    let trace = zipf_trace(tokens, requests, 42);
    // Warm-up excluded: the first quarter fills the caches.
    println!(
        "Zipf(1.0) over {tokens} tokens, {requests} requests, bound {bound} per cache; hit rates:"
    );
    println!(
        "| workers | a cache per worker (bound each) | one shared cache, same memory per worker (bound × workers) | one shared cache, same total memory as one worker (bound) |"
    );
    println!("| ---: | ---: | ---: | ---: |");
    for workers in [1, 2, 4, 8] {
        let per = hit_rate_per_worker(&trace, workers, bound);
        let shared_same_memory = hit_rate_shared(&trace, bound * workers);
        let shared_small = hit_rate_shared(&trace, bound);
        println!(
            "| {workers} | {:.1}% | {:.1}% | {:.1}% |",
            per * 100.0,
            shared_same_memory * 100.0,
            shared_small * 100.0
        );
    }

    // What a hit costs. Values are Arcs, as the gateway's identities are (a hit clones one).
    let hot: Vec<u64> = zipf_trace(bound, 2_000_000, 9)
        .into_iter()
        .map(|r| r * 0x9E37_79B9)
        .collect();
    let mut unsync: quick_cache::unsync::Cache<u64, Arc<[u8; 64]>> =
        quick_cache::unsync::Cache::new(bound);
    let sync: Arc<quick_cache::sync::Cache<u64, Arc<[u8; 64]>>> =
        Arc::new(quick_cache::sync::Cache::new(bound));
    for k in &hot {
        unsync.insert(*k, Arc::new([0; 64]));
        sync.insert(*k, Arc::new([0; 64]));
    }
    let t = Instant::now();
    let mut n = 0usize;
    for k in &hot {
        n += unsync.get(k).map_or(0, |v| v.len());
    }
    let unsync_ns = t.elapsed().as_nanos() as f64 / hot.len() as f64;
    let t = Instant::now();
    for k in &hot {
        n += sync.get(k).map_or(0, |v| v.len());
    }
    let sync_ns = t.elapsed().as_nanos() as f64 / hot.len() as f64;
    let two: Vec<_> = (0..2)
        .map(|_| {
            let (sync, hot) = (Arc::clone(&sync), hot.clone());
            std::thread::spawn(move || {
                let t = Instant::now();
                let mut n = 0usize;
                for k in &hot {
                    n += sync.get(k).map_or(0, |v| v.len());
                }
                (t.elapsed().as_nanos() as f64 / hot.len() as f64, n)
            })
        })
        .collect();
    let contended: Vec<f64> = two
        .into_iter()
        .map(|h| {
            let (ns, m) = h.join().unwrap_or((f64::NAN, 0));
            n += m;
            ns
        })
        .collect();
    println!();
    println!(
        "Per hit (Zipf over the cached {bound}; {} lookups):",
        hot.len()
    );
    println!("- a cache per worker (unsynchronised): {unsync_ns:.0} ns");
    println!("- one shared cache (sharded locks), one thread: {sync_ns:.0} ns");
    println!(
        "- one shared cache, two threads on two cores reading the same hot entries: {:.0} and {:.0} ns",
        contended[0], contended[1]
    );
    std::hint::black_box(n);
}
