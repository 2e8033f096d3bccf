//! Services: the rules the HTTP routes, the hosted pages and the CLI share, each owned once and
//! knowing nothing of HTTP or terminals. Adapters parse their input, call one service function
//! with the `AppState` (the container of stores and infrastructure) and render the result.

pub mod account;
pub mod authorize;
pub mod clients;
pub mod keys;
pub mod login;
pub mod logout;
pub mod sessions;
pub mod tokens;
pub mod users;

/// Who acts: an account through the API (an admin, or the user themself), the operator's CLI, or
/// the service itself (a scheduled rotation, a repair at start). Named in the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor<'a> {
    /// A signed-in account, by its user id (`sub`).
    Account(&'a str),
    /// The `auth-service` command line.
    Cli,
    /// The service on its own.
    Service,
}

impl Actor<'_> {
    /// How the audit trail names it.
    pub fn audit_name(&self) -> &str {
        match self {
            Actor::Account(id) => id,
            Actor::Cli => "cli",
            Actor::Service => "service",
        }
    }

    /// True when it is the account `id` acting on itself.
    pub fn is(&self, id: uuid::Uuid) -> bool {
        matches!(self, Actor::Account(sub) if *sub == id.to_string())
    }
}
