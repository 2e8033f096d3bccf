//! Reading requests: bodies (JSON or form, bounded) and bearer tokens.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt as _;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use shared::AccessClaims;

use crate::error::{ApiError, BearerError, OAuthError};
use crate::state::AppState;

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyParseError {
    /// Not a content type this endpoint reads.
    UnsupportedMediaType(&'static str),
    /// Over the limit.
    TooLarge(usize),
    /// Does not parse into the expected shape (the message names the field).
    Malformed(String),
}

impl From<BodyParseError> for ApiError {
    fn from(e: BodyParseError) -> Self {
        match e {
            BodyParseError::UnsupportedMediaType(m) => ApiError::UnsupportedMediaType(m),
            BodyParseError::TooLarge(n) => ApiError::PayloadTooLarge(n),
            BodyParseError::Malformed(m) => ApiError::BadRequest(m),
        }
    }
}

impl From<BodyParseError> for OAuthError {
    fn from(e: BodyParseError) -> Self {
        match e {
            BodyParseError::UnsupportedMediaType(m) => OAuthError::UnsupportedMediaType(m),
            BodyParseError::TooLarge(n) => OAuthError::PayloadTooLarge(n),
            BodyParseError::Malformed(m) => OAuthError::InvalidRequest(m),
        }
    }
}

/// Which encodings an endpoint reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// `application/json` only.
    Json,
    /// `application/json` or `application/x-www-form-urlencoded`.
    JsonOrForm,
}

fn media_type(req: &HttpRequest) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The answer to a JSON body sent without `Content-Type: application/json`.
const JSON_WITHOUT_ITS_TYPE: &str =
    "application/json: the body looks like JSON, so add the header Content-Type: application/json";

/// Whether a body (or its first chunk) starts like a JSON object or array.
fn looks_like_json(body: &[u8]) -> bool {
    matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

/// Reads at most `limit` bytes of body and parses it as `T`. Unknown fields are ignored (so
/// `roles`, `id` or `is_admin` sent by a client are never applied: the types have no such field);
/// duplicate fields are refused.
pub async fn parse_body<T: DeserializeOwned>(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    accept: Accept,
) -> Result<T, BodyParseError> {
    let expected = match accept {
        Accept::Json => "application/json",
        Accept::JsonOrForm => "application/json or application/x-www-form-urlencoded",
    };
    let mt = media_type(req);
    let is_json =
        mt == "application/json" || (mt.starts_with("application/") && mt.ends_with("+json"));
    let is_form = mt == "application/x-www-form-urlencoded" && accept == Accept::JsonOrForm;
    if !is_json && !is_form {
        // A JSON body sent without its header (curl -d '{…}' sends it as a form, or with none):
        // say which header is missing.
        if let Some(Ok(first)) = payload.next().await
            && looks_like_json(&first)
        {
            return Err(BodyParseError::UnsupportedMediaType(JSON_WITHOUT_ITS_TYPE));
        }
        return Err(BodyParseError::UnsupportedMediaType(expected));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyParseError::TooLarge(limit));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| BodyParseError::Malformed(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(BodyParseError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    if is_json {
        serde_json::from_slice(&body)
            .map_err(|e| BodyParseError::Malformed(format!("invalid JSON body: {e}")))
    } else if looks_like_json(&body) {
        // `curl -d '{…}'` labels JSON as a form: no field of ours starts a form with `{`.
        Err(BodyParseError::UnsupportedMediaType(JSON_WITHOUT_ITS_TYPE))
    } else {
        serde_urlencoded::from_bytes(&body)
            .map_err(|e| BodyParseError::Malformed(format!("invalid form body: {e}")))
    }
}

/// For `#[serde(default, deserialize_with = "present")]`: a field that may be left out but not
/// sent as `null` (in an update, `null` would read as "leave it" and hide a mistake).
pub fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// For `#[serde(default, deserialize_with = "whole_number")]`: an integer as JSON Schema counts
/// them, so `30.0` is 30 while `30.5`, `null` and strings are refused.
pub fn whole_number<'de, D>(d: D) -> Result<Option<i64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let n = <serde_json::Number as serde::Deserialize>::deserialize(d)?;
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    match n.as_f64() {
        // Within ±2^53 every whole f64 is exact, and the cast cannot saturate.
        Some(f) if f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0 => Ok(Some(f as i64)),
        _ => Err(serde::de::Error::custom(format!(
            "{n} is not a whole number in range"
        ))),
    }
}

/// The bearer token of a request: `None` without an `Authorization` header.
pub fn bearer_token(req: &HttpRequest) -> Result<Option<String>, BearerError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(BearerError::InvalidRequest(
            "more than one Authorization header",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| BearerError::InvalidToken("malformed Authorization header"))?;
    let (scheme, token) = value.split_once(' ').ok_or(BearerError::InvalidToken(
        "the Authorization header has no scheme: send Authorization: Bearer <access token>",
    ))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme (Basic, …) carries no bearer credentials at all.
        return Ok(None);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(BearerError::InvalidToken("empty bearer token"));
    }
    Ok(Some(token.to_owned()))
}

/// A request authenticated by a valid, unrevoked access token.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The verified claims.
    pub claims: AccessClaims,
    /// The session the token belongs to: every endpoint behind this extractor acts for a user,
    /// so a client's own token (client credentials, no session) is refused.
    pub sid: String,
}

impl Authenticated {
    /// The user id from `sub`.
    pub fn user_id(&self) -> Result<uuid::Uuid, ApiError> {
        self.claims.sub.parse().map_err(|_| {
            ApiError::Unauthorized(BearerError::InvalidToken("token subject is not a user id"))
        })
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = bearer_token(req);
        let other_scheme = req.headers().contains_key(header::AUTHORIZATION);
        Box::pin(async move {
            let state = state.ok_or_else(|| {
                ApiError::Unexpected(anyhow::anyhow!("application state missing"))
            })?;
            let token = token
                .map_err(ApiError::Unauthorized)?
                .ok_or(ApiError::Unauthorized(if other_scheme {
                    BearerError::OtherScheme
                } else {
                    BearerError::Missing
                }))?;
            let claims = crate::services::tokens::authenticate(&state, &token).await?;
            let sid = claims.sid.clone().ok_or_else(|| ApiError::Refused {
                code: "user_token_required",
                detail: "this endpoint acts for a user: a client's own token cannot use it".into(),
            })?;
            Ok(Authenticated { claims, sid })
        })
    }
}

/// An authenticated request whose token carries the `admin` role.
#[derive(Debug, Clone)]
pub struct Admin(pub Authenticated);

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let auth = Authenticated::from_request(req, payload);
        Box::pin(async move {
            let auth = auth.await?;
            if !auth
                .claims
                .roles
                .iter()
                .any(|r| r == crate::domain::ADMIN_ROLE)
            {
                return Err(ApiError::Forbidden("the admin role is required".into()));
            }
            Ok(Admin(auth))
        })
    }
}
