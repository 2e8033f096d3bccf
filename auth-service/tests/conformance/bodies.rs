//! The test bodies, written once against the storage traits.

use std::time::Duration;

use auth_service::crypto::keys::SigningKey;
use auth_service::domain::{Role, Username};
use auth_service::storage::{
    ClientProfile, ClientType, ClientUpdate, CodeGrant, CodeIssue, CodeTake, CreateClientError,
    CreateUserError, NewClient, NewSession, NewUser, RefreshRecord, RefreshSession, Rotation,
};
use shared::feed::{Position, StreamId};
use shared::{AccessClaims, Audience, RevocationEvent};

use crate::{LEEWAY, Stores};

fn new_user(name: &str) -> NewUser {
    NewUser {
        username: Username::parse(name).unwrap(),
        email: None,
        password_hash: format!("$argon2id$hash-of-{name}"),
        roles: vec![Role::parse("user").unwrap()],
    }
}

fn session(sid: &str, sub: &str, jti: &str, now: i64) -> NewSession {
    NewSession {
        sid: sid.into(),
        sub: sub.into(),
        refresh_jti: Some(jti.into()),
        parent: None,
        browser: None,
        amr: "pwd".into(),
        auth_time: now,
        abs_exp: now + 3600,
        refresh_exp: now + 600,
        client_id: "app".into(),
        scope: "profile".into(),
        user_agent: "conformance".into(),
    }
}

fn claims(jti: &str, sid: &str, sub: &str, iat: i64) -> AccessClaims {
    AccessClaims {
        iss: "i".into(),
        sub: sub.into(),
        aud: Audience::One("api".into()),
        client_id: "app".into(),
        exp: iat + 900,
        iat,
        nbf: iat,
        jti: jti.into(),
        sid: Some(sid.into()),
        roles: vec![],
        scope: String::new(),
    }
}

pub async fn users_are_unique_case_insensitively_and_found_by_name_or_id(s: &Stores) {
    let alice = s.users.create(new_user("Alice")).await.unwrap();
    assert_eq!(alice.username, "Alice");
    assert_eq!(alice.roles, vec!["user".to_owned()]);
    assert!(matches!(
        s.users.create(new_user("aLICE")).await,
        Err(CreateUserError::UsernameTaken)
    ));
    let (found, hash) = s.users.find_by_username("ALICE").await.unwrap().unwrap();
    assert_eq!(found.id, alice.id);
    assert_eq!(hash, "$argon2id$hash-of-Alice");
    assert_eq!(
        s.users
            .find_by_id(alice.id)
            .await
            .unwrap()
            .unwrap()
            .username,
        "Alice"
    );
    assert_eq!(
        s.users.password_hash(alice.id).await.unwrap().as_deref(),
        Some("$argon2id$hash-of-Alice")
    );
    assert!(s.users.find_by_username("bob").await.unwrap().is_none());
    assert!(
        s.users
            .find_by_id(uuid::Uuid::new_v4())
            .await
            .unwrap()
            .is_none()
    );
    // A hash upgrade applies only if the password did not change meanwhile.
    s.users
        .upgrade_hash(alice.id, "not the current hash", "new")
        .await
        .unwrap();
    assert_eq!(
        s.users.password_hash(alice.id).await.unwrap().as_deref(),
        Some("$argon2id$hash-of-Alice")
    );
    s.users
        .upgrade_hash(alice.id, "$argon2id$hash-of-Alice", "upgraded")
        .await
        .unwrap();
    assert_eq!(
        s.users.password_hash(alice.id).await.unwrap().as_deref(),
        Some("upgraded")
    );
    assert!(s.users.delete(alice.id).await.unwrap());
    assert!(!s.users.delete(alice.id).await.unwrap());
    assert!(s.users.find_by_username("alice").await.unwrap().is_none());
}

