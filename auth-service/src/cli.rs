//! The binary's admin commands (`users`, `clients`, `keys`): parse the arguments, call one
//! service (the same rules, stores and revocation paths as the admin API), print JSON on
//! standard output. `main.rs` only dispatches to them.

use std::io::BufRead as _;

use clap::Subcommand;

use secrecy::SecretString;
use serde_json::json;

use crate::configuration::Settings;
use crate::domain::{Email, Role, Username};
use crate::services::users::{self, Actor, NewAccount, UserChange, UserError};
use crate::services::{Actor as ServiceActor, clients as client_service, keys as key_service};
use crate::state::AppState;
use crate::storage::User;

fn view(u: &User) -> serde_json::Value {
    json!({"id": u.id, "username": u.username, "email": u.email, "roles": u.roles, "disabled": u.disabled})
}

/// The command line's words for a failure.
fn explain(who: &str, e: UserError) -> anyhow::Error {
    match e {
        UserError::NotFound => anyhow::anyhow!("no user {who:?}"),
        UserError::UsernameTaken => anyhow::anyhow!("the username is taken"),
        UserError::Invalid(d) => anyhow::anyhow!("password: {d}"),
        other => anyhow::Error::new(other),
    }
}

async fn find(state: &AppState, who: &str) -> anyhow::Result<User> {
    users::find(state, who).await.map_err(|e| explain(who, e))
}

/// Reads the password from the first line of standard input (never from the command line,
/// where it would sit in shell history and the process list).
pub fn password_from_stdin() -> anyhow::Result<SecretString> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(SecretString::from(password))
}

/// `users create NAME [--admin] [--email E] [--role R]...`.
pub async fn create(
    state: &AppState,
    username: &str,
    email: Option<&str>,
    roles: &[String],
    admin: bool,
    password: SecretString,
) -> anyhow::Result<serde_json::Value> {
    let username = Username::parse(username).map_err(|e| anyhow::anyhow!("username: {e}"))?;
    let email = email
        .map(Email::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("email: {e}"))?;
    let roles = if roles.is_empty() {
        None
    } else {
        Some(Role::parse_list(roles).map_err(|e| anyhow::anyhow!("roles: {e}"))?)
    };
    let account = NewAccount {
        username,
        email,
        password: &password,
        roles,
        admin,
    };
    let user = users::create(state, account)
        .await
        .map_err(|e| explain("", e))?;
    Ok(view(&user))
}

/// `users set-roles USER ROLE...`: replaces the roles and revokes the user's access tokens.
pub async fn set_roles(
    state: &AppState,
    who: &str,
    roles: &[String],
) -> anyhow::Result<serde_json::Value> {
    let user = find(state, who).await?;
    let roles = Role::parse_list(roles).map_err(|e| anyhow::anyhow!("roles: {e}"))?;
    let change = UserChange {
        roles: Some(roles),
        disabled: None,
    };
    let u = users::change(state, user.id, change, Actor::Cli)
        .await
        .map_err(|e| explain(who, e))?;
    Ok(view(&u))
}

/// `users disable USER` / `users enable USER`: disabling ends every session and revokes every
/// token.
pub async fn set_disabled(
    state: &AppState,
    who: &str,
    disabled: bool,
) -> anyhow::Result<serde_json::Value> {
    let user = find(state, who).await?;
    let change = UserChange {
        roles: None,
        disabled: Some(disabled),
    };
    let u = users::change(state, user.id, change, Actor::Cli)
        .await
        .map_err(|e| explain(who, e))?;
    Ok(view(&u))
}

/// `users sessions USER`.
pub async fn sessions(state: &AppState, who: &str) -> anyhow::Result<serde_json::Value> {
    let user = find(state, who).await?;
    let list = users::sessions(state, user.id)
        .await
        .map_err(|e| explain(who, e))?;
    Ok(json!({"user": view(&user), "sessions": list}))
}

/// `users revoke-sessions USER`: logs the user out everywhere.
pub async fn revoke_sessions(state: &AppState, who: &str) -> anyhow::Result<serde_json::Value> {
    let user = find(state, who).await?;
    let ended = users::end_sessions(state, user.id, Actor::Cli)
        .await
        .map_err(|e| explain(who, e))?;
    Ok(json!({"user": view(&user), "sessions_ended": ended}))
}

