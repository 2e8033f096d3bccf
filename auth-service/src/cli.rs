//! Admin commands of the binary that act on users, through the same stores and the same
//! revocation paths as the admin API (a role change or a disable revokes the user's tokens; the
//! gateways hear of it through the feed).

use std::io::BufRead as _;

use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use crate::domain::{ADMIN_ROLE, Email, Role, Username};
use crate::state::AppState;
use crate::storage::{CreateUserError, NewUser, User};

/// A user named by id or username.
pub async fn find(state: &AppState, who: &str) -> anyhow::Result<User> {
    let found = match who.parse::<Uuid>() {
        Ok(id) => state.users.find_by_id(id).await?,
        Err(_) => state.users.find_by_username(who).await?.map(|(u, _)| u),
    };
    found.ok_or_else(|| anyhow::anyhow!("no user {who:?}"))
}

fn view(u: &User) -> serde_json::Value {
    json!({"id": u.id, "username": u.username, "email": u.email, "roles": u.roles, "disabled": u.disabled})
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
    let context = [Some(username.as_str()), email.as_ref().map(Email::as_str)]
        .into_iter()
        .flatten()
        .map(str::to_owned)
        .collect();
    let password = state
        .new_password(&password, context)
        .await
        .map_err(|e| anyhow::anyhow!("password: {e}"))?;
    let mut roles: Vec<Role> = if roles.is_empty() {
        state.settings.default_roles.clone()
    } else {
        Role::parse_list(roles).map_err(|e| anyhow::anyhow!("roles: {e}"))?
    };
    if admin {
        roles.push(Role::parse(ADMIN_ROLE)?);
    }
    roles.sort();
    roles.dedup();
    let hash = state.hasher.hash(password.secret()).await?;
    match state
        .users
        .create(NewUser {
            username,
            email,
            password_hash: hash,
            roles,
        })
        .await
    {
        Ok(u) => Ok(view(&u)),
        Err(CreateUserError::UsernameTaken) => anyhow::bail!("the username is taken"),
        Err(CreateUserError::Store(e)) => Err(e.into()),
    }
}

/// `users set-roles USER ROLE...`: replaces the roles and revokes the user's access tokens.
pub async fn set_roles(
    state: &AppState,
    who: &str,
    roles: &[String],
) -> anyhow::Result<serde_json::Value> {
    let user = find(state, who).await?;
    let roles = Role::parse_list(roles).map_err(|e| anyhow::anyhow!("roles: {e}"))?;
    let now = shared::unix_now();
    let u = state
        .users
        .set_roles(user.id, &roles, now)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the user vanished"))?;
    let event = shared::RevocationEvent::Sub {
        value: u.id.to_string(),
        iat_before: u.tokens_not_before,
        exp: state.revoke_until(now),
    };
    state.revocations.revoke(&event, now).await?;
    state
        .audit(
            Some(&u.id.to_string()),
            "roles_changed",
            Some("cli"),
            json!({"roles": u.roles}),
        )
        .await;
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
    let now = shared::unix_now();
    let u = state
        .users
        .set_disabled(user.id, disabled, now)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the user vanished"))?;
    if disabled {
        state
            .revoke_user(&u.id.to_string(), u.tokens_not_before, now)
            .await?;
    }
    let kind = if disabled { "disabled" } else { "enabled" };
    state
        .audit(Some(&u.id.to_string()), kind, Some("cli"), json!({}))
        .await;
    Ok(view(&u))
}

/// `users sessions USER`.
pub async fn sessions(state: &AppState, who: &str) -> anyhow::Result<serde_json::Value> {
    let user = find(state, who).await?;
    let list = state
        .sessions
        .list(&user.id.to_string(), shared::unix_now())
        .await?;
    Ok(json!({"user": view(&user), "sessions": list}))
}

/// `users revoke-sessions USER`: logs the user out everywhere.
pub async fn revoke_sessions(state: &AppState, who: &str) -> anyhow::Result<serde_json::Value> {
    let user = find(state, who).await?;
    let now = shared::unix_now();
    let nb = state
        .users
        .bump_tokens_not_before(user.id, now)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the user vanished"))?;
    let ended = state.revoke_user(&user.id.to_string(), nb, now).await?;
    state
        .audit(
            Some(&user.id.to_string()),
            "sessions_revoked",
            Some("cli"),
            json!({"sessions_ended": ended}),
        )
        .await;
    Ok(json!({"user": view(&user), "sessions_ended": ended}))
}
