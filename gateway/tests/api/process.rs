//! The gateway binary: invalid configuration exits non-zero with a one-line reason.

use tokio::process::Command;

async fn run(env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[actix_web::test]
async fn invalid_configuration_is_a_one_line_reason() {
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[], "GATEWAY_CONFIG is not set"),
        (
            &[("GATEWAY_CONFIG", "/nonexistent/gateway.toml")],
            "cannot read",
        ),
        (
            &[(
                "GATEWAY_CONFIG_TOML",
                "issuer = \"http://127.0.0.1:1\"\n[[routes]]\nprefix = \"/a\"\nupstream = \"http://x\"\nauth = \"public\"\nroles = [\"admin\"]",
            )],
            "cannot be combined",
        ),
        (
            &[(
                "GATEWAY_CONFIG_TOML",
                "issuer = \"http://127.0.0.1:1\"\nbogus = 1\n[[routes]]\nprefix = \"/a\"\nupstream = \"http://x\"",
            )],
            "unknown field",
        ),
        (
            &[
                (
                    "GATEWAY_CONFIG_TOML",
                    "issuer = \"http://auth.internal\"\n[[routes]]\nprefix = \"/a\"\nupstream = \"http://x\"",
                ),
                ("GATEWAY_PRODUCTION", "true"),
            ],
            "production",
        ),
    ];
    for (env, want) in cases {
        let (ok, err) = run(env).await;
        assert!(!ok, "{env:?} started");
        assert!(err.contains(want), "{env:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    let (ok, out) = run(&[
        (
            "GATEWAY_CONFIG",
            concat!(env!("CARGO_MANIFEST_DIR"), "/gateway.example.toml"),
        ),
        ("GATEWAY_LISTEN", "bad"),
    ])
    .await;
    assert!(!ok && out.contains("GATEWAY_LISTEN"), "{out}");
}

/// The gateway binary on a free port with the test routes; its stdout piped.
fn spawn_gateway(
    auth: &testkit::auth::Auth,
    echo: &testkit::echo::Echo,
    log: &str,
) -> (tokio::process::Child, u16) {
    spawn_gateway_with(auth, echo, log, &[])
}

/// [`spawn_gateway`], with more variables.
fn spawn_gateway_with(
    auth: &testkit::auth::Auth,
    echo: &testkit::echo::Echo,
    log: &str,
    env: &[(&str, &str)],
) -> (tokio::process::Child, u16) {
    let port = testkit::free_port();
    let toml = crate::helpers::config(&auth.url, &echo.url, "").replacen(
        "\nlisten = \"127.0.0.1:0\"",
        &format!("\nlisten = \"127.0.0.1:{port}\""),
        1,
    );
    let child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env_clear()
        .env("GATEWAY_CONFIG_TOML", &toml)
        .env("GATEWAY_FEED_TOKEN", testkit::FEED_TOKEN)
        .env("RUST_LOG", log)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    (child, port)
}

/// The binary runs on jemalloc and says what it holds: live bytes apart from the pages and the
/// resident memory behind them (a leak grows the first; fragmentation or retention the others).
#[actix_web::test]
async fn the_binarys_metrics_give_the_allocators_live_and_resident_bytes() {
    let auth = testkit::auth::Auth::start(&[]).await;
    let echo = testkit::echo::start().await;
    let admin = testkit::free_port();
    let (mut child, _port) = spawn_gateway_with(
        &auth,
        &echo,
        "warn",
        &[("GATEWAY_ADMIN_LISTEN", &format!("127.0.0.1:{admin}"))],
    );
    let admin = format!("http://127.0.0.1:{admin}");
    crate::helpers::wait_ready(&admin).await;
    let text = reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = |name: &str| -> u64 {
        assert!(
            text.contains(&format!("# TYPE {name} gauge")),
            "no {name} in\n{text}"
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} sample"))
            .parse()
            .unwrap()
    };
    let allocated = gauge("gateway_allocator_allocated_bytes");
    let active = gauge("gateway_allocator_active_bytes");
    let resident = gauge("gateway_allocator_resident_bytes");
    // A running gateway holds its keys, routes and connections: more than a page, less than a
    // gigabyte; live bytes sit inside their pages, and those inside resident memory.
    assert!(allocated > 4096 && allocated < 1 << 30, "{allocated}");
    assert!(allocated <= active, "{allocated} > {active}");
    assert!(active <= resident, "{active} > {resident}");
    child.kill().await.unwrap();
}

