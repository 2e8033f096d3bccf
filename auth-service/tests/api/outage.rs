//! PostgreSQL or Redis down → 503 with a clear body, and recovery by itself when they return.
//! The shared servers are never stopped: the service talks to them through an in-test TCP
//! forwarder that the test cuts (closing every connection and refusing new ones) and restores.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::helpers::{
    PASSWORD, TestApp, assert_oauth_error, assert_problem, pg_admin_url, redis_url,
};

struct Forwarder {
    port: u16,
    down: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Forwarder {
    async fn start(target: SocketAddr) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (d, c) = (Arc::clone(&down), Arc::clone(&conns));
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if d.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                c.lock().unwrap().push(task.abort_handle());
            }
        });
        Forwarder { port, down, conns }
    }

    /// Every open connection dies; new ones are accepted and closed at once.
    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

/// `scheme://user:pw@host:port/db` → (`host:port`, `scheme://user:pw@`, `/db`).
fn split_url(url: &str) -> (SocketAddr, String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((a, r)) => (format!("{a}@"), r),
        None => (String::new(), rest),
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_owned()),
        None => (rest, String::new()),
    };
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:6379")
    };
    let addr = hostport.replace("localhost", "127.0.0.1").parse().unwrap();
    (addr, format!("{scheme}://{auth}"), path)
}

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..100 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 10 s");
}

/// Sends a request until it is answered with something other than 503 (a worker still
/// reconnecting); returns that status.
async fn past_unavailable<F, Fut>(mut send: F) -> StatusCode
where
    F: FnMut() -> Fut,
    Fut: Future<Output = reqwest::Response>,
{
    for _ in 0..100 {
        let status = send().await.status();
        if status != StatusCode::SERVICE_UNAVAILABLE {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("still 503 after 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_gives_503_and_the_service_recovers() {
    let (pg_addr, prefix, _) = split_url(&pg_admin_url());
    let fwd = Forwarder::start(pg_addr).await;
    let resources = crate::helpers::Resources::create().await;
    let db_url = format!("{prefix}127.0.0.1:{}/{}", fwd.port, resources.db);
    let app = TestApp::builder()
        .resources(resources)
        .env("AUTH_DATABASE_URL", &db_url)
        .env("AUTH_STORE_TIMEOUT_MS", "1000")
        .spawn()
        .await;
    let (name, t) = app.new_user().await;

    fwd.cut();
    let res = app.login_response(&name, PASSWORD).await;
    assert!(res.headers().contains_key("retry-after"));
    let body = assert_oauth_error(
        res,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
    )
    .await;
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "no internal detail: {body}"
    );
    let res = app.register("newcomer", PASSWORD).await;
    assert_eq!(
        assert_problem(res, StatusCode::SERVICE_UNAVAILABLE).await["code"],
        "unavailable"
    );
    assert_problem(
        app.me(&t.access_token).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        ready.json::<Value>().await.unwrap()["checks"]["postgres"],
        "unavailable"
    );
    // Verification is local: the JWKS still answers.
    assert_eq!(
        app.get("/.well-known/jwks.json", None).await.status(),
        StatusCode::OK
    );

    fwd.restore();
    eventually("PostgreSQL recovery", || async {
        app.login_response(&name, PASSWORD).await.status() == StatusCode::OK
    })
    .await;
    // Each HTTP worker has its own pool: a worker may answer 503 once more while it reconnects,
    // so "recovered" means every request succeeds again, whichever worker serves it.
    eventually("readiness", || async {
        app.get("/readyz", None).await.status() == StatusCode::OK
    })
    .await;
    let registered = past_unavailable(|| app.register("newcomer", PASSWORD)).await;
    assert_eq!(
        registered,
        StatusCode::CREATED,
        "nothing half-written by the failed attempt"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_gives_503_and_the_service_recovers() {
    let (redis_addr, _, _) = split_url(&redis_url());
    let fwd = Forwarder::start(redis_addr).await;
    let app = TestApp::builder()
        .env("AUTH_REDIS_URL", &format!("redis://127.0.0.1:{}", fwd.port))
        .env("AUTH_STORE_TIMEOUT_MS", "1000")
        .spawn()
        .await;
    let (name, t) = app.new_user().await;

    fwd.cut();
    let res = app.refresh(&t.refresh_token).await;
    assert_oauth_error(
        res,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
    )
    .await;
    let res = app.login_response(&name, PASSWORD).await;
    assert_oauth_error(
        res,
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
    )
    .await;
    // The revocation list cannot be checked: fail closed with 503, never accept blindly.
    assert_problem(
        app.me(&t.access_token).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_problem(
        app.post_form("/v1/logout", &[], Some(&t.access_token))
            .await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        ready.json::<Value>().await.unwrap()["checks"]["redis"],
        "unavailable"
    );

    fwd.restore();
    eventually("Redis recovery", || async {
        app.get("/readyz", None).await.status() == StatusCode::OK
    })
    .await;
    // Each HTTP worker has its own Redis connection: a worker may answer 503 once more while it
    // reconnects (that attempt is refused before anything is spent). The refresh token was not
    // spent by the failed attempts: it still rotates.
    let refreshed = past_unavailable(|| app.refresh(&t.refresh_token)).await;
    assert_eq!(refreshed, StatusCode::OK);
    eventually("login after recovery", || async {
        app.login_response(&name, PASSWORD).await.status() == StatusCode::OK
    })
    .await;
}
