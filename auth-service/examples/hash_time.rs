//! Times single Argon2id hashes at the shipped settings (OWASP: m=19456 KiB, t=2, p=1), computed
//! the way the service computes them (one reused block buffer): the reference the login
//! benchmark is measured against. Prints the median in milliseconds.

use argon2::{Algorithm, Argon2, Block, Params, Version};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(40);
    let params = Params::DEFAULT;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut blocks = vec![Block::default(); params.block_count()];
    let (password, salt) = (b"correct horse battery staple", [7u8; 16]);
    let mut out = [0u8; 32];
    let mut times = Vec::with_capacity(n);
    for i in 0..n + 3 {
        let start = std::time::Instant::now();
        let done = argon.hash_password_into_with_memory(password, &salt, &mut out, &mut blocks);
        let elapsed = start.elapsed().as_secs_f64() * 1000.0;
        assert!(done.is_ok(), "hashing failed");
        if i >= 3 {
            times.push(elapsed);
        }
    }
    times.sort_by(f64::total_cmp);
    println!("{:.3}", times[n / 2]);
}
