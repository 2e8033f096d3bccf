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
    /// Add a new signing key; the previous one stays published so its tokens keep verifying.
    Rotate,
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
            command: KeysCommand::Rotate,
        } => {
            let store = state::key_store(&settings).await?;
            let kek = state::key_encryption(&settings)?;
            let kid = KeyManager::rotate(store.as_ref(), settings.rsa_key_bits, &kek).await?;
            println!("{kid}");
            eprintln!(
                "new signing key {kid}; running replicas pick it up within AUTH_KEY_RELOAD_INTERVAL"
            );
        }
    }
    Ok(())
}
