//! Command line: `serve` (the default) or an admin subcommand.

use std::process::ExitCode;

use auth_service::cli::{self, ClientsCommand, KeysCommand, UsersCommand};
use auth_service::configuration::Settings;
use auth_service::startup::Application;
use auth_service::telemetry;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "auth-service",
    version,
    about = "Users, logins and RS256 tokens; configured by AUTH_* environment variables"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print the effective configuration (secrets redacted) and exit.
    Config,
    /// Manage users (through the same stores and revocation paths as the admin API).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Manage registered clients (client credentials, introspection), through the same stores
    /// and revocation paths as the admin API.
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Check the running service on AUTH_LISTEN (for container health checks): exit 0 when
    /// `/readyz` answers 2xx.
    Healthcheck {
        /// Check `/healthz` (alive) instead of `/readyz` (stores reachable, keys loaded).
        #[arg(long)]
        live: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None | Some(Command::Serve) => telemetry::init_subscriber("info"),
        // Admin commands print their result on stdout: their logs go to stderr.
        Some(_) => telemetry::init_subscriber_stderr("warn"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("auth-service: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("auth-service: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.unwrap_or(Command::Serve);
    // Before the configuration is read: a probe stays cheap, and needs only the address.
    if let Command::Healthcheck { live } = command {
        return healthcheck(live);
    }
    let settings = Settings::from_env()?;
    match command {
        Command::Healthcheck { .. } => {} // answered above
        Command::Serve => {
            Application::build(settings)
                .await?
                .run_until_stopped()
                .await?
        }
        Command::Config => println!("{}", serde_json::to_string_pretty(&settings.redacted())?),
        Command::Users { command } => cli::users(settings, command).await?,
        Command::Clients { command } => cli::clients(settings, command).await?,
        Command::Keys { command } => cli::keys(settings, command).await?,
    }
    Ok(())
}

fn healthcheck(live: bool) -> anyhow::Result<()> {
    let listen = std::env::var("AUTH_LISTEN")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| auth_service::configuration::DEFAULT_LISTEN.to_owned());
    let listen: std::net::SocketAddr = listen.trim().parse().map_err(|_| {
        anyhow::anyhow!("healthcheck: AUTH_LISTEN {listen:?} is not an address:port")
    })?;
    let path = if live { "/healthz" } else { "/readyz" };
    shared::probe::get(
        shared::probe::local_target(listen),
        path,
        std::time::Duration::from_secs(3),
    )
    .map_err(|e| anyhow::anyhow!("healthcheck: {e}"))?;
    Ok(())
}
