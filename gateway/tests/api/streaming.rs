//! Bodies are streamed both ways: a 1 GiB upload passes with flat memory.

use futures_util::StreamExt as _;

use crate::helpers::Stack;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap()
}

#[actix_web::test]
async fn a_one_gib_upload_streams_through_with_flat_memory() {
    let s = Stack::start().await;
    const CHUNK: usize = 256 * 1024;
    const CHUNKS: usize = 4096; // 1 GiB
    let rss_before = rss_kib();
    let body = futures_util::stream::iter(
        (0..CHUNKS).map(|i| Ok::<_, std::io::Error>(vec![(i % 251) as u8; CHUNK])),
    );
    let res = s
        .client
        .post(format!("{}/public/upload", s.url))
        .header("content-length", (CHUNK * CHUNKS).to_string())
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let echo: serde_json::Value = res.json().await.unwrap();
    assert_eq!(echo["body_len"].as_u64().unwrap(), (CHUNK * CHUNKS) as u64);
    let mut expect = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for i in 0..CHUNKS {
        expect.update(&vec![(i % 251) as u8; CHUNK]);
    }
    assert_eq!(
        echo["body_sha256"],
        shared::jws::b64_encode(expect.finish()),
        "every byte arrived intact"
    );
    let grown = rss_kib().saturating_sub(rss_before);
    assert!(
        grown < 128 * 1024,
        "memory grew by {grown} KiB while streaming 1 GiB"
    );
}

#[actix_web::test]
async fn large_downloads_stream_back() {
    let s = Stack::start().await;
    let rss_before = rss_kib();
    let res = s.get("/bytes?n=268435456", None).await;
    assert_eq!(res.status(), 200);
    let mut stream = res.bytes_stream();
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        total += chunk.unwrap().len();
    }
    assert_eq!(total, 268_435_456);
    let grown = rss_kib().saturating_sub(rss_before);
    assert!(
        grown < 128 * 1024,
        "memory grew by {grown} KiB while streaming 256 MiB"
    );
}
