//! The real binary as a process: JSON logs with request ids and no secrets, graceful shutdown on
//! SIGTERM, production refusals at start.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

use crate::helpers::{PASSWORD, TestApp};

struct Running {
    child: Child,
    base: String,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Running {
    async fn start(env: &HashMap<String, String>) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_auth-service"))
            .env_clear()
            .envs(env)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (tx, mut lines) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        tokio::spawn(async move {
            let mut r = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = r.next_line().await {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        let port = loop {
            let line = tokio::time::timeout(Duration::from_secs(20), lines.recv())
                .await
                .expect("the service logs")
                .expect("the service runs");
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|_| panic!("log lines are JSON: {line}"));
            seen.push(line);
            if v["message"] == "listening" {
                break v["port"].as_u64().unwrap();
            }
        };
        Running {
            child,
            base: format!("http://127.0.0.1:{port}"),
            lines,
            seen,
        }
    }

    fn drain(&mut self) -> &[String] {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        &self.seen
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_with_request_ids_and_never_secrets() {
    let (_, _resources, env) = TestApp::builder().settings().await;
    let mut svc = Running::start(&env).await;
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{}/v1/users", svc.base))
        .header("x-request-id", "trace-me-123")
        .json(&serde_json::json!({"username": "logged", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["x-request-id"], "trace-me-123");
    let res = client
        .post(format!("{}/v1/login", svc.base))
        .form(&[("username", "logged"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let tokens: Value = res.json().await.unwrap();
    let at = tokens["access_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = svc.drain().to_vec();
    let config = lines
        .iter()
        .find(|l| l.contains("effective configuration"))
        .expect("configuration printed at start");
    assert!(config.contains("[redacted]@"), "{config}");
    let access: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["target"] == "access")
        .collect();
    let traced = access
        .iter()
        .find(|v| v["span"]["request_id"] == "trace-me-123")
        .expect("access line with the request id");
    assert_eq!(traced["path"], "/v1/users");
    assert_eq!(traced["status"], 201);
    assert!(
        access
            .iter()
            .any(|v| v["path"] == "/v1/login" && v["status"] == 200)
    );
    // The login is an audit event on its own log target.
    let audit = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["target"] == "audit" && v["kind"] == "login_succeeded")
        .expect("an audit line for the login");
    assert!(
        audit["user_id"].as_str().is_some_and(|u| !u.is_empty()),
        "{audit}"
    );
    for l in &lines {
        assert!(
            !l.contains(PASSWORD) && !l.contains("correct+horse"),
            "password in logs: {l}"
        );
        assert!(!l.contains(&at[..40]), "token in logs: {l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish() {
    // 24 logins at once to one account from one address would be throttled as guessing.
    let (_, _resources, env) = TestApp::builder()
        .env("AUTH_THROTTLE_PER_ACCOUNT_CLIENT", "100/60s")
        .settings()
        .await;
    let mut svc = Running::start(&env).await;
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{}/v1/users", svc.base))
        .json(&serde_json::json!({"username": "graceful", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    // Logins cost an Argon2 hash each, two at a time: these are still running at SIGTERM.
    let inflight: Vec<_> = (0..24)
        .map(|_| {
            let (c, url) = (client.clone(), format!("{}/v1/login", svc.base));
            tokio::spawn(async move {
                c.post(url)
                    .form(&[("username", "graceful"), ("password", PASSWORD)])
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    // Long enough for every request to be sent, far shorter than the ~250 ms of hashing queued.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pid = svc.child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap()
            .success()
    );
    for t in inflight {
        assert_eq!(
            t.await.unwrap().unwrap(),
            StatusCode::OK,
            "an in-flight request was dropped"
        );
    }
    let status = tokio::time::timeout(Duration::from_secs(15), svc.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(svc.drain().iter().any(|l| l.contains("\"stopped\"")));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_a_redis_that_may_evict_revocations() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("redis-evict-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut redis = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--maxmemory-policy",
            "allkeys-lru",
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server is installed (scripts/services.sh installs it)");
    let url = format!("redis://127.0.0.1:{port}");
    for _ in 0..50 {
        if redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, _resources, mut env) = TestApp::builder().settings().await;
    env.insert("AUTH_REDIS_URL".into(), url);
    env.insert("AUTH_PRODUCTION".into(), "true".into());
    env.insert("AUTH_ISSUER".into(), "https://auth.example.com".into());
    let out = Command::new(env!("CARGO_BIN_EXE_auth-service"))
        .env_clear()
        .envs(&env)
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("maxmemory-policy is allkeys-lru"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    // Outside production the same Redis is accepted (with a warning).
    env.remove("AUTH_PRODUCTION");
    env.insert("AUTH_ISSUER".into(), "http://auth.test".into());
    let mut svc = Running::start(&env).await;
    assert!(
        svc.drain()
            .iter()
            .any(|l| l.contains("maxmemory-policy is not noeviction"))
    );
    redis.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_healthcheck_command_probes_the_running_service() {
    let app = TestApp::spawn().await;
    let listen = app.address.trim_start_matches("http://").to_owned();
    let probe = |listen: String, args: &'static [&'static str]| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_auth-service"))
            .arg("healthcheck")
            .args(args)
            .env_clear()
            .env("AUTH_LISTEN", listen)
            .output()
            .await
            .unwrap()
    };
    assert!(probe(listen.clone(), &[]).await.status.success());
    assert!(probe(listen.clone(), &["--live"]).await.status.success());
    // A wildcard bind is probed on loopback.
    let port = listen.rsplit_once(':').unwrap().1.to_owned();
    assert!(probe(format!("0.0.0.0:{port}"), &[]).await.status.success());
    let dead = probe(format!("127.0.0.1:{}", free_port()), &[]).await;
    assert!(!dead.status.success());
    let err = String::from_utf8_lossy(&dead.stderr);
    assert!(
        err.contains("healthcheck") && err.trim().lines().count() == 1,
        "{err}"
    );
}

#[tokio::test]
async fn a_redis_password_from_a_file_reaches_a_redis_that_requires_one() {
    let password = "p@ss:w/rd #1 é";
    let mut redis = testkit::redis_server::OwnRedis::start_with_password(password).await;
    let file = std::env::temp_dir().join(format!("redis-pw-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&file, format!("{password}\n")).unwrap();
    let app = TestApp::builder()
        .env("AUTH_REDIS_URL", &redis.url())
        .env("AUTH_REDIS_PASSWORD_FILE", file.to_str().unwrap())
        .spawn()
        .await;
    // Sessions live in Redis: a login and a refresh only work through it.
    let (_, t) = app.new_user().await;
    assert_eq!(app.refresh(&t.refresh_token).await.status(), StatusCode::OK);
    assert_eq!(app.get("/readyz", None).await.status(), StatusCode::OK);
    // Without the password: not ready, and it says why.
    let without = TestApp::builder()
        .env("AUTH_REDIS_URL", &redis.url())
        .spawn()
        .await;
    let res = without.get("/readyz", None).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = res.json().await.unwrap();
    assert!(body.to_string().contains("redis"), "{body}");
    without.stop().await;
    app.stop().await;
    redis.shutdown().await;
    std::fs::remove_file(&file).unwrap();
}
