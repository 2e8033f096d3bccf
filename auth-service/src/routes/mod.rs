//! The HTTP surface; the route table lives here and nowhere else.

mod account;
mod admin;
mod authorize;
mod clients;
mod end_session;
pub mod health;
mod introspect;
mod login;
pub mod openapi;
mod revocations;
mod revoke;
mod token;
mod userinfo;
mod users;
mod well_known;

use actix_web::web;

/// Registers every route. A path with no route for the request's method answers 405.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use web::{delete, get, patch, post, resource};
    cfg.service(resource("/healthz").route(get().to(health::healthz)))
        .service(resource("/readyz").route(get().to(health::readyz)))
        .service(resource("/openapi.json").route(get().to(openapi::document)))
        .service(resource("/docs").route(get().to(|| async {
            actix_web::HttpResponse::MovedPermanently()
                .insert_header((actix_web::http::header::LOCATION, "/docs/"))
                .finish()
        })))
        .service(
            utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
                .url(
                    "/openapi.json",
                    <openapi::ApiDoc as utoipa::OpenApi>::openapi(),
                )
                .config(
                    utoipa_swagger_ui::Config::from("/openapi.json").persist_authorization(true),
                )
                .oauth(
                    utoipa_swagger_ui::oauth::Config::new()
                        .client_id("docs")
                        .scopes(vec!["openid".into(), "profile".into()])
                        .use_pkce_with_authorization_code_grant(true)
                        .use_basic_authentication_with_access_code_grant(false),
                ),
        )
        .service(
            resource("/.well-known/oauth-authorization-server")
                .route(get().to(well_known::metadata_oauth)),
        )
        .service(
            resource("/.well-known/openid-configuration")
                .route(get().to(well_known::metadata_openid)),
        )
        .service(resource("/.well-known/jwks.json").route(get().to(well_known::jwks)))
        .service(
            resource("/v1/authorize")
                .route(get().to(authorize::authorize_get))
                .route(post().to(authorize::authorize_post)),
        )
        .service(resource("/v1/signin").route(post().to(authorize::sign_in)))
        .service(
            resource("/v1/signup")
                .route(get().to(authorize::sign_up_page))
                .route(post().to(authorize::sign_up)),
        )
        .service(resource("/v1/consent").route(post().to(authorize::consent)))
        .service(resource("/v1/account").route(get().to(account::account)))
        .service(resource("/v1/account/sessions/end").route(post().to(account::end_session)))
        .service(
            resource("/v1/account/consents/revoke").route(post().to(account::withdraw_consent)),
        )
        .service(
            resource("/v1/end-session")
                .route(get().to(end_session::end_session_get))
                .route(post().to(end_session::end_session_post)),
        )
        .service(resource("/v1/assets/hosted.css").route(get().to(crate::pages::stylesheet)))
        .service(
            resource("/v1/userinfo")
                .route(get().to(userinfo::userinfo))
                .route(post().to(userinfo::userinfo_post)),
        )
        .service(resource("/v1/users").route(post().to(users::register)))
        .service(resource("/v1/login").route(post().to(login::login)))
        .service(resource("/v1/token").route(post().to(token::token)))
        .service(resource("/v1/revoke").route(post().to(revoke::revoke)))
        .service(resource("/v1/introspect").route(post().to(introspect::introspect)))
        .service(resource("/v1/logout").route(post().to(revoke::logout)))
        .service(resource("/v1/revocations").route(get().to(revocations::revocations)))
        .service(resource("/v1/users/me").route(get().to(users::me)))
        .service(resource("/v1/users/me/password").route(post().to(users::change_password)))
        .service(resource("/v1/users/me/sessions").route(get().to(users::my_sessions)))
        .service(resource("/v1/users/me/sessions/{sid}").route(delete().to(users::end_my_session)))
        .service(resource("/v1/users/me/consents").route(get().to(users::my_consents)))
        .service(
            resource("/v1/users/me/consents/{client_id}")
                .route(delete().to(users::withdraw_my_consent)),
        )
        .service(resource("/v1/admin/users").route(get().to(admin::list_users)))
        .service(
            resource("/v1/admin/users/{id}")
                .route(get().to(admin::get_user))
                .route(patch().to(admin::update_user))
                .route(delete().to(admin::delete_user)),
        )
        .service(resource("/v1/admin/users/{id}/audit").route(get().to(admin::user_audit)))
        .service(
            resource("/v1/admin/clients")
                .route(get().to(clients::list))
                .route(post().to(clients::create)),
        )
        .service(
            resource("/v1/admin/clients/{id}")
                .route(get().to(clients::get))
                .route(patch().to(clients::update))
                .route(delete().to(clients::delete)),
        )
        .service(resource("/v1/admin/clients/{id}/secret").route(post().to(clients::rotate_secret)))
        .service(resource("/v1/admin/keys").route(get().to(admin::list_keys)))
        .service(resource("/v1/admin/keys/rotate").route(post().to(admin::rotate_keys)))
        .service(
            resource("/v1/admin/users/{id}/sessions")
                .route(get().to(admin::user_sessions))
                .route(delete().to(admin::end_user_sessions)),
        );
}

/// The user as clients see it.
#[derive(Debug, serde::Serialize)]
pub struct UserView {
    id: uuid::Uuid,
    username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    roles: Vec<String>,
    disabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: time::OffsetDateTime,
}

impl From<crate::storage::User> for UserView {
    fn from(u: crate::storage::User) -> Self {
        UserView {
            id: u.id,
            username: u.username,
            email: u.email,
            roles: u.roles,
            disabled: u.disabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

fn user_agent(req: &actix_web::HttpRequest) -> String {
    req.headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// The client credentials a token-endpoint request presents (HTTP Basic, or `client_id` and
/// `client_secret` in its body); `None`: none.
fn presented_client(
    req: &actix_web::HttpRequest,
    client_id: Option<&str>,
    client_secret: Option<&secrecy::SecretString>,
) -> Result<Option<crate::services::clients::Credentials>, crate::error::OAuthError> {
    crate::services::clients::credentials(
        req.headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
        client_id,
        client_secret,
    )
}

/// The message of a request that must authenticate a client and presents none.
const CLIENT_AUTH_REQUIRED: &str =
    "client authentication is required: HTTP Basic, or client_id and client_secret";
