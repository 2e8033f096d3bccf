//! Redis backend: sessions, refresh-token records and the revocation list. Every operation that
//! ends a session runs as one Lua script together with the revocation it implies, so a crash
//! between the two cannot leave a session half-ended.
//!
//! Keys (all under the configured prefix `P`):
//! - `P s:{sid}`      session hash: sub, rt (current refresh jti), auth_time, abs_exp,
//!   last_used, client_id, scope, ua
//! - `P r:{jti}`      refresh record: sid, sub, state (live|spent), spent_at
//! - `P u:{sub}`      set of the user's sids
//! - `P rev:{type}:{value}`  revocation entry (exp, iat_before), expiring at exp + leeway
//! - `P rev:index`    sorted set of live revocation entries by expiry (for the feed's snapshot)

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use secrecy::{ExposeSecret, SecretString};
use shared::{AccessClaims, RevocationEvent};

use super::{NewSession, RevocationStore, Rotation, SessionInfo, SessionStore, StoreError};

/// Shared Lua helpers. `ARGV[1]` is always the key prefix, `ARGV[2]` the leeway, `ARGV[3]` now.
const PRELUDE: &str = r#"
local p = ARGV[1]
local leeway = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local function revoke(typ, value, exp, iat_before)
  local key = p .. 'rev:' .. typ .. ':' .. value
  local cur = redis.call('HMGET', key, 'exp', 'iat_before')
  if cur[1] and tonumber(cur[1]) > exp then exp = tonumber(cur[1]) end
  if typ == 'sub' then
    if cur[2] and tonumber(cur[2]) > iat_before then iat_before = tonumber(cur[2]) end
    redis.call('HSET', key, 'exp', exp, 'iat_before', iat_before)
  else
    redis.call('HSET', key, 'exp', exp)
  end
  redis.call('EXPIREAT', key, exp + leeway)
  redis.call('ZADD', p .. 'rev:index', exp + leeway, typ .. ':' .. value)
  redis.call('ZREMRANGEBYSCORE', p .. 'rev:index', '-inf', '(' .. now)
end
local function end_session(sid)
  local s = redis.call('HMGET', p .. 's:' .. sid, 'sub', 'rt')
  if s[2] then redis.call('DEL', p .. 'r:' .. s[2]) end
  redis.call('DEL', p .. 's:' .. sid)
  if s[1] then redis.call('SREM', p .. 'u:' .. s[1], sid) end
  return s[1]
end
"#;

/// ARGV 4 sid, 5 sub, 6 jti, 7 abs_exp, 8 refresh_exp, 9 client_id, 10 scope, 11 ua, 12 user-set ttl
const CREATE: &str = r#"
local sid, sub, jti = ARGV[4], ARGV[5], ARGV[6]
local until_ = tonumber(ARGV[8]) + leeway
redis.call('HSET', p .. 's:' .. sid, 'sub', sub, 'rt', jti, 'auth_time', now, 'abs_exp', ARGV[7],
  'last_used', now, 'client_id', ARGV[9], 'scope', ARGV[10], 'ua', ARGV[11])
redis.call('EXPIREAT', p .. 's:' .. sid, until_)
redis.call('HSET', p .. 'r:' .. jti, 'sid', sid, 'sub', sub, 'state', 'live')
redis.call('EXPIREAT', p .. 'r:' .. jti, until_)
redis.call('SADD', p .. 'u:' .. sub, sid)
redis.call('EXPIRE', p .. 'u:' .. sub, ARGV[12])
return 1
"#;

/// ARGV 4 old jti, 5 new jti, 6 grace, 7 idle ttl, 8 revoke_until
const ROTATE: &str = r#"
local old, new = ARGV[4], ARGV[5]
local grace, idle, revoke_until = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local r = redis.call('HMGET', p .. 'r:' .. old, 'sid', 'sub', 'state', 'spent_at')
if not r[1] then return {'invalid'} end
local sid, sub = r[1], r[2]
if r[3] == 'spent' then
  if grace > 0 and now - tonumber(r[4]) <= grace then return {'grace'} end
  end_session(sid)
  revoke('sid', sid, revoke_until, 0)
  return {'reused', sid}
end
local s = redis.call('HMGET', p .. 's:' .. sid, 'abs_exp', 'rt')
if not s[1] or s[2] ~= old then
  redis.call('DEL', p .. 'r:' .. old)
  return {'invalid'}
end
local abs = tonumber(s[1])
if now >= abs then
  end_session(sid)
  return {'invalid'}
end
local exp = math.min(now + idle, abs)
redis.call('HSET', p .. 'r:' .. old, 'state', 'spent', 'spent_at', now)
redis.call('HSET', p .. 'r:' .. new, 'sid', sid, 'sub', sub, 'state', 'live')
redis.call('EXPIREAT', p .. 'r:' .. new, exp + leeway)
redis.call('HSET', p .. 's:' .. sid, 'rt', new, 'last_used', now)
redis.call('EXPIREAT', p .. 's:' .. sid, exp + leeway)
return {'rotated', sid, tostring(exp), s[1]}
"#;