#[actix_web::test]
async fn access_log_lines_are_json_with_request_ids_and_no_tokens() {
    use tokio::io::AsyncBufReadExt as _;
    let auth = testkit::auth::Auth::start(&[]).await;
    let echo = testkit::echo::start().await;
    let (mut child, port) = spawn_gateway(&auth, &echo, "info");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/orders");
    let t = auth.user("logger").await;
    // Ready: listening, with keys and the revocation snapshot (until then, 503).
    let mut ready = false;
    for _ in 0..200 {
        if let Ok(r) = client.get(&url).bearer_auth(&t.access_token).send().await
            && r.status() != 503
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready);
    let res = client
        .get(&url)
        .bearer_auth(&t.access_token)
        .header("x-request-id", "trace-77")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut found = None;
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(std::time::Duration::from_secs(5), lines.next_line()).await
    {
        assert!(
            !line.contains(&t.access_token[..40]),
            "a token reached the log: {line}"
        );
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        if v["target"] == "access" && v["request_id"] == "trace-77" {
            found = Some(v);
            break;
        }
    }
    let v = found.expect("an access line for the request");
    assert_eq!(v["status"], 200);
    assert_eq!(v["path"], "/api/orders");
    assert_eq!(v["route"], "/api");
    assert!(v["user_id"].is_string());
}

#[actix_web::test]
async fn the_healthcheck_command_probes_the_admin_listener() {
    let s = crate::helpers::Stack::start().await;
    let admin = s.admin.trim_start_matches("http://").to_owned();
    let toml = "issuer = \"http://127.0.0.1:1\"\n[revocation]\nenabled = false\n[[routes]]\nprefix = \"/a\"\nupstream = \"http://127.0.0.1:1\"\n";
    let probe = |admin: String| async move {
        Command::new(env!("CARGO_BIN_EXE_gateway"))
            .arg("healthcheck")
            .env_clear()
            .env("GATEWAY_CONFIG_TOML", toml)
            .env("GATEWAY_ADMIN_LISTEN", admin)
            .output()
            .await
            .unwrap()
    };
    let out = probe(admin).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dead = probe(format!("127.0.0.1:{}", testkit::free_port())).await;
    assert!(!dead.status.success());
    let err = String::from_utf8_lossy(&dead.stderr);
    assert!(err.contains("gateway healthcheck"), "{err}");
}

#[actix_web::test]
async fn sigterm_lets_requests_in_flight_finish_closes_idle_connections_and_exits() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let auth = testkit::auth::Auth::start(&[]).await;
    let echo = testkit::echo::start().await;
    let (mut child, port) = spawn_gateway(&auth, &echo, "info");
    let mut stdout = child.stdout.take().unwrap();
    let log = tokio::spawn(async move {
        let mut all = String::new();
        let _ = stdout.read_to_string(&mut all).await;
        all
    });
    let addr = format!("127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..200 {
        if let Ok(r) = reqwest::get(format!("http://{addr}/public/x")).await
            && r.status() == 200
        {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(up, "the gateway did not start");

    // An idle keep-alive connection, after one answered request.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /public/a HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("\"path\"") {
        let mut chunk = [0u8; 4096];
        let n = idle.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the first answer arrives");
        seen.extend_from_slice(&chunk[..n]);
    }
    // A request the upstream takes 400 ms to answer, under way when the signal comes.
    let slow_addr = addr.clone();
    let slow = tokio::spawn(async move {
        testkit::raw::send(
            &slow_addr,
            "GET /slow?ms=400 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"",
        )
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());

    let answer = slow.await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.header("connection"), Some("close"), "{answer:?}");
    let mut rest = [0u8; 64];
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), idle.read(&mut rest))
        .await
        .expect("the idle connection is closed, not left open");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .expect("the gateway exits within 10 s")
        .unwrap();
    assert!(status.success(), "{status:?}");
    // The access log is buffered per worker: the line of the request that finished just before
    // the exit was written out all the same.
    let log = log.await.unwrap();
    assert!(
        log.lines().any(|l| l.contains("\"target\":\"access\"")
            && l.contains("\"path\":\"/slow\"")
            && l.contains("\"status\":200")),
        "{log}"
    );
    assert!(tokio::net::TcpStream::connect(&addr).await.is_err());
}
