//! The key cache against a real issuer: a new key arrives through one refetch however many
//! requests wait for it; a flood of unknown kids causes at most one; no keys means 503; the
//! background refresh honours its bounds; metadata for another issuer is refused.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use actix_web::{App, test, web};
use futures_util::future::join_all;
use serde_json::json;
use shared::jws::b64_encode;
use shared::{Authenticator, KeyCache};

use crate::support::{Issuer, Signer, get, routes, send};

#[actix_web::test]
async fn an_unknown_kid_is_fetched_once_for_many_concurrent_requests() {
    let issuer = Issuer::start().await;
    let (auth, keys) = issuer.authenticator().await;
    let app = test::init_service(App::new().app_data(auth).configure(routes)).await;
    let before = issuer.jwks_hits();
    let generation = keys.current().unwrap().generation;
    // The issuer rotates to a key this service has never seen; its JWKS answers slowly, so the
    // requests below all wait on the same refetch.
    let next = Signer::new("k2");
    issuer.publish(&next);
    issuer.state.delay_ms.store(300, Ordering::SeqCst);
    let token = next.sign("at+jwt", &issuer.claims());
    let replies =
        join_all((0..25).map(|_| send(&app, get("/me", Some(&token)).to_request()))).await;
    for r in &replies {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(issuer.jwks_hits() - before, 1, "one fetch for 25 requests");
    let now = keys.current().unwrap();
    assert_eq!(now.keys.len(), 2);
    assert!(now.generation > generation);
    // Both keys verify from now on, without fetching.
    for t in [issuer.token(), token] {
        assert_eq!(
            send(&app, get("/me", Some(&t)).to_request()).await.status,
            200
        );
    }
    assert_eq!(issuer.jwks_hits() - before, 1);
}

#[actix_web::test]
async fn a_flood_of_unknown_kids_causes_at_most_one_fetch() {
    let issuer = Issuer::start().await;
    let (auth, _) = issuer.authenticator().await;
    let app = test::init_service(App::new().app_data(auth).configure(routes)).await;
    let before = issuer.jwks_hits();
    let claims = b64_encode(issuer.claims().to_string());
    let tokens: Vec<String> = (0..200)
        .map(|i| {
            let h = json!({"alg": "RS256", "typ": "at+jwt", "kid": format!("random-{i}")});
            format!("{}.{claims}.c2ln", b64_encode(h.to_string()))
        })
        .collect();
    let replies = join_all(
        tokens
            .iter()
            .map(|t| send(&app, get("/me", Some(t)).to_request())),
    )
    .await;
    for r in &replies {
        assert_eq!(r.status, 401);
    }
    let fetches = issuer.jwks_hits() - before;
    assert!(fetches <= 1, "{fetches} fetches for 200 unknown kids");
}

#[actix_web::test]
async fn without_keys_requests_get_503_until_the_keys_load() {
    let issuer = Issuer::start().await;
    issuer.state.down.store(true, Ordering::SeqCst);
    let keys = Arc::new(KeyCache::new(issuer.config()));
    assert!(keys.fetch().await.is_err());
    assert!(keys.last_error().unwrap().contains("503"));
    let auth = web::Data::new(Authenticator::new(Arc::clone(&keys), issuer.validation()));
    let app = test::init_service(App::new().app_data(auth).configure(routes)).await;
    let r = send(&app, get("/me", Some(&issuer.token())).to_request()).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after"), "1");
    assert_eq!(r.body["code"], "keys_unavailable");
    // Garbage is still garbage, but keys come first: nothing can be verified without them.
    let r = send(&app, get("/me", Some("x.y.z")).to_request()).await;
    assert_eq!(r.status, 503);
    issuer.state.down.store(false, Ordering::SeqCst);
    keys.fetch().await.unwrap();
    assert_eq!(keys.last_error(), None);
    let r = send(&app, get("/me", Some(&issuer.token())).to_request()).await;
    assert_eq!(r.status, 200);
}

#[actix_web::test]
async fn keys_are_refreshed_in_the_background_within_the_bounds() {
    let issuer = Issuer::start().await;
    let mut config = issuer.config();
    // The JWKS asks for max-age=300; the bound caps it at 1 s.
    config.min_refresh = Duration::from_millis(100);
    config.max_refresh = Duration::from_secs(1);
    let keys = Arc::new(KeyCache::new(config));
    let refresher = keys.spawn_refresher();
    let mut loaded = false;
    for _ in 0..50 {
        if keys.current().is_some() {
            loaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(loaded, "the first fetch happens at once");
    // A scheduled rotation publishes the next key before it signs anything.
    issuer.publish(&Signer::new("k2"));
    let mut seen = false;
    for _ in 0..40 {
        if keys.current().unwrap().keys.get("k2").is_some() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    refresher.abort();
    assert!(seen, "the background refresh picked the new key up");
    assert_eq!(keys.key_ages().len(), 2);
}

#[actix_web::test]
async fn metadata_naming_another_issuer_is_refused() {
    let issuer = Issuer::start().await;
    *issuer.state.claimed_issuer.lock().unwrap() = Some("https://someone-else.example".into());
    let keys = KeyCache::new(issuer.config());
    let err = keys.fetch().await.unwrap_err().to_string();
    assert!(err.contains("someone-else"), "{err}");
    assert!(keys.current().is_none());
    assert_eq!(issuer.jwks_hits(), 0);
}

/// A key the issuer revoked (a compromise) leaves the cache at once, with a new generation; a
/// JWKS that still publishes it (a stale copy) does not bring it back; its tokens are refused as
/// revoked without a refetch, whatever they claim; the other keys keep working.
#[actix_web::test]
async fn a_revoked_key_leaves_at_once_and_no_later_jwks_brings_it_back() {
    let issuer = Issuer::start().await;
    let other = Signer::new("k2");
    issuer.publish(&other);
    let (auth, keys) = issuer.authenticator().await;
    let app = test::init_service(App::new().app_data(auth).configure(routes)).await;
    let stolen = issuer.token();
    let kept = other.sign("at+jwt", &issuer.claims());
    assert_eq!(
        send(&app, get("/me", Some(&stolen)).to_request())
            .await
            .status,
        200
    );
    let generation = keys.current().unwrap().generation;
    assert!(keys.revoke_key("k1", shared::unix_now() + 600));
    let now = keys.current().unwrap();
    assert!(now.keys.get("k1").is_none() && now.keys.get("k2").is_some());
    assert!(
        now.generation > generation,
        "caches of verified tokens drop it"
    );
    assert_eq!(keys.revoked_keys(), vec!["k1".to_owned()]);
    // The issuer still publishes k1 (a cache in front kept the old JWKS): fetched, and skipped.
    keys.fetch().await.unwrap();
    assert!(keys.current().unwrap().keys.get("k1").is_none());
    let before = issuer.jwks_hits();
    let mut forged_claims = issuer.claims();
    forged_claims["exp"] = json!(shared::unix_now() + 365 * 86_400);
    forged_claims["roles"] = json!(["admin"]);
    for token in [stolen, issuer.signer.sign("at+jwt", &forged_claims)] {
        let r = send(&app, get("/me", Some(&token)).to_request()).await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert!(r.header("www-authenticate").contains("invalid_token"));
        assert_eq!(r.body["detail"], "the token has been revoked");
    }
    assert_eq!(issuer.jwks_hits(), before, "no refetch for a revoked kid");
    assert_eq!(
        send(&app, get("/me", Some(&kept)).to_request())
            .await
            .status,
        200
    );
    // Expired revocations stop mattering: the key is fetched again once its entry is over.
    assert!(!keys.revoke_key("k9", shared::unix_now() - 1));
    assert!(!keys.is_revoked_key("k9"));
}