/// ARGV 4 sub
const LIST: &str = r#"
local sub = ARGV[4]
local out = {}
for _, sid in ipairs(redis.call('SMEMBERS', p .. 'u:' .. sub)) do
  local s = redis.call('HMGET', p .. 's:' .. sid, 'sub', 'auth_time', 'last_used', 'abs_exp', 'client_id', 'ua')
  if s[1] == sub then
    table.insert(out, {sid, s[2], s[3], s[4], s[5] or '', s[6] or ''})
  else
    redis.call('SREM', p .. 'u:' .. sub, sid)
  end
end
return out
"#;

/// ARGV 4 sub, 5 sid, 6 revoke_until
const END: &str = r#"
local owner = redis.call('HGET', p .. 's:' .. ARGV[5], 'sub')
if owner ~= ARGV[4] then return 0 end
end_session(ARGV[5])
revoke('sid', ARGV[5], tonumber(ARGV[6]), 0)
return 1
"#;

/// ARGV 4 sub, 5 iat_before, 6 revoke_until
const END_ALL: &str = r#"
local sub = ARGV[4]
local sids = redis.call('SMEMBERS', p .. 'u:' .. sub)
for _, sid in ipairs(sids) do end_session(sid) end
redis.call('DEL', p .. 'u:' .. sub)
revoke('sub', sub, tonumber(ARGV[6]), tonumber(ARGV[5]))
return #sids
"#;

/// ARGV 4 type, 5 value, 6 exp, 7 iat_before
const REVOKE: &str = r#"
revoke(ARGV[4], ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7]))
return 1
"#;

/// ARGV 4 jti, 5 sid, 6 sub, 7 iat
const IS_REVOKED: &str = r#"
if redis.call('EXISTS', p .. 'rev:jti:' .. ARGV[4]) == 1 then return 1 end
if redis.call('EXISTS', p .. 'rev:sid:' .. ARGV[5]) == 1 then return 1 end
local ib = redis.call('HGET', p .. 'rev:sub:' .. ARGV[6], 'iat_before')
if ib and tonumber(ARGV[7]) < tonumber(ib) then return 1 end
return 0
"#;

struct Scripts {
    create: Script,
    rotate: Script,
    list: Script,
    end: Script,
    end_all: Script,
    revoke: Script,
    is_revoked: Script,
}

impl Scripts {
    fn new() -> Self {
        let s = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Scripts {
            create: s(CREATE),
            rotate: s(ROTATE),
            list: s(LIST),
            end: s(END),
            end_all: s(END_ALL),
            revoke: s(REVOKE),
            is_revoked: s(IS_REVOKED),
        }
    }
}

/// The Redis store.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    client: redis::Client,
    config: ConnectionManagerConfig,
    prefix: String,
    leeway: i64,
    session_max_ttl: i64,
    timeout: Duration,
    scripts: std::sync::Arc<Scripts>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn classify(e: redis::RedisError) -> StoreError {
    if e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_unrecoverable_error()
    {
        StoreError::Unavailable(e.into())
    } else {
        StoreError::Other(e.into())
    }
}

impl RedisStore {
    /// Connects (failing if Redis cannot be reached now); reconnects by itself afterwards.
    pub async fn connect(
        url: &SecretString,
        prefix: &str,
        leeway: i64,
        session_max_ttl: i64,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let client = redis::Client::open(url.expose_secret())
            .map_err(|e| anyhow::anyhow!("AUTH_REDIS_URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_with_config(client.clone(), config.clone()).await?;
        Ok(RedisStore {
            conn,
            client,
            config,
            prefix: prefix.to_owned(),
            leeway,
            session_max_ttl,
            timeout,
            scripts: std::sync::Arc::new(Scripts::new()),
        })
    }

    /// Another connection to the same server, opened lazily on the runtime that first uses it:
    /// one per HTTP worker keeps each request's I/O on its worker's thread.
    pub fn replica(&self) -> anyhow::Result<RedisStore> {
        let conn =
            ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone())?;
        Ok(RedisStore {
            conn,
            ..self.clone()
        })
    }

    /// `maxmemory-policy`, or `None` when the server does not let us read it (managed Redis).
    pub async fn eviction_policy(&self) -> Option<String> {
        let mut conn = self.conn.clone();
        let reply: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut conn)
            .await;
        reply.ok().and_then(|v| v.get(1).cloned())
    }

