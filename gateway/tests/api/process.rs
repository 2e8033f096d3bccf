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
