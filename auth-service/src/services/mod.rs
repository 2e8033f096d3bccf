//! Services: the rules the HTTP routes, the hosted pages and the CLI share, each owned once.

pub mod login;
pub mod users;
