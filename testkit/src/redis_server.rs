//! A Redis server of a test's own (persistence and restart tests must not touch the shared one).

use std::path::PathBuf;
use std::time::Duration;

/// A `redis-server` child process with AOF (`appendfsync everysec`) in a directory of its own.
pub struct OwnRedis {
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    child: Option<std::process::Child>,
    password: Option<String>,
}

impl OwnRedis {
    /// Starts one on a free port and waits until it answers.
    pub async fn start() -> OwnRedis {
        Self::start_with(None).await
    }

    /// Starts one that requires `password` (`requirepass`); `url()` does not hold it.
    pub async fn start_with_password(password: &str) -> OwnRedis {
        Self::start_with(Some(password.to_owned())).await
    }

    async fn start_with(password: Option<String>) -> OwnRedis {
        let dir = std::env::temp_dir().join(format!("own-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut r = OwnRedis {
            port: crate::free_port(),
            dir,
            child: None,
            password,
        };
        r.spawn().await;
        r
    }

    /// `redis://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
            ])
            .args(["--maxmemory-policy", "noeviction"])
            .args(
                self.password
                    .iter()
                    .flat_map(|p| ["--requirepass".to_owned(), p.clone()]),
            )
            .arg("--dir")
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (Debian: apt-get install redis-server)");
        self.child = Some(child);
        for _ in 0..100 {
            if self.ping().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("own redis-server did not start");
    }

    async fn ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            return false;
        };
        if let Some(p) = &self.password
            && redis::cmd("AUTH")
                .arg(p)
                .query_async::<String>(&mut conn)
                .await
                .is_err()
        {
            return false;
        }
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_ok()
    }

    /// A clean shutdown (`SHUTDOWN`: the AOF is flushed), then waits for the process to exit.
    pub async fn shutdown(&mut self) {
        if let Ok(client) = redis::Client::open(self.url())
            && let Ok(mut conn) = client.get_multiplexed_async_connection().await
        {
            if let Some(p) = &self.password {
                let _: redis::RedisResult<()> =
                    redis::cmd("AUTH").arg(p).query_async(&mut conn).await;
            }
            let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN").query_async(&mut conn).await;
        }
        if let Some(mut child) = self.child.take() {
            for _ in 0..100 {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory (it reloads its AOF).
    pub async fn restart(&mut self) {
        self.spawn().await;
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