    /// `appendonly` as reported by the server, if readable.
    pub async fn append_only(&self) -> Option<String> {
        let mut conn = self.conn.clone();
        let reply: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .query_async(&mut conn)
            .await;
        reply.ok().and_then(|v| v.get(1).cloned())
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &Script,
        now: i64,
        args: &[&(dyn std::fmt::Display + Sync)],
    ) -> Result<T, StoreError> {
        let mut inv = script.prepare_invoke();
        inv.arg(&self.prefix).arg(self.leeway).arg(now);
        for a in args {
            inv.arg(a.to_string());
        }
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, inv.invoke_async(&mut conn)).await {
            Ok(r) => r.map_err(classify),
            Err(_) => Err(StoreError::Unavailable(anyhow::anyhow!("redis timed out"))),
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        _ => String::new(),
    }
}

fn int(v: &Value) -> i64 {
    text(v).parse().unwrap_or(0)
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(
            self.timeout,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await
        {
            Ok(r) => r.map(|_| ()).map_err(classify),
            Err(_) => Err(StoreError::Unavailable(anyhow::anyhow!("redis timed out"))),
        }
    }

    async fn create(&self, s: &NewSession, now: i64) -> Result<(), StoreError> {
        let user_set_ttl = self.session_max_ttl + self.leeway;
        let _: i64 = self
            .run(
                &self.scripts.create,
                now,
                &[
                    &s.sid,
                    &s.sub,
                    &s.refresh_jti,
                    &s.abs_exp,
                    &s.refresh_exp,
                    &s.client_id,
                    &s.scope,
                    &s.user_agent,
                    &user_set_ttl,
                ],
            )
            .await?;
        Ok(())
    }

    async fn rotate(
        &self,
        old_jti: &str,
        new_jti: &str,
        now: i64,
        grace: i64,
        idle_ttl: i64,
        revoke_until: i64,
    ) -> Result<Rotation, StoreError> {
        let reply: Vec<Value> = self
            .run(
                &self.scripts.rotate,
                now,
                &[&old_jti, &new_jti, &grace, &idle_ttl, &revoke_until],
            )
            .await?;
        let tag = reply.first().map(text).unwrap_or_default();
        Ok(match (tag.as_str(), reply.as_slice()) {
            ("rotated", [_, sid, exp, abs]) => Rotation::Rotated {
                sid: text(sid),
                refresh_exp: int(exp),
                abs_exp: int(abs),
            },
            ("grace", _) => Rotation::Grace,
            ("reused", [_, sid]) => Rotation::Reused { sid: text(sid) },
            ("invalid", _) => Rotation::Invalid,
            _ => {
                return Err(StoreError::Other(anyhow::anyhow!(
                    "unexpected rotate reply {reply:?}"
                )));
            }
        })
    }

    async fn list(&self, sub: &str, now: i64) -> Result<Vec<SessionInfo>, StoreError> {
        let rows: Vec<Vec<Value>> = self.run(&self.scripts.list, now, &[&sub]).await?;
        let mut out: Vec<SessionInfo> = rows
            .iter()
            .filter_map(|r| match r.as_slice() {
                [sid, auth, last, abs, client, ua] => Some(SessionInfo {
                    sid: text(sid),
                    created_at: int(auth),
                    last_used_at: int(last),
                    expires_at: int(abs),
                    client_id: text(client),
                    user_agent: text(ua),
                }),
                _ => None,
            })
            .collect();
        out.sort_by(|a, b| {
            b.last_used_at
                .cmp(&a.last_used_at)
                .then_with(|| a.sid.cmp(&b.sid))
        });
        Ok(out)
    }

    async fn end(
        &self,
        sub: &str,
        sid: &str,
        now: i64,
        revoke_until: i64,
    ) -> Result<bool, StoreError> {
        let n: i64 = self
            .run(&self.scripts.end, now, &[&sub, &sid, &revoke_until])
            .await?;
        Ok(n == 1)
    }

    async fn end_all(
        &self,
        sub: &str,
        now: i64,
        iat_before: i64,
        revoke_until: i64,
    ) -> Result<u64, StoreError> {
        let n: i64 = self
            .run(
                &self.scripts.end_all,
                now,
                &[&sub, &iat_before, &revoke_until],
            )
            .await?;
        Ok(n.max(0) as u64)
    }
}

#[async_trait]
impl RevocationStore for RedisStore {
    async fn revoke(&self, event: &RevocationEvent, now: i64) -> Result<(), StoreError> {
        let (typ, value, exp, iat_before) = match event {
            RevocationEvent::Jti { value, exp } => ("jti", value, *exp, 0),
            RevocationEvent::Sid { value, exp } => ("sid", value, *exp, 0),
            RevocationEvent::Sub {
                value,
                iat_before,
                exp,
            } => ("sub", value, *exp, *iat_before),
        };
        let _: i64 = self
            .run(&self.scripts.revoke, now, &[&typ, value, &exp, &iat_before])
            .await?;
        Ok(())
    }

    async fn is_revoked(&self, c: &AccessClaims) -> Result<bool, StoreError> {
        let n: i64 = self
            .run(
                &self.scripts.is_revoked,
                shared::unix_now(),
                &[&c.jti, &c.sid, &c.sub, &c.iat],
            )
            .await?;
        Ok(n == 1)
    }
}
