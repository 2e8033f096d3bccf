//! One place maps errors to HTTP: RFC 9457 problem details everywhere, RFC 6749 §5.2 bodies on
//! the token endpoints, RFC 6750 `WWW-Authenticate` on every bearer failure. Clients get a clear
//! message; logs get the whole chain (never a secret).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::crypto::password::HashError;
use crate::domain::DomainError;
use crate::storage::StoreError;
use crate::throttle::{Refusal, Throttled};

/// `application/problem+json`.
pub const PROBLEM_JSON: &str = shared::problem::CONTENT_TYPE;
const REALM: &str = "auth";

/// Why bearer authentication failed (RFC 6750 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BearerError {
    /// No credentials: the challenge carries no error code.
    Missing,
    /// Credentials of another scheme (`Basic`, …) where a bearer token is needed: no error code
    /// either (RFC 6750 §3.1), and the detail says how to send the token.
    OtherScheme,
    /// A token was given but is not acceptable.
    InvalidToken(&'static str),
    /// The request itself is malformed (e.g. two `Authorization` headers).
    InvalidRequest(&'static str),
}

/// Errors of every endpoint except the token endpoints.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request (unparseable body, bad parameter).
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but unacceptable values.
    #[error("{0}")]
    Invalid(DomainError),
    /// Content type we do not read.
    #[error("unsupported media type")]
    UnsupportedMediaType(&'static str),
    /// Body over the limit.
    #[error("request body too large")]
    PayloadTooLarge(usize),
    /// Bearer authentication failed.
    #[error("authentication failed")]
    Unauthorized(BearerError),
    /// Authenticated but not allowed; `insufficient_scope` challenge.
    #[error("{0}")]
    Forbidden(String),
    /// Not allowed for a reason the client can act on (`code`), e.g. wrong current password.
    #[error("{detail}")]
    Refused {
        /// Machine-readable reason.
        code: &'static str,
        /// Human-readable explanation.
        detail: String,
    },
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// State conflict (`code` says which).
    #[error("{detail}")]
    Conflict {
        /// Machine-readable reason.
        code: &'static str,
        /// Human-readable explanation.
        detail: String,
    },
    /// A backing store is unreachable, or hashing is saturated: retry shortly.
    #[error("{0}")]
    Unavailable(String),
    /// Too many attempts (429 with `Retry-After`).
    #[error("too many attempts")]
    TooManyRequests(Throttled),
    /// A bug or an unexpected state.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Throttled(t) => ApiError::TooManyRequests(t),
            Refusal::Store(e) => e.into(),
        }
    }
}

impl From<Refusal> for OAuthError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Throttled(t) => OAuthError::SlowDown(t),
            Refusal::Store(e) => e.into(),
        }
    }
}

fn throttled_detail(t: &Throttled) -> String {
    format!("too many attempts; retry in {} s", t.retry_after_secs())
}

fn retry_after(t: &Throttled) -> HeaderValue {
    HeaderValue::from(t.retry_after_secs())
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(e) => {
                tracing::warn!(error = %format!("{e:#}"), "store unavailable");
                ApiError::Unavailable("a backing store is unavailable; retry shortly".into())
            }
            StoreError::Other(e) => ApiError::Unexpected(e),
        }
    }
}

impl From<HashError> for ApiError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => {
                ApiError::Unavailable("too many password checks in progress; retry shortly".into())
            }
            HashError::Internal(e) => ApiError::Unexpected(e),
        }
    }
}