pub async fn the_bootstrap_admin_goes_only_into_an_empty_table_once(s: &Stores) {
    let admin = s
        .users
        .create_bootstrap_admin(new_user("root"))
        .await
        .unwrap();
    assert!(admin.is_some());
    assert!(
        s.users
            .create_bootstrap_admin(new_user("root2"))
            .await
            .unwrap()
            .is_none()
    );
    // Even once the table is empty again: only once ever.
    s.users.delete(admin.unwrap().id).await.unwrap();
    assert!(
        s.users
            .create_bootstrap_admin(new_user("root3"))
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn changes_that_revoke_raise_tokens_not_before(s: &Stores) {
    let u = s.users.create(new_user("carol")).await.unwrap();
    let now = shared::unix_now();
    let nb = s
        .users
        .bump_tokens_not_before(u.id, now)
        .await
        .unwrap()
        .unwrap();
    assert!(nb > now);
    let nb2 = s
        .users
        .set_password(u.id, "new-hash", now)
        .await
        .unwrap()
        .unwrap();
    assert!(nb2 > nb, "always strictly later");
    assert_eq!(
        s.users.password_hash(u.id).await.unwrap().as_deref(),
        Some("new-hash")
    );
    let roles = vec![
        Role::parse("support").unwrap(),
        Role::parse("user").unwrap(),
    ];
    let changed = s.users.set_roles(u.id, &roles, now).await.unwrap().unwrap();
    assert_eq!(changed.roles, vec!["support".to_owned(), "user".to_owned()]);
    assert!(changed.tokens_not_before > nb2);
    let disabled = s
        .users
        .set_disabled(u.id, true, now)
        .await
        .unwrap()
        .unwrap();
    assert!(disabled.disabled && disabled.tokens_not_before > changed.tokens_not_before);
    let enabled = s
        .users
        .set_disabled(u.id, false, now)
        .await
        .unwrap()
        .unwrap();
    assert!(!enabled.disabled);
    assert_eq!(
        enabled.tokens_not_before, disabled.tokens_not_before,
        "enabling revokes nothing"
    );
    let missing = uuid::Uuid::new_v4();
    assert!(
        s.users
            .bump_tokens_not_before(missing, now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.users
            .set_roles(missing, &roles, now)
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn users_are_listed_in_creation_order_by_keyset_pages(s: &Stores) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            s.users
                .create(new_user(&format!("user{i}")))
                .await
                .unwrap()
                .id,
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s.users.list(cursor, 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|u| (u.created_at, u.id));
        seen.extend(page.iter().map(|u| u.id));
    }
    assert_eq!(seen, ids);
}

pub async fn keys_move_from_next_to_current_to_retired_to_removed(s: &Stores) {
    assert!(!s.keys.has_current().await.unwrap());
    let first = SigningKey::generate(auth_service::crypto::keys::KeySpec::Rsa(2048)).unwrap();
    let first_kid = first.kid.clone();
    assert!(s.keys.insert_if_no_current(first).await.unwrap());
    assert!(s.keys.has_current().await.unwrap());
    assert!(
        !s.keys
            .insert_if_no_current(
                SigningKey::generate(auth_service::crypto::keys::KeySpec::Rsa(2048)).unwrap()
            )
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let now = shared::unix_now();
    let second = SigningKey::generate(auth_service::crypto::keys::KeySpec::Rsa(2048)).unwrap();
    let second_kid = second.kid.clone();
    // Published as next, not signing until its time.
    assert!(s.keys.add_next(second, now + 100).await.unwrap());
    assert!(
        !s.keys
            .add_next(
                SigningKey::generate(auth_service::crypto::keys::KeySpec::Rsa(2048)).unwrap(),
                now + 100
            )
            .await
            .unwrap(),
        "one pending rotation at a time"
    );
    let states = |keys: &[auth_service::storage::StoredKey]| {
        keys.iter()
            .map(|k| (k.kid.clone(), k.state.to_string()))
            .collect::<Vec<_>>()
    };
    let keys = s.keys.load().await.unwrap();
    assert_eq!(
        states(&keys),
        vec![
            (second_kid.clone(), "next".into()),
            (first_kid.clone(), "current".into())
        ]
    );
    assert_eq!(keys[0].times.activate_after, Some(now + 100));
    assert!(!s.keys.advance(now + 99, 50).await.unwrap(), "not due yet");
    // Due: next becomes current, current retires until now + 100 + 50.
    assert!(s.keys.advance(now + 100, 50).await.unwrap());
    let keys = s.keys.load().await.unwrap();
    assert_eq!(
        states(&keys),
        vec![
            (second_kid.clone(), "current".into()),
            (first_kid.clone(), "retired".into())
        ]
    );
    assert_eq!(keys[1].times.remove_after, Some(now + 150));
    assert!(keys[0].times.activated_at.is_some());
    assert!(!s.keys.advance(now + 149, 50).await.unwrap());
    // Past its time the retired key is removed: no longer published.
    assert!(s.keys.advance(now + 150, 50).await.unwrap());
    assert_eq!(
        states(&s.keys.load().await.unwrap()),
        vec![(second_kid, "current".into())]
    );
}

pub async fn a_compromise_replaces_every_key_with_one_current_key(s: &Stores) {
    let now = shared::unix_now();
    let first = SigningKey::generate(auth_service::crypto::keys::KeySpec::Rsa(2048)).unwrap();
    let first_kid = first.kid.clone();
    assert!(s.keys.insert_if_no_current(first).await.unwrap());
    let second = SigningKey::generate(auth_service::crypto::keys::KeySpec::Rsa(2048)).unwrap();
    let second_kid = second.kid.clone();
    assert!(s.keys.add_next(second, now).await.unwrap());
    assert!(s.keys.advance(now, 600).await.unwrap());
    let pending = SigningKey::generate(auth_service::crypto::keys::KeySpec::Rsa(2048)).unwrap();
    let pending_kid = pending.kid.clone();
    assert!(s.keys.add_next(pending, now + 600).await.unwrap());
    // current, retired and a pending next key: all go, the new key is the only one, current.
    let fresh = SigningKey::generate(auth_service::crypto::keys::KeySpec::Rsa(2048)).unwrap();
    let fresh_kid = fresh.kid.clone();
    let mut removed = s.keys.replace_all(fresh).await.unwrap();
    removed.sort();
    let mut expected = vec![first_kid, second_kid, pending_kid];
    expected.sort();
    assert_eq!(removed, expected);
    let keys = s.keys.load().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (keys[0].kid.as_str(), keys[0].state.as_str()),
        (fresh_kid.as_str(), "current")
    );
    assert!(keys[0].times.activated_at.is_some());
    // A plain rotation works from there as before.
    assert!(
        s.keys
            .add_next(
                SigningKey::generate(auth_service::crypto::keys::KeySpec::Rsa(2048)).unwrap(),
                now + 10
            )
            .await
            .unwrap()
    );
    // A key revocation is an entry and an event like the others.
    let e = RevocationEvent::Kid {
        value: expected[0].clone(),
        exp: now + 600,
    };
    s.revocations.revoke(&e, now).await.unwrap();
    assert!(s.feed.live_entries(now).await.unwrap().contains(&e));
    let events = s.feed.events_after(StreamId::default(), 100).await.unwrap();
    assert!(events.iter().any(|(_, got)| *got == e));
}

/// A refresh token's record is read without being spent (the checks that precede a rotation),
/// live or spent, with its session's grant while the session lives; past the token's own
/// expiry (which an opaque token does not carry) it is neither read nor rotated, even within
/// the leeway the record is kept for.
pub async fn refresh_records_are_read_without_spending_and_end_at_the_tokens_expiry(s: &Stores) {
    let now = shared::unix_now();
    s.sessions
        .create(&session("s1", "u1", "h1", now), now)
        .await
        .unwrap();
    let grant = Some(RefreshSession {
        client_id: "app".into(),
        scope: "profile".into(),
    });
    let record = RefreshRecord {
        sid: "s1".into(),
        sub: "u1".into(),
        session: grant.clone(),
    };
    for _ in 0..2 {
        assert_eq!(
            s.sessions.refresh_record("h1", now).await.unwrap(),
            Some(record.clone()),
            "reading twice changes nothing"
        );
    }
    assert_eq!(
        s.sessions.refresh_record("unknown", now).await.unwrap(),
        None
    );
    // Rotated: the spent record still reads (a reuse must be detectable), as does the new one.
    assert!(matches!(
        s.sessions
            .rotate("h1", "h2", now, 0, 600, now + 900)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    assert_eq!(
        s.sessions.refresh_record("h1", now).await.unwrap(),
        Some(record.clone())
    );
    assert_eq!(
        s.sessions.refresh_record("h2", now).await.unwrap(),
        Some(record.clone())
    );
    // The new token expires at now + 600 (the idle timeout): at that second it is refused by
    // both, though its record is kept for the leeway beyond.
    assert_eq!(
        s.sessions.refresh_record("h2", now + 600).await.unwrap(),
        None
    );
    assert_eq!(
        s.sessions
            .rotate("h2", "h3", now + 600, 0, 600, now + 1500)
            .await
            .unwrap(),
        Rotation::Invalid
    );
    // A second before, it still rotates.
    assert!(matches!(
        s.sessions
            .rotate("h2", "h3", now + 599, 0, 600, now + 1500)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    // Once the session has ended, a spent token still reads (without the session's grant) and
    // its reuse is still detected.
    assert!(s.sessions.end("u1", "s1", now, now + 900).await.unwrap());
    assert_eq!(
        s.sessions.refresh_record("h1", now).await.unwrap(),
        Some(RefreshRecord {
            session: None,
            ..record.clone()
        })
    );
    assert_eq!(
        s.sessions
            .rotate("h1", "h9", now, 0, 600, now + 900)
            .await
            .unwrap(),
        Rotation::Reused { sid: "s1".into() }
    );
    // The live token died with its session.
    assert_eq!(s.sessions.refresh_record("h3", now).await.unwrap(), None);
}

pub async fn refresh_rotation_reuse_and_grace(s: &Stores) {
    let now = shared::unix_now();
    s.sessions
        .create(&session("s1", "u1", "r1", now), now)
        .await
        .unwrap();
    let rotated = s
        .sessions
        .rotate("r1", "r2", now, 0, 600, now + 900)
        .await
        .unwrap();
    assert!(
        matches!(rotated, Rotation::Rotated { ref sid, abs_exp, .. } if sid == "s1" && abs_exp == now + 3600)
    );
    // Reuse of the spent token revokes the session.
    assert_eq!(
        s.sessions
            .rotate("r1", "r3", now, 0, 600, now + 900)
            .await
            .unwrap(),
        Rotation::Reused { sid: "s1".into() }
    );
    assert_eq!(
        s.sessions
            .rotate("r2", "r4", now, 0, 600, now + 900)
            .await
            .unwrap(),
        Rotation::Invalid,
        "the session's live token died with it"
    );
    assert!(
        s.revocations
            .is_revoked(&claims("j", "s1", "u1", now))
            .await
            .unwrap()
    );
    assert!(s.sessions.list("u1", now).await.unwrap().is_empty());
    assert_eq!(
        s.sessions
            .rotate("unknown", "x", now, 0, 600, now + 900)
            .await
            .unwrap(),
        Rotation::Invalid
    );

    // With a grace window, a quick replay is refused without revoking.
    s.sessions
        .create(&session("s2", "u1", "g1", now), now)
        .await
        .unwrap();
    assert!(matches!(
        s.sessions
            .rotate("g1", "g2", now, 10, 600, now + 900)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    assert_eq!(
        s.sessions
            .rotate("g1", "g3", now + 5, 10, 600, now + 900)
            .await
            .unwrap(),
        Rotation::Grace
    );
    assert!(matches!(
        s.sessions
            .rotate("g2", "g4", now + 5, 10, 600, now + 900)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    assert!(
        !s.revocations
            .is_revoked(&claims("j", "s2", "u1", now))
            .await
            .unwrap()
    );
    // Past the window, a replay is theft.
    assert_eq!(
        s.sessions
            .rotate("g1", "g5", now + 30, 10, 600, now + 900)
            .await
            .unwrap(),
        Rotation::Reused { sid: "s2".into() }
    );
}

pub async fn concurrent_rotations_of_one_token_have_exactly_one_winner(s: &Stores) {
    let now = shared::unix_now();
    s.sessions
        .create(&session("c1", "u1", "old", now), now)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let sessions = std::sync::Arc::clone(&s.sessions);
        tasks.push(tokio::spawn(async move {
            sessions
                .rotate("old", &format!("new{i}"), now, 0, 600, now + 900)
                .await
                .unwrap()
        }));
    }
    let mut rotated = 0;
    let mut reused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Rotation::Rotated { .. } => rotated += 1,
            Rotation::Reused { .. } => reused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((rotated, reused), (1, 19));
    assert!(
        s.revocations
            .is_revoked(&claims("j", "c1", "u1", now))
            .await
            .unwrap()
    );
}

pub async fn the_absolute_session_limit_is_never_extended(s: &Stores) {
    let now = shared::unix_now();
    let mut ns = session("a1", "u1", "t1", now);
    ns.abs_exp = now + 100;
    ns.refresh_exp = now + 50;
    s.sessions.create(&ns, now).await.unwrap();
    // Rotation caps the new token at the absolute end.
    match s
        .sessions
        .rotate("t1", "t2", now + 10, 0, 600, now + 900)
        .await
        .unwrap()
    {
        Rotation::Rotated {
            refresh_exp,
            abs_exp,
            ..
        } => {
            assert_eq!((refresh_exp, abs_exp), (now + 100, now + 100));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        s.sessions
            .rotate("t2", "t3", now + 100, 0, 600, now + 900)
            .await
            .unwrap(),
        Rotation::Invalid
    );
}

pub async fn sessions_are_listed_ended_one_by_one_or_all_together(s: &Stores) {
    let now = shared::unix_now();
    s.sessions
        .create(&session("l1", "u1", "a", now), now)
        .await
        .unwrap();
    s.sessions
        .create(&session("l2", "u1", "b", now + 1), now + 1)
        .await
        .unwrap();
    s.sessions
        .create(&session("l3", "u2", "c", now), now)
        .await
        .unwrap();
    let list = s.sessions.list("u1", now + 1).await.unwrap();
    assert_eq!(
        list.iter().map(|i| i.sid.as_str()).collect::<Vec<_>>(),
        ["l2", "l1"]
    );
    assert_eq!(list[0].client_id, "app");
    assert_eq!(list[0].user_agent, "conformance");
    assert!(
        !s.sessions.end("u2", "l1", now, now + 900).await.unwrap(),
        "not u2's session"
    );
    assert!(s.sessions.end("u1", "l1", now, now + 900).await.unwrap());
    assert!(
        s.revocations
            .is_revoked(&claims("j", "l1", "u1", now))
            .await
            .unwrap()
    );
    assert_eq!(
        s.sessions
            .rotate("a", "a2", now, 0, 600, now + 900)
            .await
            .unwrap(),
        Rotation::Invalid
    );
    assert_eq!(
        s.sessions
            .end_all("u1", now, now + 1, now + 900)
            .await
            .unwrap(),
        1
    );
    assert!(s.sessions.list("u1", now).await.unwrap().is_empty());
    assert!(
        s.revocations
            .is_revoked(&claims("j", "other", "u1", now))
            .await
            .unwrap()
    );
    assert!(
        !s.revocations
            .is_revoked(&claims("j", "other", "u1", now + 1))
            .await
            .unwrap()
    );
    assert_eq!(
        s.sessions.list("u2", now).await.unwrap().len(),
        1,
        "others untouched"
    );
}

pub async fn revocations_merge_and_match_the_tokens_they_cover(s: &Stores) {
    let now = shared::unix_now();
    let exp = now + 600;
    s.revocations
        .revoke(
            &RevocationEvent::Jti {
                value: "j1".into(),
                exp,
            },
            now,
        )
        .await
        .unwrap();
    s.revocations
        .revoke(
            &RevocationEvent::Sub {
                value: "u9".into(),
                iat_before: 100,
                exp,
            },
            now,
        )
        .await
        .unwrap();
    s.revocations
        .revoke(
            &RevocationEvent::Sub {
                value: "u9".into(),
                iat_before: 50,
                exp,
            },
            now,
        )
        .await
        .unwrap();
    let r = |c: AccessClaims| {
        let rev = std::sync::Arc::clone(&s.revocations);
        async move { rev.is_revoked(&c).await.unwrap() }
    };
    assert!(r(claims("j1", "s", "u", 1)).await);
    assert!(!r(claims("j2", "s", "u", 1)).await);
    assert!(
        r(claims("j2", "s", "u9", 99)).await,
        "a smaller iat_before never narrows"
    );
    assert!(!r(claims("j2", "s", "u9", 100)).await);
    let live = s.feed.live_entries(now).await.unwrap();
    assert!(live.contains(&RevocationEvent::Sub {
        value: "u9".into(),
        iat_before: 100,
        exp
    }));
    assert_eq!(live.len(), 2, "{live:?}");
}

pub async fn the_feed_lists_events_in_order_and_every_live_entry(s: &Stores) {
    let now = shared::unix_now();
    let start = s.feed.feed_state().await.unwrap();
    assert_eq!(start.last, StreamId::default());
    let events = [
        RevocationEvent::Jti {
            value: "a".into(),
            exp: now + 60,
        },
        RevocationEvent::Sid {
            value: "b".into(),
            exp: now + 60,
        },
        RevocationEvent::Sub {
            value: "c".into(),
            iat_before: now,
            exp: now + 60,
        },
    ];
    for e in &events {
        s.revocations.revoke(e, now).await.unwrap();
    }
    let all = s.feed.events_after(StreamId::default(), 100).await.unwrap();
    assert_eq!(
        all.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(),
        events
    );
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "ids increase");
    let after_first = s.feed.events_after(all[0].0, 100).await.unwrap();
    assert_eq!(after_first.len(), 2);
    assert_eq!(s.feed.events_after(all[2].0, 100).await.unwrap().len(), 0);
    assert_eq!(
        s.feed
            .events_after(StreamId::default(), 1)
            .await
            .unwrap()
            .len(),
        1
    );
    let state = s.feed.feed_state().await.unwrap();
    assert_eq!(
        state.epoch, start.epoch,
        "one epoch for the life of the store"
    );
    assert_eq!(state.last, all[2].0);
    let from = |id| Position {
        epoch: state.epoch.clone(),
        id,
    };
    assert_eq!(state.resume(&from(StreamId::default())), Ok(()));
    assert_eq!(state.resume(&from(all[1].0)), Ok(()));
    let mut live = s.feed.live_entries(now).await.unwrap();
    live.sort_by_key(|e| format!("{e:?}"));
    let mut want = events.to_vec();
    want.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(live, want);

    // Beyond the retention, old positions can no longer be resumed.
    for i in 0..(crate::RETENTION * 3) {
        s.revocations
            .revoke(
                &RevocationEvent::Jti {
                    value: format!("bulk{i}"),
                    exp: now + 60,
                },
                now,
            )
            .await
            .unwrap();
    }
    let state = s.feed.feed_state().await.unwrap();
    assert_eq!(state.resume(&from(all[0].0)), Err("trimmed"));
    assert_eq!(state.resume(&state.position()), Ok(()));
    let recent = s.feed.events_after(state.last, 10).await.unwrap();
    assert!(recent.is_empty());
}

pub async fn a_follower_wakes_up_for_a_new_event(s: &Stores) {
    let now = shared::unix_now();
    let mut follower = s.feed.follower().await.unwrap();
    let last = s.feed.feed_state().await.unwrap().last;
    assert!(
        follower
            .wait_after(last, Duration::from_millis(200), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let waiting = tokio::spawn(async move {
        follower
            .wait_after(last, Duration::from_secs(10), 10)
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let e = RevocationEvent::Sid {
        value: "woken".into(),
        exp: now + 60,
    };
    s.revocations.revoke(&e, now).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("woken well before its 10 s block")
        .unwrap();
    assert_eq!(got.into_iter().map(|(_, e)| e).collect::<Vec<_>>(), vec![e]);
}

pub async fn expired_revocations_are_neither_live_nor_enforced(s: &Stores) {
    let now = shared::unix_now();
    let old = now - LEEWAY - 10;
    s.revocations
        .revoke(
            &RevocationEvent::Sid {
                value: "gone".into(),
                exp: old,
            },
            now,
        )
        .await
        .unwrap();
    assert!(
        !s.revocations
            .is_revoked(&claims("j", "gone", "u", old - 900))
            .await
            .unwrap()
    );
    assert!(s.feed.live_entries(now).await.unwrap().is_empty());
    // Within the leeway an entry still counts.
    s.revocations
        .revoke(
            &RevocationEvent::Sid {
                value: "recent".into(),
                exp: now - 5,
            },
            now,
        )
        .await
        .unwrap();
    assert!(
        s.revocations
            .is_revoked(&claims("j", "recent", "u", now - 900))
            .await
            .unwrap()
    );
}

pub async fn rate_limit_counters_count_within_a_window(s: &Stores) {
    let window = Duration::from_millis(300);
    for want in 1..=3 {
        let (n, left) = s.rate.hit("login:alice", window).await.unwrap();
        assert_eq!(n, want);
        assert!(left <= window);
    }
    assert_eq!(
        s.rate.hit("login:bob", window).await.unwrap().0,
        1,
        "keys are separate"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        s.rate.hit("login:alice", window).await.unwrap().0,
        1,
        "a new window"
    );
}

pub async fn rate_limit_counters_can_be_read_and_cleared(s: &Stores) {
    let window = Duration::from_secs(60);
    assert_eq!(s.rate.peek("x").await.unwrap(), (0, Duration::ZERO));
    s.rate.hit("x", window).await.unwrap();
    s.rate.hit("x", window).await.unwrap();
    let (n, left) = s.rate.peek("x").await.unwrap();
    assert_eq!(n, 2, "peek does not count");
    assert!(left > Duration::from_secs(50) && left <= window);
    assert_eq!(s.rate.peek("x").await.unwrap().0, 2);
    s.rate.clear("x").await.unwrap();
    assert_eq!(s.rate.peek("x").await.unwrap().0, 0);
    assert_eq!(s.rate.hit("x", window).await.unwrap().0, 1);
}

pub async fn a_gate_grows_its_delays_and_admits_one_attempt_per_opening(s: &Stores) {
    use auth_service::storage::Backoff;
    let policy = Backoff {
        free: 2,
        base: Duration::from_millis(200),
        max: Duration::from_millis(400),
        window: Duration::from_secs(60),
    };
    // Free failures: no waiting.
    for want in 1..=2 {
        assert_eq!(
            s.rate.gate("acct", &policy, false).await.unwrap().1,
            Duration::ZERO
        );
        assert_eq!(s.rate.gate("acct", &policy, true).await.unwrap().0, want);
    }
    // The second failure reached `free`: the next attempt waits `base`.
    let (f, wait) = s.rate.gate("acct", &policy, false).await.unwrap();
    assert_eq!(f, 2);
    assert!(wait > Duration::ZERO && wait <= policy.base, "{wait:?}");
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
    // One opening admits exactly one of many concurrent attempts.
    let attempts =
        futures_util::future::join_all((0..8).map(|_| s.rate.gate("acct", &policy, false))).await;
    let admitted = attempts
        .iter()
        .filter(|r| r.as_ref().unwrap().1 == Duration::ZERO)
        .count();
    assert_eq!(admitted, 1, "{attempts:?}");
    // Its failure doubles the delay, capped at `max`.
    s.rate.gate("acct", &policy, true).await.unwrap();
    let wait = s.rate.gate("acct", &policy, false).await.unwrap().1;
    assert!(wait > policy.base && wait <= policy.max, "{wait:?}");
    s.rate.gate("acct", &policy, true).await.unwrap();
    let wait = s.rate.gate("acct", &policy, false).await.unwrap().1;
    assert!(wait <= policy.max, "capped: {wait:?}");
    // Other keys are untouched.
    assert_eq!(
        s.rate.gate("other", &policy, false).await.unwrap(),
        (0, Duration::ZERO)
    );
    assert_eq!(policy.delay(1), Duration::ZERO);
    assert_eq!(policy.delay(2), policy.base);
    assert_eq!(policy.delay(3), policy.max);
    assert_eq!(policy.delay(u64::MAX), policy.max);
}

pub async fn the_audit_trail_keeps_each_users_recent_events_newest_first(s: &Stores) {
    use auth_service::storage::{AUDIT_KEEP, AuditEvent};
    let event = |i: usize| AuditEvent {
        at_ms: i64::try_from(i).unwrap(),
        kind: format!("kind{i}"),
        actor: i.is_multiple_of(2).then(|| "admin".to_owned()),
        detail: serde_json::json!({"i": i}),
    };
    for i in 0..AUDIT_KEEP + 5 {
        s.audit.record("u1", &event(i)).await.unwrap();
    }
    s.audit.record("u2", &event(7)).await.unwrap();
    let recent = s.audit.recent("u1", 1000).await.unwrap();
    assert_eq!(recent.len(), AUDIT_KEEP, "bounded per user");
    assert_eq!(recent[0], event(AUDIT_KEEP + 4), "newest first");
    assert_eq!(recent[AUDIT_KEEP - 1], event(5));
    assert_eq!(s.audit.recent("u1", 3).await.unwrap().len(), 3);
    assert_eq!(s.audit.recent("u2", 10).await.unwrap(), vec![event(7)]);
    assert!(s.audit.recent("nobody", 10).await.unwrap().is_empty());
}

pub async fn clients_are_registered_updated_rotated_and_deleted(s: &Stores) {
    let now = 1_700_000_000;
    let new = NewClient {
        client_id: "billing".into(),
        name: "Billing service".into(),
        scopes: vec!["orders:read".into(), "orders:write".into()],
        audiences: vec!["api".into()],
        secret_hash: vec![1; 32],
        profile: ClientProfile::default(),
    };
    let c = s.clients.create_client(new.clone(), now).await.unwrap();
    assert_eq!(c.client_id, "billing");
    assert_eq!(c.name, "Billing service");
    assert_eq!(c.scopes, ["orders:read", "orders:write"]);
    assert_eq!(c.audiences, ["api"]);
    assert!(!c.disabled);
    // A revocation left by an earlier client of this id never covers the new one's tokens.
    assert_eq!(c.tokens_not_before, now + 1);
    assert_eq!((c.created_at, c.updated_at), (now, now));
    assert_eq!(c.previous_secret_expires_at, None);
    assert!(matches!(
        s.clients.create_client(new, now).await,
        Err(CreateClientError::Taken)
    ));

    let (found, secrets) = s.clients.find_client("billing").await.unwrap().unwrap();
    assert_eq!(found, c);
    assert_eq!((secrets.current, secrets.previous), (vec![1; 32], None));
    assert!(s.clients.find_client("nobody").await.unwrap().is_none());

    // Rotation with an overlap keeps the old digest until its expiry; without, drops it.
    let rotated = s
        .clients
        .rotate_client_secret("billing", &[2; 32], now + 3600, now + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.previous_secret_expires_at, Some(now + 3600));
    assert_eq!(rotated.updated_at, now + 5);
    let (_, secrets) = s.clients.find_client("billing").await.unwrap().unwrap();
    assert_eq!(
        (secrets.current, secrets.previous),
        (vec![2; 32], Some(vec![1; 32]))
    );
    let rotated = s
        .clients
        .rotate_client_secret("billing", &[3; 32], now + 6, now + 6)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.previous_secret_expires_at, None);
    let (_, secrets) = s.clients.find_client("billing").await.unwrap().unwrap();
    assert_eq!((secrets.current, secrets.previous), (vec![3; 32], None));
    assert!(
        s.clients
            .rotate_client_secret("nobody", &[4; 32], 0, now)
            .await
            .unwrap()
            .is_none()
    );

    // Updates change only what they name; revoking ones raise tokens_not_before past now.
    let renamed = s
        .clients
        .update_client(
            "billing",
            &ClientUpdate {
                name: Some("Billing".into()),
                ..ClientUpdate::default()
            },
            now + 10,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.name, "Billing");
    assert_eq!(renamed.scopes, ["orders:read", "orders:write"]);
    assert_eq!(renamed.tokens_not_before, now + 1);
    let narrowed = s
        .clients
        .update_client(
            "billing",
            &ClientUpdate {
                scopes: Some(vec!["orders:read".into()]),
                audiences: Some(vec!["api".into(), "reports".into()]),
                disabled: Some(true),
                revoke_tokens: true,
                ..ClientUpdate::default()
            },
            now + 20,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(narrowed.scopes, ["orders:read"]);
    assert_eq!(narrowed.audiences, ["api", "reports"]);
    assert!(narrowed.disabled);
    assert_eq!(narrowed.tokens_not_before, now + 21);
    assert_eq!(narrowed.updated_at, now + 20);
    // Twice in one second: still raised.
    let again = s
        .clients
        .update_client(
            "billing",
            &ClientUpdate {
                revoke_tokens: true,
                ..ClientUpdate::default()
            },
            now + 20,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.tokens_not_before, now + 22);
    assert!(
        s.clients
            .update_client("nobody", &ClientUpdate::default(), now)
            .await
            .unwrap()
            .is_none()
    );

    let other = NewClient {
        client_id: "alpha".into(),
        name: String::new(),
        scopes: vec![],
        audiences: vec![],
        secret_hash: vec![9; 32],
        profile: ClientProfile::default(),
    };
    s.clients.create_client(other, now).await.unwrap();
    let ids: Vec<_> = s
        .clients
        .list_clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(ids, ["alpha", "billing"]);

    // Deletion raises tokens_not_before (past the last raise), and leaves nothing to find.
    let gone = s.clients.delete_client("billing", now + 20).await.unwrap();
    assert_eq!(gone, Some(now + 23));
    assert_eq!(
        s.clients.delete_client("billing", now + 20).await.unwrap(),
        None
    );
    assert!(s.clients.find_client("billing").await.unwrap().is_none());
    assert!(
        s.clients
            .update_client("billing", &ClientUpdate::default(), now + 20)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.clients
            .rotate_client_secret("billing", &[5; 32], 0, now + 20)
            .await
            .unwrap()
            .is_none()
    );
    let ids: Vec<_> = s
        .clients
        .list_clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(ids, ["alpha"]);
    // Registered again in the same second: fresh, and its tokens_not_before is not below the
    // deletion's, so the deletion's revocation never covers the new client's tokens.
    let again = NewClient {
        client_id: "billing".into(),
        name: "Billing again".into(),
        scopes: vec![],
        audiences: vec!["api".into()],
        secret_hash: vec![7; 32],
        profile: ClientProfile::default(),
    };
    let reborn = s.clients.create_client(again, now + 20).await.unwrap();
    assert_eq!(reborn.tokens_not_before, now + 23);
    assert!(!reborn.disabled);
    assert_eq!(reborn.scopes, Vec::<String>::new());
    assert_eq!(reborn.previous_secret_expires_at, None);
    let (_, secrets) = s.clients.find_client("billing").await.unwrap().unwrap();
    assert_eq!((secrets.current, secrets.previous), (vec![7; 32], None));
}

pub async fn a_clients_sign_in_profile_round_trips_and_changes_whole(s: &Stores) {
    let now = 1_700_000_000;
    let profile = ClientProfile {
        client_type: ClientType::Public,
        first_party: true,
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        redirect_uris: vec![
            "http://127.0.0.1/cb".into(),
            "https://app.example.com/cb".into(),
        ],
        post_logout_redirect_uris: vec!["https://app.example.com/".into()],
        backchannel_logout_uri: Some("https://app.example.com/bcl".into()),
    };
    let c = s
        .clients
        .create_client(
            NewClient {
                client_id: "spa".into(),
                name: "SPA".into(),
                scopes: vec!["openid".into()],
                audiences: vec!["api".into()],
                secret_hash: vec![],
                profile: profile.clone(),
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(c.profile, profile);
    let (found, secrets) = s.clients.find_client("spa").await.unwrap().unwrap();
    assert_eq!(found.profile, profile);
    assert!(secrets.current.is_empty());
    // A change of other fields keeps the profile; a new profile replaces it whole.
    let renamed = s
        .clients
        .update_client(
            "spa",
            &ClientUpdate {
                name: Some("App".into()),
                ..ClientUpdate::default()
            },
            now + 1,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.profile, profile);
    let third_party = ClientProfile {
        first_party: false,
        redirect_uris: vec!["https://app.example.com/cb".into()],
        backchannel_logout_uri: None,
        ..profile
    };
    let changed = s
        .clients
        .update_client(
            "spa",
            &ClientUpdate {
                profile: Some(third_party.clone()),
                ..ClientUpdate::default()
            },
            now + 2,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.profile, third_party);
    assert_eq!(
        s.clients.list_clients().await.unwrap()[0].profile,
        third_party
    );
}

/// A browser's sign-in session: no refresh token, found by its cookie's digest.
fn browser(sid: &str, sub: &str, digest: &str, now: i64) -> NewSession {
    NewSession {
        refresh_jti: None,
        browser: Some(digest.into()),
        client_id: "hosted".into(),
        ..session(sid, sub, "", now)
    }
}

/// A session issued through browser session `parent`.
fn child(sid: &str, parent: &str, sub: &str, jti: &str, now: i64) -> NewSession {
    NewSession {
        parent: Some(parent.into()),
        ..session(sid, sub, jti, now)
    }
}

pub async fn browser_sessions_end_with_the_sessions_issued_through_them(s: &Stores) {
    let now = shared::unix_now();
    assert!(
        s.sessions
            .create(&browser("sso", "u1", "d1", now - 5), now - 5)
            .await
            .unwrap()
    );
    assert!(
        s.sessions
            .create(&child("c1", "sso", "u1", "j1", now), now)
            .await
            .unwrap()
    );
    assert!(
        s.sessions
            .create(&child("c2", "sso", "u1", "j2", now), now)
            .await
            .unwrap()
    );
    assert!(
        !s.sessions
            .create(&child("c3", "nope", "u1", "j3", now), now)
            .await
            .unwrap(),
        "no session under a parent that does not exist"
    );
    let found = s
        .sessions
        .browser_session("d1", now, 600)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            found.sid.as_str(),
            found.sub.as_str(),
            found.auth_time,
            found.amr.as_str()
        ),
        ("sso", "u1", now - 5, "pwd")
    );
    assert_eq!(found.abs_exp, now - 5 + 3600);
    assert!(
        s.sessions
            .browser_session("d2", now, 600)
            .await
            .unwrap()
            .is_none()
    );
    let mut listed: Vec<_> = s
        .sessions
        .list("u1", now)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.sid)
        .collect();
    listed.sort();
    assert_eq!(listed, ["c1", "c2", "sso"]);

    // A fresh sign-in rotates the cookie: the old digest finds nothing.
    assert!(
        s.sessions
            .reauthenticate("sso", "d2", now + 1, "pwd", now + 1)
            .await
            .unwrap()
    );
    assert!(
        s.sessions
            .browser_session("d1", now + 1, 600)
            .await
            .unwrap()
            .is_none()
    );
    let again = s
        .sessions
        .browser_session("d2", now + 1, 600)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.sid.as_str(), again.auth_time), ("sso", now + 1));
    assert!(
        !s.sessions
            .reauthenticate("c1", "d3", now, "pwd", now)
            .await
            .unwrap(),
        "not a browser session"
    );

    // An issued session rotates as any other while its browser session lives.
    assert!(matches!(
        s.sessions
            .rotate("j1", "j1b", now + 2, 0, 600, now + 900)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    // Reuse in one app ends that app's session, not the browser's or the other app's.
    assert!(matches!(
        s.sessions
            .rotate("j1", "j1c", now + 3, 0, 600, now + 900)
            .await
            .unwrap(),
        Rotation::Reused { .. }
    ));
    assert!(
        s.sessions
            .browser_session("d2", now + 3, 600)
            .await
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        s.sessions
            .rotate("j2", "j2b", now + 3, 0, 600, now + 900)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));

    // Ending the browser session ends and revokes every session issued through it.
    assert!(
        s.sessions
            .end("u1", "sso", now + 4, now + 900)
            .await
            .unwrap()
    );
    for sid in ["sso", "c2"] {
        assert!(
            s.revocations
                .is_revoked(&claims("x", sid, "u1", now + 4))
                .await
                .unwrap(),
            "{sid} revoked"
        );
    }
    assert_eq!(
        s.sessions
            .rotate("j2b", "j2c", now + 5, 0, 600, now + 900)
            .await
            .unwrap(),
        Rotation::Invalid
    );
    assert!(
        s.sessions
            .browser_session("d2", now + 5, 600)
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.sessions.list("u1", now + 5).await.unwrap().is_empty());
    assert!(
        !s.sessions
            .create(&child("c4", "sso", "u1", "j4", now + 5), now + 5)
            .await
            .unwrap()
    );
}

pub async fn an_issued_session_ends_when_its_browser_session_has_expired(s: &Stores) {
    let now = shared::unix_now();
    // The browser session idles out a second from now (its idle expiry plus the leeway).
    let mut sso = browser("sso", "u1", "d1", now);
    sso.refresh_exp = now + 1 - LEEWAY;
    assert!(s.sessions.create(&sso, now).await.unwrap());
    let mut c = child("c1", "sso", "u1", "j1", now);
    c.refresh_exp = now + 600;
    assert!(s.sessions.create(&c, now).await.unwrap());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let later = now + 2;
    assert!(
        s.sessions
            .browser_session("d1", later, 600)
            .await
            .unwrap()
            .is_none()
    );
    // The app's own refresh token has not expired, but its browser session has: refused.
    assert_eq!(
        s.sessions
            .rotate("j1", "j1b", later, 0, 600, later + 900)
            .await
            .unwrap(),
        Rotation::Invalid
    );
}

fn grant(expires_at: i64) -> CodeGrant {
    CodeGrant {
        client_id: "spa".into(),
        redirect_uri: "https://app.example.com/cb".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        nonce: Some("n-0S6_WzA2Mj".into()),
        scope: "openid profile".into(),
        sub: "u1".into(),
        sso_sid: "sso".into(),
        auth_time: expires_at - 100,
        amr: "pwd".into(),
        expires_at,
    }
}

fn issue(n: u32) -> CodeIssue {
    CodeIssue {
        jti: format!("jti-{n}"),
        sid: format!("sid-{n}"),
    }
}

pub async fn an_authorization_code_is_taken_once(s: &Stores) {
    let now = shared::unix_now();
    let g = grant(now + 60);
    s.sessions.put_code("code-1", &g, now).await.unwrap();
    assert_eq!(
        s.sessions
            .take_code("code-1", &issue(1), now, now + 960)
            .await
            .unwrap(),
        CodeTake::Taken(g.clone())
    );
    // A second use learns what the first issued under, to revoke it.
    assert_eq!(
        s.sessions
            .take_code("code-1", &issue(2), now + 1, now + 960)
            .await
            .unwrap(),
        CodeTake::Reused(issue(1), g.clone())
    );
    assert_eq!(
        s.sessions
            .take_code("nope", &issue(3), now, now + 960)
            .await
            .unwrap(),
        CodeTake::Invalid
    );
    // Past its expiry a code is refused.
    s.sessions
        .put_code("code-2", &grant(now + 5), now)
        .await
        .unwrap();
    assert_eq!(
        s.sessions
            .take_code("code-2", &issue(4), now + 6, now + 960)
            .await
            .unwrap(),
        CodeTake::Invalid
    );

    // Of many concurrent takes, exactly one wins; the others see what it recorded.
    s.sessions.put_code("code-3", &g, now).await.unwrap();
    let tasks: Vec<_> = (0..8u32)
        .map(|i| {
            let sessions = s.sessions.clone();
            tokio::spawn(async move {
                sessions
                    .take_code("code-3", &issue(10 + i), now, now + 960)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut taken = 0;
    let mut recorded = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            CodeTake::Taken(_) => taken += 1,
            CodeTake::Reused(issue, _) => recorded.push(issue),
            CodeTake::Invalid => panic!("a live code was refused"),
        }
    }
    assert_eq!(taken, 1);
    assert_eq!(recorded.len(), 7);
    assert!(
        recorded.windows(2).all(|w| w[0] == w[1]),
        "one first use: {recorded:?}"
    );
}

pub async fn consents_grow_are_listed_withdrawn_and_go_with_the_user(s: &Stores) {
    let user = s.users.create(new_user("consenting")).await.unwrap();
    let sub = user.id.to_string();
    assert_eq!(s.consents.find_consent(&sub, "app").await.unwrap(), None);
    s.consents
        .grant_consent(&sub, "app", &["openid".into(), "profile".into()], 100)
        .await
        .unwrap();
    s.consents
        .grant_consent(&sub, "app", &["email".into(), "openid".into()], 200)
        .await
        .unwrap();
    s.consents
        .grant_consent(&sub, "another", &["openid".into()], 150)
        .await
        .unwrap();
    assert_eq!(
        s.consents.find_consent(&sub, "app").await.unwrap(),
        Some(vec!["email".into(), "openid".into(), "profile".into()])
    );
    let list = s.consents.list_consents(&sub).await.unwrap();
    assert_eq!(
        list.iter()
            .map(|c| (c.client_id.as_str(), c.granted_at))
            .collect::<Vec<_>>(),
        [("another", 150), ("app", 200)]
    );
    assert!(s.consents.revoke_consent(&sub, "another").await.unwrap());
    assert!(!s.consents.revoke_consent(&sub, "another").await.unwrap());
    assert_eq!(s.consents.list_consents(&sub).await.unwrap().len(), 1);
    assert!(s.users.delete(user.id).await.unwrap());
    assert!(s.consents.list_consents(&sub).await.unwrap().is_empty());
}

pub async fn using_an_app_keeps_its_browser_session_alive(s: &Stores) {
    let now = shared::unix_now();
    // The browser session would idle out a second from now…
    let mut sso = browser("sso", "u1", "d1", now);
    sso.refresh_exp = now + 1 - LEEWAY;
    assert!(s.sessions.create(&sso, now).await.unwrap());
    let mut c = child("c1", "sso", "u1", "j1", now);
    c.refresh_exp = now + 600;
    assert!(s.sessions.create(&c, now).await.unwrap());
    // …but the app refreshes now, which carries the browser session's idle expiry with it.
    assert!(matches!(
        s.sessions
            .rotate("j1", "j1b", now, 0, 600, now + 900)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let later = now + 2;
    assert!(
        s.sessions
            .browser_session("d1", later, 600)
            .await
            .unwrap()
            .is_some()
    );
    assert!(matches!(
        s.sessions
            .rotate("j1b", "j1c", later, 0, 600, later + 900)
            .await
            .unwrap(),
        Rotation::Rotated { .. }
    ));
}
