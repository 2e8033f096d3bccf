//! actix-web extractors over an [`Authenticator`] in the app data (`web::Data<Authenticator>`):
//! [`Identity`] (either mode) and [`Verified`] (the token's claims). Failures answer as the
//! gateway does: 401 with `WWW-Authenticate: Bearer error="invalid_token"` and a problem body,
//! 400 for two `Authorization` headers, 503 (with `Retry-After`) while no keys are loaded, and
//! 403 `insufficient_scope` for a [`Denied`] returned from a handler.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpMessage as _, HttpRequest, HttpResponse, ResponseError, web};

use crate::authenticator::{AuthError, Authenticator};
use crate::claims::AccessClaims;
use crate::identity::{Denied, Identity};

/// The verified claims of the request's access token (header-trust mode has none: 500).
#[derive(Debug, Clone)]
pub struct Verified(pub AccessClaims);

impl Verified {
    /// The caller the claims describe.
    pub fn identity(&self) -> Identity {
        Identity::from_claims(&self.0)
    }
}

impl std::ops::Deref for Verified {
    type Target = AccessClaims;
    fn deref(&self) -> &AccessClaims {
        &self.0
    }
}

type Extracted<T> = Pin<Box<dyn Future<Output = Result<T, AuthError>>>>;

fn authenticator(req: &HttpRequest) -> Result<web::Data<Authenticator>, AuthError> {
    req.app_data::<web::Data<Authenticator>>()
        .cloned()
        .ok_or(AuthError::Misconfigured(
            "no web::Data<Authenticator> in the app data",
        ))
}

fn logged<T>(result: Result<T, AuthError>) -> Result<T, AuthError> {
    if let Err(e) = &result {
        match e {
            AuthError::Misconfigured(why) => tracing::error!(error = why, "authentication"),
            other => tracing::debug!(reason = other.reason(), "request not authenticated"),
        }
    }
    result
}

/// Verifies the request's token once; a second extractor in the same handler reuses the result.
async fn verified(req: &HttpRequest) -> Result<Verified, AuthError> {
    if let Some(v) = req.extensions().get::<Verified>() {
        return Ok(v.clone());
    }
    let auth = authenticator(req)?;
    let values = req
        .headers()
        .get_all(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    let claims = auth.verify_request(values).await?;
    let v = Verified(claims);
    req.extensions_mut().insert(v.clone());
    Ok(v)
}

impl FromRequest for Verified {
    type Error = AuthError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { logged(verified(&req).await) })
    }
}

impl FromRequest for Identity {
    type Error = AuthError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            logged(
                async {
                    let auth = authenticator(&req)?;
                    if auth.trusts_gateway_headers() {
                        auth.identify(|name| req.headers().get_all(name).map(HeaderValue::as_bytes))
                            .await
                    } else {
                        Ok(verified(&req).await?.identity())
                    }
                }
                .await,
            )
        })
    }
}

/// A response builder for a problem body, never cached.
fn problem(status: StatusCode) -> actix_web::HttpResponseBuilder {
    let mut res = HttpResponse::build(status);
    res.content_type(crate::problem::CONTENT_TYPE)
        .insert_header((header::CACHE_CONTROL, "no-store"));
    res
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = problem(self.status_code());
        if let Some(challenge) = self.challenge() {
            res.insert_header((header::WWW_AUTHENTICATE, challenge));
        }
        if matches!(
            self,
            AuthError::KeysUnavailable | AuthError::RevocationsUnavailable(_)
        ) {
            res.insert_header((header::RETRY_AFTER, "1"));
        }
        res.body(self.problem())
    }
}

impl ResponseError for Denied {
    fn status_code(&self) -> StatusCode {
        StatusCode::FORBIDDEN
    }

    fn error_response(&self) -> HttpResponse {
        let detail = self.to_string();
        let mut res = problem(StatusCode::FORBIDDEN);
        res.insert_header((
            header::WWW_AUTHENTICATE,
            format!("Bearer error=\"insufficient_scope\", error_description=\"{detail}\""),
        ));
        res.body(crate::problem::body(
            403,
            "Forbidden",
            &detail,
            Some("insufficient_scope"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::Principal;
    use crate::verifier::VerifyError;

    #[test]
    fn failures_become_the_gateways_responses() {
        let res = AuthError::InvalidToken(VerifyError::BadSignature).error_response();
        assert_eq!(res.status(), 401);
        let www = res.headers().get(header::WWW_AUTHENTICATE).unwrap();
        assert!(
            www.to_str()
                .unwrap()
                .starts_with("Bearer error=\"invalid_token\"")
        );
        assert_eq!(
            res.headers().get(header::CONTENT_TYPE).unwrap(),
            crate::problem::CONTENT_TYPE
        );
        let res = AuthError::KeysUnavailable.error_response();
        assert_eq!(res.status(), 503);
        assert_eq!(res.headers().get(header::RETRY_AFTER).unwrap(), "1");
        assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
        let res = AuthError::Missing.error_response();
        assert_eq!(
            res.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            "Bearer"
        );
        let res = Denied::Principal(Principal::User).error_response();
        assert_eq!(res.status(), 403);
        assert!(
            res.headers()
                .get(header::WWW_AUTHENTICATE)
                .unwrap()
                .to_str()
                .unwrap()
                .contains("insufficient_scope")
        );
    }
}
