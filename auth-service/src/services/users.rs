//! Users: creating accounts, changing roles, disabling, ending every session, deleting. Each
//! rule lives here once, for the admin API and the CLI alike: a role change revokes the user's
//! access tokens (their next refresh carries the new roles); disabling, deleting and "log out
//! everywhere" end every session and revoke every token; admins cannot lock themselves out;
//! each change is an audit event naming who acted.

use anyhow::Context as _;
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

pub use super::Actor;
use crate::domain::{ADMIN_ROLE, DomainError, Email, NewPassword, Role, Username};
use crate::state::AppState;
use crate::storage::{CreateUserError, NewUser, SessionInfo, StoreError, User};
use crate::tokens::{TokenPair, allowed_scopes, grant_scope};

/// Why a user operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// No such user.
    #[error("no such user")]
    NotFound,
    /// The username is taken (compared case-insensitively).
    #[error("that username is taken")]
    UsernameTaken,
    /// An admin would lock themselves out.
    #[error("{0}")]
    SelfLockout(&'static str),
    /// Nothing was asked to change.
    #[error("nothing to change: send roles and/or disabled")]
    NothingToChange,
    /// A value breaks a rule (the password policy, a username, an email).
    #[error(transparent)]
    Invalid(#[from] DomainError),
    /// The password check could not run (the hashing threads are busy or gone).
    #[error(transparent)]
    Hash(#[from] crate::crypto::password::HashError),
    /// Registration is closed (`AUTH_REGISTRATION=closed`).
    #[error("registration is closed")]
    RegistrationClosed,
    /// The current password given to change it is not the right one.
    #[error("the current password is not correct")]
    WrongPassword,
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Anything else (a bug, or a thread gone).
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// A change to a user: new roles, enabled or disabled, or both (roles first).
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    /// Replace the roles.
    pub roles: Option<Vec<Role>>,
    /// Disable (`true`) or enable (`false`).
    pub disabled: Option<bool>,
}

/// Checks a new password against the policy (`context`: the username, then other values the
/// user gave, which count as known words) on a blocking thread: the guessability estimate takes
/// milliseconds.
pub async fn new_password(
    state: &AppState,
    raw: &SecretString,
    context: Vec<String>,
) -> Result<NewPassword, UserError> {
    let raw = raw.clone();
    let policy = state.settings.accounts.password_policy;
    tokio::task::spawn_blocking(move || {
        let context: Vec<&str> = context.iter().map(String::as_str).collect();
        NewPassword::parse(&raw, &policy, &context)
    })
    .await
    .map_err(|e| UserError::Unexpected(anyhow::Error::new(e).context("password check")))?
    .map_err(UserError::Invalid)
}

/// Self-registration (`POST /v1/users`): refused while registration is closed; the configured
/// default roles, whatever the caller sent.
#[tracing::instrument(skip(state, account), fields(username = account.username.as_str()))]
pub async fn register(state: &AppState, account: NewAccount<'_>) -> Result<User, UserError> {
    if state.settings.accounts.registration == crate::configuration::RegistrationMode::Closed {
        return Err(UserError::RegistrationClosed);
    }
    create(
        state,
        NewAccount {
            roles: None,
            admin: false,
            ..account
        },
    )
    .await
}

/// Creates the bootstrap admin (`AUTH_BOOTSTRAP_ADMIN_*`) into an empty user table, once ever.
#[tracing::instrument(skip(state))]
pub async fn bootstrap_admin(state: &AppState) -> anyhow::Result<()> {
    let Some(admin) = &state.settings.accounts.bootstrap_admin else {
        return Ok(());
    };
    let username = Username::parse(&admin.username).context("AUTH_BOOTSTRAP_ADMIN_USERNAME")?;
    let password = new_password(state, admin.password.secret(), vec![admin.username.clone()])
        .await
        .context("AUTH_BOOTSTRAP_ADMIN_PASSWORD")?;
    let mut roles = state.settings.accounts.default_roles.clone();
    roles.push(Role::parse(ADMIN_ROLE)?);
    roles.sort();
    roles.dedup();
    let hash = state.hasher.hash(password.secret()).await?;
    let new = NewUser {
        username,
        email: None,
        password_hash: hash,
        roles,
    };
    match state.users.create_bootstrap_admin(new).await {
        Ok(Some(user)) => {
            tracing::info!(user_id = %user.id, username = %user.username, "created the bootstrap admin");
        }
        Ok(None) => tracing::info!(
            "bootstrap admin not created: the user table is not empty or it was created before"
        ),
        Err(CreateUserError::UsernameTaken) => tracing::info!("bootstrap admin already exists"),
        Err(CreateUserError::Store(e)) => {
            return Err(anyhow::Error::new(e).context("creating the bootstrap admin"));
        }
    }
    Ok(())
}

/// Changes the password of `id` after checking `current` (the same Argon2 work as a login), ends
/// every session and revokes every token issued so far, then opens a fresh session for the
/// caller (`client_id`, `user_agent`) with every scope the user's roles allow: its first pair.
#[tracing::instrument(skip(state, current, new, user_agent))]
pub async fn change_password(
    state: &AppState,
    id: Uuid,
    current: &SecretString,
    new: &SecretString,
    client_id: &str,
    user_agent: &str,
) -> Result<TokenPair, UserError> {
    let account = get(state, id).await?;
    let context = [Some(account.username), account.email]
        .into_iter()
        .flatten()
        .collect();
    let new = new_password(state, new, context).await?;
    let current =
        crate::domain::LoginPassword::parse(current, &state.settings.accounts.password_policy)
            .map_err(|_| UserError::WrongPassword)?;
    let stored = state.users.password_hash(id).await?;
    if !state
        .hasher
        .verify(current.secret(), stored.as_deref())
        .await?
        .ok
    {
        return Err(UserError::WrongPassword);
    }
    let hash = state.hasher.hash(new.secret()).await?;
    let now = shared::unix_now();
    let not_before = state
        .users
        .set_password(id, &hash, now)
        .await?
        .ok_or(UserError::NotFound)?;
    let ended = crate::services::sessions::end_all(state, &id.to_string(), not_before, now).await?;
    let user = get(state, id).await?;
    tracing::info!(user_id = %id, sessions_ended = ended, "password changed");
    let allowed = allowed_scopes(&state.settings.tokens.role_scopes, &user.roles);
    // Nothing requested and no ceiling: every allowed scope, which cannot be refused.
    let scope = grant_scope(&allowed, None, None).map_err(|e| anyhow::anyhow!(e))?;
    let pair = super::sessions::open(state, &user, client_id, scope, user_agent, now).await?;
    Ok(pair)
}

/// A user by id.
#[tracing::instrument(skip(state))]
pub async fn get(state: &AppState, id: Uuid) -> Result<User, UserError> {
    state.users.find_by_id(id).await?.ok_or(UserError::NotFound)
}

/// A user by id or by username (the CLI takes either).
#[tracing::instrument(skip(state))]
pub async fn find(state: &AppState, who: &str) -> Result<User, UserError> {
    let found = match who.parse::<Uuid>() {
        Ok(id) => state.users.find_by_id(id).await?,
        Err(_) => state.users.find_by_username(who).await?.map(|(u, _)| u),
    };
    found.ok_or(UserError::NotFound)
}

/// An account to create. `roles` `None` means the configured default roles.
#[derive(Debug)]
pub struct NewAccount<'a> {
    /// Username.
    pub username: Username,
    /// Email.
    pub email: Option<Email>,
    /// The password as given (checked against the policy here).
    pub password: &'a SecretString,
    /// Roles, or the defaults.
    pub roles: Option<Vec<Role>>,
    /// Add the admin role.
    pub admin: bool,
}

/// Creates an account: the password policy (the username and email count as known words), an
/// Argon2id hash, the roles asked or the defaults.
#[tracing::instrument(skip(state, account), fields(username = account.username.as_str()))]
pub async fn create(state: &AppState, account: NewAccount<'_>) -> Result<User, UserError> {
    let context = [
        Some(account.username.as_str().to_owned()),
        account.email.as_ref().map(|e| e.as_str().to_owned()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let password = new_password(state, account.password, context).await?;
    let mut roles = account
        .roles
        .unwrap_or_else(|| state.settings.accounts.default_roles.clone());
    if account.admin {
        roles.push(Role::parse(ADMIN_ROLE)?);
    }
    roles.sort();
    roles.dedup();
    let password_hash = state.hasher.hash(password.secret()).await?;
    let new = NewUser {
        username: account.username,
        email: account.email,
        password_hash,
        roles,
    };
    match state.users.create(new).await {
        Ok(user) => {
            tracing::info!(user_id = %user.id, "user created");
            Ok(user)
        }
        Err(CreateUserError::UsernameTaken) => Err(UserError::UsernameTaken),
        Err(CreateUserError::Store(e)) => Err(e.into()),
    }
}

/// Applies `change` (roles, then disabled). A role change revokes the user's access tokens;
/// disabling ends every session and revokes every token. An admin cannot disable themselves or
/// drop their own admin role.
#[tracing::instrument(skip(state))]
pub async fn change(
    state: &AppState,
    id: Uuid,
    change: UserChange,
    actor: Actor<'_>,
) -> Result<User, UserError> {
    if change.roles.is_none() && change.disabled.is_none() {
        return Err(UserError::NothingToChange);
    }
    let drops_admin = change
        .roles
        .as_ref()
        .is_some_and(|r| !r.iter().any(|r| r.as_str() == ADMIN_ROLE));
    if actor.is(id) && (change.disabled == Some(true) || drops_admin) {
        return Err(UserError::SelfLockout(
            "admins cannot disable themselves or drop their own admin role",
        ));
    }
    let now = shared::unix_now();
    let mut user = None;
    if let Some(roles) = &change.roles {
        let u = state
            .users
            .set_roles(id, roles, now)
            .await?
            .ok_or(UserError::NotFound)?;
        let event = shared::RevocationEvent::Sub {
            value: id.to_string(),
            iat_before: u.tokens_not_before,
            exp: crate::services::sessions::revoke_until(state, now),
        };
        state.revocations.revoke(&event, now).await?;
        state.audit_writer.event(
            Some(&id.to_string()),
            "roles_changed",
            Some(actor.audit_name()),
            json!({"roles": u.roles}),
        );
        user = Some(u);
    }
    if let Some(disabled) = change.disabled {
        let u = state
            .users
            .set_disabled(id, disabled, now)
            .await?
            .ok_or(UserError::NotFound)?;
        if disabled {
            let ended = crate::services::sessions::end_all(
                state,
                &id.to_string(),
                u.tokens_not_before,
                now,
            )
            .await?;
            state.audit_writer.event(
                Some(&id.to_string()),
                "disabled",
                Some(actor.audit_name()),
                json!({"sessions_ended": ended}),
            );
        } else {
            state.audit_writer.event(
                Some(&id.to_string()),
                "enabled",
                Some(actor.audit_name()),
                json!({}),
            );
        }
        user = Some(u);
    }
    user.ok_or(UserError::NotFound)
}

/// Logs the user out everywhere: every session ended, every token issued so far revoked.
/// Returns how many sessions ended.
#[tracing::instrument(skip(state))]
pub async fn end_sessions(state: &AppState, id: Uuid, actor: Actor<'_>) -> Result<u64, UserError> {
    let now = shared::unix_now();
    let nb = state
        .users
        .bump_tokens_not_before(id, now)
        .await?
        .ok_or(UserError::NotFound)?;
    let ended = crate::services::sessions::end_all(state, &id.to_string(), nb, now).await?;
    state.audit_writer.event(
        Some(&id.to_string()),
        "sessions_revoked",
        Some(actor.audit_name()),
        json!({"sessions_ended": ended}),
    );
    Ok(ended)
}

/// The user's live sessions.
#[tracing::instrument(skip(state))]
pub async fn sessions(state: &AppState, id: Uuid) -> Result<Vec<SessionInfo>, UserError> {
    Ok(state
        .sessions
        .list(&id.to_string(), shared::unix_now())
        .await?)
}

/// Deletes a user: their sessions ended and tokens revoked first (if deleting then fails, it
/// can be retried; the other order could leave a deleted user's tokens alive). Admins cannot
/// delete themselves.
#[tracing::instrument(skip(state))]
pub async fn delete(state: &AppState, id: Uuid, actor: Actor<'_>) -> Result<(), UserError> {
    if actor.is(id) {
        return Err(UserError::SelfLockout("admins cannot delete themselves"));
    }
    if state.users.find_by_id(id).await?.is_none() {
        return Err(UserError::NotFound);
    }
    let now = shared::unix_now();
    crate::services::sessions::end_all(state, &id.to_string(), now + 1, now).await?;
    if !state.users.delete(id).await? {
        return Err(UserError::NotFound);
    }
    state.audit_writer.event(
        Some(&id.to_string()),
        "user_deleted",
        Some(actor.audit_name()),
        json!({}),
    );
    Ok(())
}
