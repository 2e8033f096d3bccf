//! The CLI's user commands: parse the arguments, call the users service (the same rules, stores
//! and revocation paths as the admin API), print JSON.

use std::io::BufRead as _;

use secrecy::SecretString;
use serde_json::json;

use crate::domain::{Email, Role, Username};
use crate::services::users::{self, Actor, NewAccount, UserChange, UserError};
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