impl From<crate::services::users::UserError> for ApiError {
    fn from(e: crate::services::users::UserError) -> Self {
        use crate::services::users::UserError;
        match e {
            UserError::NotFound => ApiError::NotFound("no such user".into()),
            UserError::UsernameTaken => ApiError::Conflict {
                code: "username_taken",
                detail: "that username is taken".into(),
            },
            UserError::SelfLockout(detail) => ApiError::Conflict {
                code: "self_lockout",
                detail: detail.into(),
            },
            UserError::NothingToChange => ApiError::BadRequest(e.to_string()),
            UserError::Invalid(d) => ApiError::Invalid(d),
            UserError::Hash(h) => h.into(),
            UserError::RegistrationClosed => ApiError::Refused {
                code: "registration_closed",
                detail: "registration is closed".into(),
            },
            UserError::WrongPassword => ApiError::Refused {
                code: "invalid_current_password",
                detail: "the current password is not correct".into(),
            },
            UserError::Store(s) => s.into(),
            UserError::Unexpected(e) => ApiError::Unexpected(e),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        ApiError::Invalid(e)
    }
}

/// Builds a problem-details response.
pub fn problem(status: StatusCode, detail: &str, code: Option<&str>) -> HttpResponse {
    let title = status.canonical_reason().unwrap_or("Error");
    HttpResponse::build(status)
        .content_type(PROBLEM_JSON)
        .body(shared::problem::body(status.as_u16(), title, detail, code))
}

fn challenge(error: Option<(&str, &str)>) -> HeaderValue {
    let v = match error {
        None => format!("Bearer realm=\"{REALM}\""),
        Some((code, desc)) => {
            format!("Bearer realm=\"{REALM}\", error=\"{code}\", error_description=\"{desc}\"")
        }
    };
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized(BearerError::InvalidRequest(_)) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::Refused { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut res = match self {
            ApiError::BadRequest(d) => problem(status, d, Some("invalid_request")),
            ApiError::Invalid(e) => problem(status, &e.message, Some(e.code)),
            ApiError::UnsupportedMediaType(expected) => problem(
                status,
                &format!("send the body as {expected}"),
                Some("unsupported_media_type"),
            ),
            ApiError::PayloadTooLarge(limit) => problem(
                status,
                &format!("request body exceeds {limit} bytes"),
                Some("body_too_large"),
            ),
            ApiError::Unauthorized(e) => {
                let (detail, header) = match e {
                    BearerError::Missing => ("a bearer access token is required", challenge(None)),
                    BearerError::OtherScheme => (
                        "this endpoint takes a bearer access token: send the header as Authorization: Bearer <access token>",
                        challenge(None),
                    ),
                    BearerError::InvalidToken(why) => {
                        (*why, challenge(Some(("invalid_token", why))))
                    }
                    BearerError::InvalidRequest(why) => {
                        (*why, challenge(Some(("invalid_request", why))))
                    }
                };
                let mut r = problem(
                    status,
                    detail,
                    Some(
                        if matches!(e, BearerError::Missing | BearerError::OtherScheme) {
                            "unauthorized"
                        } else {
                            "invalid_token"
                        },
                    ),
                );
                r.headers_mut().insert(header::WWW_AUTHENTICATE, header);
                r
            }
            ApiError::Forbidden(d) => {
                let mut r = problem(status, d, Some("insufficient_scope"));
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    challenge(Some(("insufficient_scope", d))),
                );
                r
            }
            ApiError::Refused { code, detail } | ApiError::Conflict { code, detail } => {
                let mut r = problem(status, detail, Some(code));
                // A bearer route refusing the token's kind says so in the challenge too.
                if *code == "user_token_required" {
                    r.headers_mut().insert(
                        header::WWW_AUTHENTICATE,
                        challenge(Some(("insufficient_scope", detail))),
                    );
                }
                r
            }
            ApiError::NotFound(d) => problem(status, d, Some("not_found")),
            ApiError::Unavailable(d) => {
                let mut r = problem(status, d, Some("unavailable"));
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                r
            }
            ApiError::TooManyRequests(t) => {
                let mut r = problem(status, &throttled_detail(t), Some("too_many_requests"));
                r.headers_mut().insert(header::RETRY_AFTER, retry_after(t));
                r
            }
            ApiError::Unexpected(e) => {
                tracing::error!(error = %format!("{e:#}"), "unexpected error");
                problem(status, "an internal error occurred", Some("internal_error"))
            }
        };
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

/// Errors of the token endpoints (`/v1/login`, `/v1/token`, `/v1/revoke`), RFC 6749 §5.2.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// `invalid_request`.
    #[error("{0}")]
    InvalidRequest(String),
    /// `invalid_grant`: bad credentials, or an invalid, expired, revoked or reused refresh token.
    #[error("{0}")]
    InvalidGrant(&'static str),
    /// `unsupported_grant_type`.
    #[error("unsupported grant type")]
    UnsupportedGrantType,
    /// `unsupported_grant_type`: the password grant is turned off (`AUTH_PASSWORD_GRANT=off`).
    #[error("the password grant is turned off")]
    PasswordGrantOff,
    /// `invalid_scope`.
    #[error("{0}")]
    InvalidScope(String),
    /// `invalid_target` (RFC 8707): an audience the client may not have.
    #[error("{0}")]
    InvalidTarget(String),
    /// `unauthorized_client`: e.g. revoking a token that belongs to another user or client.
    #[error("{0}")]
    UnauthorizedClient(&'static str),
    /// `invalid_client` (401): the request carried a bearer credential that is not valid.
    #[error("{0}")]
    InvalidClient(&'static str),
    /// `invalid_client` (401) with a `Basic` challenge: client authentication (RFC 6749 §2.3)
    /// failed: unknown client, wrong secret, disabled client, or malformed credentials.
    #[error("{0}")]
    BadClientAuth(&'static str),
    /// Content type we do not read (answered 415 with an `invalid_request` body).
    #[error("unsupported media type")]
    UnsupportedMediaType(&'static str),
    /// Body over the limit (413 with an `invalid_request` body).
    #[error("request body too large")]
    PayloadTooLarge(usize),
    /// `temporarily_unavailable` (503).
    #[error("{0}")]
    TemporarilyUnavailable(String),
    /// `slow_down` (429 with `Retry-After`): too many attempts.
    #[error("too many attempts")]
    SlowDown(Throttled),
    /// `access_denied` (403): a browser request that fails the cross-site checks.
    #[error("{0}")]
    CrossSite(&'static str),
    /// `server_error` (500).
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        match ApiError::from(e) {
            ApiError::Unavailable(d) => OAuthError::TemporarilyUnavailable(d),
            ApiError::Unexpected(e) => OAuthError::Unexpected(e),
            other => OAuthError::Unexpected(anyhow::anyhow!("{other}")),
        }
    }
}

impl From<HashError> for OAuthError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => OAuthError::TemporarilyUnavailable(
                "too many logins in progress; retry shortly".into(),
            ),
            HashError::Internal(e) => OAuthError::Unexpected(e),
        }
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            OAuthError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            OAuthError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            OAuthError::TemporarilyUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            OAuthError::SlowDown(_) => StatusCode::TOO_MANY_REQUESTS,
            OAuthError::InvalidClient(_) | OAuthError::BadClientAuth(_) => StatusCode::UNAUTHORIZED,
            OAuthError::CrossSite(_) => StatusCode::FORBIDDEN,
            OAuthError::Unexpected(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (code, desc) = match self {
            OAuthError::InvalidRequest(d) => ("invalid_request", d.clone()),
            OAuthError::InvalidGrant(d) => ("invalid_grant", (*d).to_owned()),
            OAuthError::UnsupportedGrantType => (
                "unsupported_grant_type",
                "grant_type must be authorization_code, refresh_token or client_credentials".into(),
            ),
            OAuthError::PasswordGrantOff => (
                "unsupported_grant_type",
                "signing in with a password here is turned off: use the authorization code flow (authorization_endpoint in the metadata)".into(),
            ),
            OAuthError::InvalidScope(d) => ("invalid_scope", d.clone()),
            OAuthError::InvalidTarget(d) => ("invalid_target", d.clone()),
            OAuthError::UnauthorizedClient(d) => ("unauthorized_client", (*d).to_owned()),
            OAuthError::InvalidClient(d) | OAuthError::BadClientAuth(d) => {
                ("invalid_client", (*d).to_owned())
            }
            OAuthError::UnsupportedMediaType(expected) => {
                ("invalid_request", format!("send the body as {expected}"))
            }
            OAuthError::PayloadTooLarge(limit) => (
                "invalid_request",
                format!("request body exceeds {limit} bytes"),
            ),
            OAuthError::TemporarilyUnavailable(d) => ("temporarily_unavailable", d.clone()),
            OAuthError::SlowDown(t) => ("slow_down", throttled_detail(t)),
            OAuthError::CrossSite(d) => ("access_denied", (*d).to_owned()),
            OAuthError::Unexpected(e) => {
                tracing::error!(error = %format!("{e:#}"), "unexpected error");
                ("server_error", "an internal error occurred".into())
            }
        };
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"));
        if matches!(self, OAuthError::TemporarilyUnavailable(_)) {
            res.insert_header((header::RETRY_AFTER, "1"));
        }
        if let OAuthError::SlowDown(t) = self {
            res.insert_header((header::RETRY_AFTER, retry_after(t)));
        }
        if let OAuthError::InvalidClient(d) = self {
            res.insert_header((
                header::WWW_AUTHENTICATE,
                challenge(Some(("invalid_token", d))),
            ));
        }
        if matches!(self, OAuthError::BadClientAuth(_)) {
            res.insert_header((
                header::WWW_AUTHENTICATE,
                r#"Basic realm="clients", charset="UTF-8""#,
            ));
        }
        res.json(json!({"error": code, "error_description": desc}))
    }
}
