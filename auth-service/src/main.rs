//! Command line: `serve` (the default) or an admin subcommand.

use std::process::ExitCode;

use auth_service::configuration::Settings;
use auth_service::services::{Actor, keys};
use auth_service::startup::Application;
use auth_service::{cli, state, telemetry};
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

#[derive(Subcommand)]
enum UsersCommand {
    /// Create a user; the password is read from the first line of standard input.
    Create {
        /// Username.
        username: String,
        /// Give the admin role too.
        #[arg(long)]
        admin: bool,
        /// Email address.
        #[arg(long)]
        email: Option<String>,
        /// Roles (repeatable; default: AUTH_DEFAULT_ROLES).
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Replace a user's roles (their access tokens are revoked).
    SetRoles {
        /// Username or id.
        user: String,
        /// The new roles.
        #[arg(required = true)]
        roles: Vec<String>,
    },
    /// Disable a user: no login or refresh; every session ended and token revoked.
    Disable {
        /// Username or id.
        user: String,
    },
    /// Enable a disabled user.
    Enable {
        /// Username or id.
        user: String,
    },
    /// List a user's sessions.
    Sessions {
        /// Username or id.
        user: String,
    },
    /// End all of a user's sessions and revoke their tokens.
    RevokeSessions {
        /// Username or id.
        user: String,
    },
}

#[derive(Subcommand)]
enum ClientsCommand {
    /// Register a client; prints it with its secret, shown this once.
    Create {
        /// Client id: 2–64 characters of a-z, 0-9, '.', '_', '-'.
        client_id: String,
        /// What the client is, for people.
        #[arg(long)]
        name: Option<String>,
        /// An allowed scope (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// An allowed audience (repeatable; default: AUTH_AUDIENCE).
        #[arg(long = "audience")]
        audiences: Vec<String>,
    },
    /// List the clients (JSON).
    List,
    /// Replace a client's secret; prints the new one, shown this once.
    RotateSecret {
        /// Client id.
        client_id: String,
        /// Seconds the previous secret keeps working (default 0: it stops at once).
        #[arg(long, default_value_t = 0)]
        overlap: i64,
    },
    /// Disable a client: it cannot authenticate, and its tokens are revoked.
    Disable {
        /// Client id.
        client_id: String,
    },
    /// Enable a disabled client.
    Enable {
        /// Client id.
        client_id: String,
    },
    /// Delete a client and revoke its tokens.
    Delete {
        /// Client id.
        client_id: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Publish a new signing key now; it starts signing after AUTH_KEY_ROTATION_LEAD, and the
    /// previous key stays published until every token it signed has expired.
    Rotate {
        /// The compromise response: a new key signs at once, and every older key is withdrawn
        /// from the JWKS and revoked at every gateway and replica within a second (the tokens
        /// it signed, refresh tokens included, are refused from then on).
        #[arg(long)]
        now: bool,
    },
    /// List the keys with their states and times (JSON).
    List,
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
        Command::Users { command } => {
            let state = state::AppState::init(settings).await?;
            let out = match command {
                UsersCommand::Create {
                    username,
                    admin,
                    email,
                    roles,
                } => {
                    let password = cli::password_from_stdin()?;
                    cli::create(&state, &username, email.as_deref(), &roles, admin, password)
                        .await?
                }
                UsersCommand::SetRoles { user, roles } => {
                    cli::set_roles(&state, &user, &roles).await?
                }
                UsersCommand::Disable { user } => cli::set_disabled(&state, &user, true).await?,
                UsersCommand::Enable { user } => cli::set_disabled(&state, &user, false).await?,
                UsersCommand::Sessions { user } => cli::sessions(&state, &user).await?,
                UsersCommand::RevokeSessions { user } => {
                    cli::revoke_sessions(&state, &user).await?
                }
            };
            state.audit_writer.flush().await;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Clients { command } => {
            let state = state::AppState::init(settings).await?;
            let out = clients_command(&state, command).await?;
            state.audit_writer.flush().await;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Command::Keys {
            command: KeysCommand::Rotate { now: true },
        } => {
            let state = state::AppState::init(settings).await?;
            let (kid, revoked) = keys::replace_compromised(&state, Actor::Cli).await?;
            state.audit_writer.flush().await;
            println!("{kid}");
            eprintln!(
                "new signing key {kid}: signing at once; revoked and withdrawn everywhere: {}",
                if revoked.is_empty() {
                    "none".to_owned()
                } else {
                    revoked.join(", ")
                }
            );
        }
        Command::Keys {
            command: KeysCommand::Rotate { now: false },
        } => {
            let state = state::AppState::init(settings).await?;
            let Some(r) = keys::rotate(&state, Actor::Cli).await? else {
                anyhow::bail!("a rotation is already pending (auth-service keys list shows it)");
            };
            state.audit_writer.flush().await;
            println!("{}", r.kid);
            eprintln!(
                "new signing key {}: published now, signing from {} (in {} s); replicas pick it up within AUTH_KEY_RELOAD_INTERVAL",
                r.kid, r.activates_at, state.settings.key_rotation_lead
            );
        }
        Command::Keys {
            command: KeysCommand::List,
        } => {
            let state = state::AppState::init(settings).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&keys::list(&state).await?)?
            );
        }
    }
    Ok(())
}

async fn clients_command(
    state: &state::AppState,
    command: ClientsCommand,
) -> anyhow::Result<serde_json::Value> {
    use auth_service::services::clients;
    use secrecy::ExposeSecret as _;
    let fail = |e: auth_service::error::ApiError| anyhow::anyhow!("{e}");
    let with_secret = |client: &auth_service::storage::RegisteredClient,
                       secret: &secrecy::SecretString| {
        let mut v = serde_json::to_value(client).unwrap_or_default();
        v["client_secret"] = serde_json::json!(secret.expose_secret());
        v
    };
    let set_disabled = |client_id: String, disabled: bool| async move {
        let patch = clients::Patch {
            disabled: Some(disabled),
            ..clients::Patch::default()
        };
        clients::update(state, &client_id, patch, "cli").await
    };
    Ok(match command {
        ClientsCommand::Create {
            client_id,
            name,
            scopes,
            audiences,
        } => {
            let reg = clients::ClientRegistration {
                client_id,
                name,
                scopes: Some(scopes),
                audiences: (!audiences.is_empty()).then_some(audiences),
            };
            let (client, secret) = clients::register(state, reg, "cli").await.map_err(fail)?;
            with_secret(&client, &secret)
        }
        ClientsCommand::List => serde_json::to_value(state.clients.list_clients().await?)?,
        ClientsCommand::RotateSecret { client_id, overlap } => {
            let (client, secret) = clients::rotate_secret(state, &client_id, overlap, "cli")
                .await
                .map_err(fail)?;
            with_secret(&client, &secret)
        }
        ClientsCommand::Disable { client_id } => {
            serde_json::to_value(set_disabled(client_id, true).await.map_err(fail)?)?
        }
        ClientsCommand::Enable { client_id } => {
            serde_json::to_value(set_disabled(client_id, false).await.map_err(fail)?)?
        }
        ClientsCommand::Delete { client_id } => {
            clients::delete(state, &client_id, "cli")
                .await
                .map_err(fail)?;
            serde_json::json!({"deleted": client_id})
        }
    })
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