#[derive(Subcommand)]
pub enum UsersCommand {
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
pub enum ClientsCommand {
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
        #[command(flatten)]
        sign_in: SignInArgs,
        /// A public client (a single-page or native app): no secret, PKCE alone.
        #[arg(long)]
        public: bool,
    },
    /// Change a client's sign-in settings, name or scopes (what is not given stays).
    Update {
        /// Client id.
        client_id: String,
        /// What the client is, for people.
        #[arg(long)]
        name: Option<String>,
        /// An allowed scope (repeatable; replaces the list).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        #[command(flatten)]
        sign_in: SignInArgs,
        /// Stop skipping consent.
        #[arg(long, conflicts_with = "first_party")]
        third_party: bool,
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

/// A client's part in browser sign-in, as flags (each list flag is repeatable and replaces).
#[derive(clap::Args)]
pub struct SignInArgs {
    /// A grant type: authorization_code, refresh_token, client_credentials.
    #[arg(long = "grant-type")]
    grant_types: Vec<String>,
    /// A redirect URI (exact string; loopback IP literals may vary the port).
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// A URI RP-initiated logout may return to.
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Vec<String>,
    /// Where logout tokens are POSTed (back-channel logout; "" removes it).
    #[arg(long)]
    backchannel_logout_uri: Option<String>,
    /// A first-party app: no consent page.
    #[arg(long)]
    first_party: bool,
}

fn non_empty(list: Vec<String>) -> Option<Vec<String>> {
    (!list.is_empty()).then_some(list)
}

#[derive(Subcommand)]
pub enum KeysCommand {
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

/// Prints a command's JSON result.
fn print(out: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(out)?);
    Ok(())
}

/// `auth-service users …`.
pub async fn users(settings: Settings, command: UsersCommand) -> anyhow::Result<()> {
    let state = AppState::init(settings).await?;
    let out = match command {
        UsersCommand::Create {
            username,
            admin,
            email,
            roles,
        } => {
            let password = password_from_stdin()?;
            create(&state, &username, email.as_deref(), &roles, admin, password).await?
        }
        UsersCommand::SetRoles { user, roles } => set_roles(&state, &user, &roles).await?,
        UsersCommand::Disable { user } => set_disabled(&state, &user, true).await?,
        UsersCommand::Enable { user } => set_disabled(&state, &user, false).await?,
        UsersCommand::Sessions { user } => sessions(&state, &user).await?,
        UsersCommand::RevokeSessions { user } => revoke_sessions(&state, &user).await?,
    };
    state.audit_writer.flush().await;
    print(&out)
}

/// `auth-service clients …`.
pub async fn clients(settings: Settings, command: ClientsCommand) -> anyhow::Result<()> {
    let state = AppState::init(settings).await?;
    let out = client_command(&state, command).await?;
    state.audit_writer.flush().await;
    print(&out)
}

async fn client_command(
    state: &AppState,
    command: ClientsCommand,
) -> anyhow::Result<serde_json::Value> {
    use client_service as clients;
    use secrecy::ExposeSecret as _;
    let fail = anyhow::Error::from;
    let with_secret = |client: &crate::storage::RegisteredClient,
                       secret: Option<&secrecy::SecretString>| {
        let mut v = serde_json::to_value(client).unwrap_or_default();
        if let Some(secret) = secret {
            v["client_secret"] = serde_json::json!(secret.expose_secret());
        }
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
            sign_in,
            public,
        } => {
            let reg = clients::ClientRegistration {
                client_id,
                name,
                scopes: non_empty(scopes),
                audiences: non_empty(audiences),
                client_type: public.then_some(crate::storage::ClientType::Public),
                first_party: Some(sign_in.first_party),
                grant_types: non_empty(sign_in.grant_types),
                redirect_uris: non_empty(sign_in.redirect_uris),
                post_logout_redirect_uris: non_empty(sign_in.post_logout_redirect_uris),
                backchannel_logout_uri: sign_in.backchannel_logout_uri,
            };
            let (client, secret) = clients::register(state, reg, "cli").await.map_err(fail)?;
            with_secret(&client, secret.as_ref())
        }
        ClientsCommand::Update {
            client_id,
            name,
            scopes,
            sign_in,
            third_party,
        } => {
            let patch = clients::Patch {
                name,
                scopes: non_empty(scopes),
                first_party: if sign_in.first_party {
                    Some(true)
                } else {
                    third_party.then_some(false)
                },
                grant_types: non_empty(sign_in.grant_types),
                redirect_uris: non_empty(sign_in.redirect_uris),
                post_logout_redirect_uris: non_empty(sign_in.post_logout_redirect_uris),
                backchannel_logout_uri: sign_in.backchannel_logout_uri,
                ..clients::Patch::default()
            };
            serde_json::to_value(
                clients::update(state, &client_id, patch, "cli")
                    .await
                    .map_err(fail)?,
            )?
        }
        ClientsCommand::List => serde_json::to_value(state.clients.list_clients().await?)?,
        ClientsCommand::RotateSecret { client_id, overlap } => {
            let (client, secret) = clients::rotate_secret(state, &client_id, overlap, "cli")
                .await
                .map_err(fail)?;
            with_secret(&client, Some(&secret))
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

/// `auth-service keys …`.
pub async fn keys(settings: Settings, command: KeysCommand) -> anyhow::Result<()> {
    let state = AppState::init(settings).await?;
    match command {
        KeysCommand::Rotate { now: true } => {
            let (kid, revoked) =
                key_service::replace_compromised(&state, ServiceActor::Cli).await?;
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
        KeysCommand::Rotate { now: false } => {
            let Some(r) = key_service::rotate(&state, ServiceActor::Cli).await? else {
                anyhow::bail!("a rotation is already pending (auth-service keys list shows it)");
            };
            state.audit_writer.flush().await;
            println!("{}", r.kid);
            eprintln!(
                "new signing key {}: published now, signing from {} (in {} s); replicas pick it up within AUTH_KEY_RELOAD_INTERVAL",
                r.kid,
                r.activates_at,
                state.settings.keys.rotation_lead.as_secs()
            );
        }
        KeysCommand::List => print(&serde_json::to_value(key_service::list(&state).await?)?)?,
    }
    Ok(())
}
