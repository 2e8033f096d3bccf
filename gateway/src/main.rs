//! Gateway binary: configured by `GATEWAY_CONFIG` (TOML) and `GATEWAY_*` variables.

use std::process::ExitCode;

use gateway::configuration::Settings;
use gateway::startup::Application;

/// jemalloc: the request path allocates small, short-lived buffers all the time; glibc's malloc
/// spent ~10% of the gateway's CPU on them, and jemalloc also kept the least memory resident with
/// 10k idle connections of the three allocators measured (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[actix_web::main]
async fn main() -> ExitCode {
    gateway::metrics::set_allocator_stats(jemalloc_stats);
    gateway::telemetry::init_subscriber("info");
    if std::env::args()
        .nth(1)
        .is_some_and(|a| a == "--help" || a == "-h")
    {
        println!(
            "gateway: reverse proxy verifying access tokens locally.\nConfigure with GATEWAY_CONFIG=<file.toml> (see gateway/gateway.example.toml) and GATEWAY_* variables.\n`gateway healthcheck` exits 0 when the running gateway's admin listener answers /readyz (keys loaded)."
        );
        return ExitCode::SUCCESS;
    }
    if std::env::args().nth(1).is_some_and(|a| a == "healthcheck") {
        return healthcheck();
    }
    let run = async {
        let settings = Settings::from_env()?;
        Application::build(settings)
            .await?
            .run_until_stopped()
            .await?;
        Ok::<_, anyhow::Error>(())
    };
    match run.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// jemalloc's counters, as of now (they are refreshed when the epoch advances).
fn jemalloc_stats() -> Option<gateway::metrics::AllocatorStats> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    Some(gateway::metrics::AllocatorStats {
        allocated: stats::allocated::read().ok()? as u64,
        active: stats::active::read().ok()? as u64,
        resident: stats::resident::read().ok()? as u64,
    })
}

/// `gateway healthcheck`: for container health checks (the runtime image has no curl). Asks the
/// admin listener's `/readyz`; the admin address comes from `GATEWAY_ADMIN_LISTEN` or the file.
fn healthcheck() -> ExitCode {
    let admin = match Settings::from_env() {
        Ok(s) => s.admin_listen,
        Err(e) => {
            eprintln!("gateway healthcheck: {e}");
            return ExitCode::FAILURE;
        }
    };
    let target = shared::probe::local_target(admin);
    match shared::probe::get(target, "/readyz", std::time::Duration::from_secs(3)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway healthcheck: {e}");
            ExitCode::FAILURE
        }
    }
}
