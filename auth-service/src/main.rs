//! Command line: `serve` (the default) or an admin subcommand.

use std::process::ExitCode;

use auth_service::configuration::Settings;
use auth_service::crypto::keys::KeyManager;
use auth_service::startup::Application;
use auth_service::{state, telemetry};
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
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Publish a new signing key now; it starts signing after AUTH_KEY_ROTATION_LEAD, and the
    /// previous key stays published until every token it signed has expired.
    Rotate {
        /// Sign with the new key at once (a compromised key): gateways find it through their
        /// unknown-kid refetch instead of ahead of time.
        #[arg(long)]
        now: bool,
    },
    /// List the keys with their states and times (JSON).
    List,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_subscriber("info");
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
    let settings = Settings::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            Application::build(settings)
                .await?
                .run_until_stopped()
                .await?
        }
        Command::Config => println!("{}", serde_json::to_string_pretty(&settings.redacted())?),
        Command::Keys {
            command: KeysCommand::Rotate { now },
        } => {
            let store = state::key_store(&settings).await?;
            let kek = state::key_encryption(&settings)?;
            let t = shared::unix_now();
            let at = if now {
                t
            } else {
                t + settings.key_rotation_lead
            };
            let Some(kid) =
                KeyManager::rotate(store.as_ref(), settings.rsa_key_bits, &kek, at).await?
            else {
                anyhow::bail!("a rotation is already pending (auth-service keys list shows it)");
            };
            let reload = i64::try_from(settings.key_reload_interval.as_secs()).unwrap_or(0);
            store
                .advance(t, settings.access_ttl + settings.leeway + reload)
                .await?;
            println!("{kid}");
            eprintln!(
                "new signing key {kid}: published now, signing {}; replicas pick it up within AUTH_KEY_RELOAD_INTERVAL",
                if now {
                    "at once".to_owned()
                } else {
                    format!("from {at} (in {} s)", settings.key_rotation_lead)
                }
            );
        }
        Command::Keys {
            command: KeysCommand::List,
        } => {
            let store = state::key_store(&settings).await?;
            let keys: Vec<_> = store
                .load()
                .await?
                .into_iter()
                .map(|k| serde_json::json!({"kid": k.kid, "state": k.state, "format": k.format_version, "times": k.times}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&keys)?);
        }
    }
    Ok(())
}
