//! Redis backend: sessions, refresh-token records and the revocation list. Every operation that
//! ends a session runs as one Lua script together with the revocation it implies, so a crash
//! between the two cannot leave a session half-ended.
//!
//! Keys (all under the configured prefix `P`):
//! - `P s:{sid}`      session hash: sub, rt (current refresh jti, '' for a browser's sign-in
//!   session), auth_time, abs_exp, last_used, client_id, scope, ua, amr, parent (the browser
//!   session it was issued through, or ''), b (a browser session's cookie digest, or '')
//! - `P r:{jti}`      refresh record: sid, sub, state (live|spent), spent_at, exp (the token's
//!   expiry; absent on records made before refresh tokens became opaque, whose JWT carries it).
//!   `jti` is an opaque token's handle (its SHA-256), or a signed refresh token's `jti`
//! - `P b:{digest}`   a browser session's sid, by its cookie's digest
//! - `P k:{sid}`      set of the sessions issued through a browser session
//! - `P code:{digest}` authorization code: g (its grant, JSON), used (0|1), jti and sid (what
//!   its first exchange issued under)
//! - `P u:{sub}`      set of the user's sids
//! - `P rev:{type}:{value}`  revocation entry (exp, iat_before), expiring at exp + leeway
//! - `P rev:index`    sorted set of live revocation entries by expiry (for the feed's snapshot)
//! - `P rev:stream`   stream of revocation events (fields t, v, exp, ib), trimmed to about
//!   `AUTH_FEED_RETENTION` entries: the feed's `revoke` events and resumption
//! - `P rev:epoch`    names this life of the stream; a Redis that lost its data starts a new one,
//!   so that gateways resuming from an old position get `reset` and a new snapshot
//! - `P feed:hub:{id}` one replica's feed reader: t (server ms of its last confirmation), pos
//!   (the last stream id it has read and handed to its connections), gws (the followers it
//!   serves, comma-separated), w (its window: the grace it may promise plus the margin, ms);
//!   expires a while after its window
//! - `P feed:hubs`    set of reader ids
//! - `P feed:gw`      hash, follower id → the reader it was last registered by
//!
//! A revocation is acknowledged only once every reader whose window is open (`t` + `w`) and that
//! still serves a follower (one whose latest registration is its own) has read it: see
//! [`RedisStore::with_outage_grace`]. Each reader's own window counts, so replicas configured
//! with different graces (a rolling change of `AUTH_FEED_OUTAGE_GRACE`) stay safe.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use secrecy::{ExposeSecret, SecretString};
use shared::{AccessClaims, RevocationEvent};

use shared::feed::StreamId;

use super::{
    AUDIT_KEEP, AuditEvent, AuditStore, Backoff, BrowserSession, CodeGrant, CodeIssue, CodeTake,
    FeedFollower, FeedState, NewSession, OUTAGE_MARGIN, RateLimitStore, RefreshRecord,
    RefreshSession, RevocationFeed, RevocationStore, Rotation, SessionInfo, SessionStore,
    StoreError,
};

/// How long an acknowledgement waits for the feed's readers before answering 503.
pub const ACK_WAIT: Duration = Duration::from_secs(3);

/// Shared Lua helpers. `ARGV[1]` is always the key prefix, `ARGV[2]` the leeway, `ARGV[3]` now,
/// `ARGV[4]` the event stream's approximate length bound.
const PRELUDE: &str = r#"
local p = ARGV[1]
local leeway = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local stream_cap = ARGV[4]
local function epoch()
  local key = p .. 'rev:epoch'
  local e = redis.call('GET', key)
  if not e then
    local t = redis.call('TIME')
    e = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('SET', key, e)
  end
  return e
end
local function revoke(typ, value, exp, iat_before)
  local key = p .. 'rev:' .. typ .. ':' .. value
  local cur = redis.call('HMGET', key, 'exp', 'iat_before')
  if cur[1] and tonumber(cur[1]) > exp then exp = tonumber(cur[1]) end
  if typ == 'sub' then
    if cur[2] and tonumber(cur[2]) > iat_before then iat_before = tonumber(cur[2]) end
    redis.call('HSET', key, 'exp', exp, 'iat_before', iat_before)
  else
    iat_before = 0
    redis.call('HSET', key, 'exp', exp)
  end
  redis.call('EXPIREAT', key, exp + leeway)
  redis.call('ZADD', p .. 'rev:index', exp + leeway, typ .. ':' .. value)
  redis.call('ZREMRANGEBYSCORE', p .. 'rev:index', '-inf', '(' .. now)
  epoch()
  redis.call('XADD', p .. 'rev:stream', 'MAXLEN', '~', stream_cap, '*',
    't', typ, 'v', value, 'exp', exp, 'ib', iat_before)
end
-- Ends a session, and the sessions issued through it (revoking each when `revoke_until` is
-- given: a session ended by expiry needs no revocation, its tokens have expired).
local function end_session(sid, revoke_until)
  local s = redis.call('HMGET', p .. 's:' .. sid, 'sub', 'rt', 'b')
  if s[2] and s[2] ~= '' then redis.call('DEL', p .. 'r:' .. s[2]) end
  if s[3] and s[3] ~= '' then redis.call('DEL', p .. 'b:' .. s[3]) end
  redis.call('DEL', p .. 's:' .. sid)
  if s[1] then redis.call('SREM', p .. 'u:' .. s[1], sid) end
  local kids = redis.call('SMEMBERS', p .. 'k:' .. sid)
  redis.call('DEL', p .. 'k:' .. sid)
  for _, kid in ipairs(kids) do
    if redis.call('EXISTS', p .. 's:' .. kid) == 1 then
      end_session(kid, revoke_until)
      if revoke_until then revoke('sid', kid, revoke_until, 0) end
    end
  end
  return s[1]
end
"#;

/// ARGV 5 sid, 6 sub, 7 jti ('' none), 8 abs_exp, 9 idle expiry, 10 client_id, 11 scope, 12 ua,
/// 13 user-set ttl, 14 auth_time, 15 parent ('' none), 16 browser digest ('' none), 17 amr.
/// Returns 0 (and creates nothing) when the parent session has ended.
const CREATE: &str = r#"
local sid, sub, jti, parent, browser = ARGV[5], ARGV[6], ARGV[7], ARGV[15], ARGV[16]
local until_ = tonumber(ARGV[9]) + leeway
local parent_abs
if parent ~= '' then
  parent_abs = redis.call('HGET', p .. 's:' .. parent, 'abs_exp')
  if not parent_abs then return 0 end
end
redis.call('HSET', p .. 's:' .. sid, 'sub', sub, 'rt', jti, 'auth_time', ARGV[14], 'abs_exp', ARGV[8],
  'last_used', now, 'client_id', ARGV[10], 'scope', ARGV[11], 'ua', ARGV[12], 'amr', ARGV[17],
  'parent', parent, 'b', browser)
redis.call('EXPIREAT', p .. 's:' .. sid, until_)
if jti ~= '' then
  redis.call('HSET', p .. 'r:' .. jti, 'sid', sid, 'sub', sub, 'state', 'live', 'exp', ARGV[9])
  redis.call('EXPIREAT', p .. 'r:' .. jti, until_)
end
if browser ~= '' then
  redis.call('SET', p .. 'b:' .. browser, sid)
  redis.call('EXPIREAT', p .. 'b:' .. browser, until_)
end
if parent ~= '' then
  redis.call('SADD', p .. 'k:' .. parent, sid)
  redis.call('EXPIREAT', p .. 'k:' .. parent, tonumber(parent_abs) + leeway)
end
redis.call('SADD', p .. 'u:' .. sub, sid)
redis.call('EXPIRE', p .. 'u:' .. sub, ARGV[13])
return 1
"#;

/// ARGV 5 digest, 6 idle ttl
const BROWSER: &str = r#"
local digest = ARGV[5]
local sid = redis.call('GET', p .. 'b:' .. digest)
if not sid then return {} end
local s = redis.call('HMGET', p .. 's:' .. sid, 'sub', 'auth_time', 'amr', 'abs_exp', 'b')
if not s[1] or s[5] ~= digest then return {} end
local abs = tonumber(s[4])
if now >= abs then
  end_session(sid, nil)
  return {}
end
local exp = math.min(now + tonumber(ARGV[6]), abs) + leeway
redis.call('HSET', p .. 's:' .. sid, 'last_used', now)
redis.call('EXPIREAT', p .. 's:' .. sid, exp)
redis.call('EXPIREAT', p .. 'b:' .. digest, exp)
return {sid, s[1], s[2], s[3] or '', s[4]}
"#;

/// ARGV 5 sid, 6 new digest, 7 auth_time, 8 amr
const REAUTH: &str = r#"
local sid, new = ARGV[5], ARGV[6]
local old = redis.call('HGET', p .. 's:' .. sid, 'b')
if not old or old == '' then return 0 end
local ttl = redis.call('TTL', p .. 's:' .. sid)
redis.call('DEL', p .. 'b:' .. old)
redis.call('SET', p .. 'b:' .. new, sid)
if ttl > 0 then redis.call('EXPIRE', p .. 'b:' .. new, ttl) end
redis.call('HSET', p .. 's:' .. sid, 'b', new, 'auth_time', ARGV[7], 'amr', ARGV[8], 'last_used', now)
return 1
"#;

/// ARGV 5 digest, 6 grant JSON, 7 expires_at
const PUT_CODE: &str = r#"
local k = p .. 'code:' .. ARGV[5]
redis.call('HSET', k, 'g', ARGV[6], 'used', 0)
redis.call('EXPIREAT', k, tonumber(ARGV[7]) + leeway)
return 1
"#;

/// ARGV 5 digest, 6 jti, 7 sid, 8 keep_until
const TAKE_CODE: &str = r#"
local k = p .. 'code:' .. ARGV[5]
local c = redis.call('HMGET', k, 'g', 'used', 'jti', 'sid')
if not c[1] then return {'invalid'} end
if c[2] == '1' then return {'reused', c[1], c[3], c[4]} end
local g = cjson.decode(c[1])
if now > tonumber(g['expires_at']) then
  redis.call('DEL', k)
  return {'invalid'}
end
redis.call('HSET', k, 'used', 1, 'jti', ARGV[6], 'sid', ARGV[7])
redis.call('EXPIREAT', k, tonumber(ARGV[8]))
return {'taken', c[1]}
"#;

/// ARGV 5 old jti, 6 new jti, 7 grace, 8 idle ttl, 9 revoke_until
const ROTATE: &str = r#"
local old, new = ARGV[5], ARGV[6]
local grace, idle, revoke_until = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local r = redis.call('HMGET', p .. 'r:' .. old, 'sid', 'sub', 'state', 'spent_at', 'exp')
if not r[1] or (r[5] and now >= tonumber(r[5])) then return {'invalid'} end
local sid, sub = r[1], r[2]
if r[3] == 'spent' then
  if grace > 0 and now - tonumber(r[4]) <= grace then return {'grace'} end
  end_session(sid, revoke_until)
  revoke('sid', sid, revoke_until, 0)
  return {'reused', sid}
end
local s = redis.call('HMGET', p .. 's:' .. sid, 'abs_exp', 'rt', 'parent')
if not s[1] or s[2] ~= old then
  redis.call('DEL', p .. 'r:' .. old)
  return {'invalid'}
end
local abs = tonumber(s[1])
local parent = s[3] or ''
-- A session issued through a browser's sign-in session lives no longer than that one.
if now >= abs or (parent ~= '' and redis.call('EXISTS', p .. 's:' .. parent) == 0) then
  end_session(sid, nil)
  return {'invalid'}
end
local exp = math.min(now + idle, abs)
redis.call('HSET', p .. 'r:' .. old, 'state', 'spent', 'spent_at', now)
redis.call('HSET', p .. 'r:' .. new, 'sid', sid, 'sub', sub, 'state', 'live', 'exp', exp)
redis.call('EXPIREAT', p .. 'r:' .. new, exp + leeway)
redis.call('HSET', p .. 's:' .. sid, 'rt', new, 'last_used', now)
redis.call('EXPIREAT', p .. 's:' .. sid, exp + leeway)
if parent ~= '' then
  -- Using an app keeps its browser session alive, as visiting the sign-in pages does.
  local ps = redis.call('HMGET', p .. 's:' .. parent, 'abs_exp', 'b')
  local pexp = math.min(now + idle, tonumber(ps[1])) + leeway
  redis.call('EXPIREAT', p .. 's:' .. parent, pexp)
  if ps[2] and ps[2] ~= '' then redis.call('EXPIREAT', p .. 'b:' .. ps[2], pexp) end
end
return {'rotated', sid, tostring(exp), s[1]}
"#;

/// ARGV 5 jti. A refresh record (unexpired) and its session's client and scope, if it lives.
const PEEK: &str = r#"
local r = redis.call('HMGET', p .. 'r:' .. ARGV[5], 'sid', 'sub', 'exp')
if not r[1] or (r[3] and now >= tonumber(r[3])) then return {} end
local s = redis.call('HMGET', p .. 's:' .. r[1], 'client_id', 'scope')
if not s[1] then return {r[1], r[2]} end
return {r[1], r[2], s[1], s[2]}
"#;

/// ARGV 5 sub
const LIST: &str = r#"
local sub = ARGV[5]
local out = {}
for _, sid in ipairs(redis.call('SMEMBERS', p .. 'u:' .. sub)) do
  local s = redis.call('HMGET', p .. 's:' .. sid, 'sub', 'auth_time', 'last_used', 'abs_exp', 'client_id', 'ua', 'parent')
  if s[1] == sub then
    table.insert(out, {sid, s[2], s[3], s[4], s[5] or '', s[6] or '', s[7] or ''})
  else
    redis.call('SREM', p .. 'u:' .. sub, sid)
  end
end
return out
"#;

/// ARGV 5 sub, 6 sid, 7 revoke_until
const END: &str = r#"
local owner = redis.call('HGET', p .. 's:' .. ARGV[6], 'sub')
if owner ~= ARGV[5] then return 0 end
end_session(ARGV[6], tonumber(ARGV[7]))
revoke('sid', ARGV[6], tonumber(ARGV[7]), 0)
return 1
"#;

/// ARGV 5 sub, 6 iat_before, 7 revoke_until
const END_ALL: &str = r#"
local sub = ARGV[5]
local sids = redis.call('SMEMBERS', p .. 'u:' .. sub)
for _, sid in ipairs(sids) do end_session(sid, nil) end
redis.call('DEL', p .. 'u:' .. sub)
revoke('sub', sub, tonumber(ARGV[7]), tonumber(ARGV[6]))
return #sids
"#;

/// ARGV 5 type, 6 value, 7 exp, 8 iat_before
const REVOKE: &str = r#"
revoke(ARGV[5], ARGV[6], tonumber(ARGV[7]), tonumber(ARGV[8]))
return 1
"#;

/// ARGV 5 jti, 6 sid, 7 sub, 8 iat
const IS_REVOKED: &str = r#"
if redis.call('EXISTS', p .. 'rev:jti:' .. ARGV[5]) == 1 then return 1 end
if ARGV[6] ~= '' and redis.call('EXISTS', p .. 'rev:sid:' .. ARGV[6]) == 1 then return 1 end
local ib = redis.call('HGET', p .. 'rev:sub:' .. ARGV[7], 'iat_before')
if ib and tonumber(ARGV[8]) < tonumber(ib) then return 1 end
return 0
"#;

/// The feed's position: {epoch, last-generated id, first id ('' if none), complete (never
/// trimmed: '1'/'0'), max deleted id ('' or '0-0' if unknown)}. `entries-added` and
/// `max-deleted-entry-id` exist from Redis 7; without them nothing is assumed.
const FEED_STATE: &str = r#"
local key = p .. 'rev:stream'
local e = epoch()
if redis.call('EXISTS', key) == 0 then return {e, '0-0', '', '1', ''} end
local info = redis.call('XINFO', 'STREAM', key)
local last, first, deleted, added, length = '0-0', '', '', -1, -2
for i = 1, #info, 2 do
  local k = info[i]
  if k == 'last-generated-id' then last = info[i + 1]
  elseif k == 'max-deleted-entry-id' then deleted = info[i + 1]
  elseif k == 'entries-added' then added = tonumber(info[i + 1])
  elseif k == 'length' then length = tonumber(info[i + 1])
  elseif k == 'first-entry' and type(info[i + 1]) == 'table' then first = info[i + 1][1]
  end
end
local complete = '0'
if added == length then complete = '1' end
return {e, last, first, complete, deleted}
"#;

/// ARGV 5 reader id, 6 its position, 7 the record's ttl in ms, 8 the followers it serves now,
/// 9 the followers that left it since its last confirmation (both comma-separated), 10 its
/// window in ms. Returns the server time in ms.
const FEED_CONFIRM: &str = r#"
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local hub = ARGV[5]
local key = p .. 'feed:hub:' .. hub
redis.call('HSET', key, 't', now_ms, 'pos', ARGV[6], 'gws', ARGV[8], 'w', ARGV[10])
redis.call('PEXPIRE', key, ARGV[7])
redis.call('SADD', p .. 'feed:hubs', hub)
for g in string.gmatch(ARGV[8], '[^,]+') do redis.call('HSET', p .. 'feed:gw', g, hub) end
for g in string.gmatch(ARGV[9], '[^,]+') do
  if redis.call('HGET', p .. 'feed:gw', g) == hub then redis.call('HDEL', p .. 'feed:gw', g) end
end
return now_ms
"#;

/// ARGV 5 the stream id to wait for ('': the newest entry now): {that id, readers still behind
/// it, ms until the last of their windows closes}. A reader counts while its own window is open
/// and it serves a follower registered by nobody since.
const FEED_PENDING: &str = r#"
local target = ARGV[5]
if target == '' then
  local last = redis.call('XREVRANGE', p .. 'rev:stream', '+', '-', 'COUNT', 1)
  if #last == 0 then return {'0-0', 0, 0} end
  target = last[1][1]
end
local function behind(a, b)
  local am, as = string.match(a or '', '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if not am or not bm then return true end
  am, bm = tonumber(am), tonumber(bm)
  if am ~= bm then return am < bm end
  return tonumber(as) < tonumber(bs)
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local pending, left = 0, 0
for _, hub in ipairs(redis.call('SMEMBERS', p .. 'feed:hubs')) do
  local r = redis.call('HMGET', p .. 'feed:hub:' .. hub, 't', 'pos', 'gws', 'w')
  if not r[1] then
    redis.call('SREM', p .. 'feed:hubs', hub)
  else
    local closes = tonumber(r[1]) + (tonumber(r[4]) or 0)
    if now_ms < closes and behind(r[2], target) then
      for g in string.gmatch(r[3] or '', '[^,]+') do
        if redis.call('HGET', p .. 'feed:gw', g) == hub then
          pending = pending + 1
          if closes - now_ms > left then left = closes - now_ms end
          break
        end
      end
    end
  end
end
return {target, pending, left}
"#;

/// ARGV 5 ZSCAN cursor, 6 count: {next cursor, {member, exp, iat_before}...} of live entries.
const SNAPSHOT_PAGE: &str = r#"
local r = redis.call('ZSCAN', p .. 'rev:index', ARGV[5], 'COUNT', ARGV[6])
local out = {r[1]}
local items = r[2]
for i = 1, #items, 2 do
  if tonumber(items[i + 1]) >= now then
    local h = redis.call('HMGET', p .. 'rev:' .. items[i], 'exp', 'iat_before')
    if h[1] then table.insert(out, {items[i], h[1], h[2] or '0'}) end
  end
end
return out
"#;

/// ARGV 5 key, 6 window in ms: {hits in the window, ms left}.
const RATE_HIT: &str = r#"
local k = p .. 'rl:' .. ARGV[5]
local c = redis.call('INCR', k)
local ttl = redis.call('PTTL', k)
if c == 1 or ttl < 0 then
  redis.call('PEXPIRE', k, ARGV[6])
  ttl = tonumber(ARGV[6])
end
return {c, ttl}
"#;

const RATE_PEEK: &str = r#"
local k = p .. 'rl:' .. ARGV[5]
local c = tonumber(redis.call('GET', k) or '0')
local ttl = redis.call('PTTL', k)
if ttl < 0 then ttl = 0 end
return {c, ttl}
"#;

const GATE: &str = r#"
local k = p .. 'gate:' .. ARGV[5]
local free, base, max, window = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('HMGET', k, 'f', 'next')
local f = tonumber(cur[1]) or 0
local nxt = tonumber(cur[2]) or 0
local function delay(n)
  if n < free then return 0 end
  local d = base * 2 ^ math.min(n - free, 40)
  if d > max then d = max end
  return d
end
if ARGV[10] == '1' then
  f = f + 1
  local d = delay(f)
  if now_ms + d > nxt then nxt = now_ms + d end
  redis.call('HSET', k, 'f', f, 'next', nxt)
  redis.call('PEXPIRE', k, window + max)
  return {f, 0}
end
if now_ms < nxt then return {f, nxt - now_ms} end
local d = delay(f)
if d > 0 then
  redis.call('HSET', k, 'next', now_ms + d)
  redis.call('PEXPIRE', k, window + max)
end
return {f, 0}
"#;

struct Scripts {
    create: Script,
    rotate: Script,
    peek: Script,
    list: Script,
    end: Script,
    end_all: Script,
    revoke: Script,
    is_revoked: Script,
    feed_state: Script,
    snapshot_page: Script,
    rate_hit: Script,
    rate_peek: Script,
    gate: Script,
    browser: Script,
    reauth: Script,
    put_code: Script,
    take_code: Script,
    feed_confirm: Script,
    feed_pending: Script,
}

impl Scripts {
    fn new() -> Self {
        let s = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Scripts {
            create: s(CREATE),
            rotate: s(ROTATE),
            peek: s(PEEK),
            list: s(LIST),
            end: s(END),
            end_all: s(END_ALL),
            revoke: s(REVOKE),
            is_revoked: s(IS_REVOKED),
            feed_state: s(FEED_STATE),
            snapshot_page: s(SNAPSHOT_PAGE),
            rate_hit: s(RATE_HIT),
            rate_peek: s(RATE_PEEK),
            gate: s(GATE),
            browser: s(BROWSER),
            reauth: s(REAUTH),
            put_code: s(PUT_CODE),
            take_code: s(TAKE_CODE),
            feed_confirm: s(FEED_CONFIRM),
            feed_pending: s(FEED_PENDING),
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
    stream_cap: u64,
    timeout: Duration,
    /// The store-outage grace readers may promise their followers, plus the margin; `None`:
    /// none, and acknowledgements wait for nobody.
    outage_window: Option<Duration>,
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
        stream_cap: u64,
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
            stream_cap,
            timeout,
            outage_window: None,
            scripts: std::sync::Arc::new(Scripts::new()),
        })
    }

    /// Lets this process's feed reader promise its followers a grace of `grace` while this
    /// store is down (`AUTH_FEED_OUTAGE_GRACE`; zero: none). Every acknowledged revocation (a
    /// logout, a disabled user, a revoked token or key), whatever this setting, first waits
    /// until each reader that may be keeping a follower on such a promise has read it, or its
    /// promise has run out: normally a fraction of a millisecond; while a replica is cut off from a store
    /// the others reach, or for a moment after a replica died, longer, and past [`ACK_WAIT`]
    /// the revocation is recorded but answered 503 (retrying it is harmless).
    #[must_use]
    pub fn with_outage_grace(mut self, grace: Duration) -> Self {
        self.outage_window = (!grace.is_zero()).then(|| grace + OUTAGE_MARGIN);
        self
    }

    /// Waits until every reader that may be keeping a follower on an outage grace has read the
    /// newest revocation (see [`RedisStore::with_outage_grace`]).
    async fn acknowledge(&self) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + ACK_WAIT;
        let mut target = String::new();
        let mut pause = Duration::from_millis(1);
        loop {
            let (id, pending, left): (String, i64, i64) = self
                .run(&self.scripts.feed_pending, shared::unix_now(), &[&target])
                .await?;
            if pending == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    readers = pending,
                    closes_in_ms = left,
                    "a revocation is recorded, but a feed reader that may be vouching for its gateways during a store outage has not read it: answering 503 until it does or its grace runs out"
                );
                return Err(StoreError::Unavailable(anyhow::anyhow!(
                    "a revocation feed reader has not confirmed the revocation"
                )));
            }
            target = id;
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
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
        inv.arg(&self.prefix)
            .arg(self.leeway)
            .arg(now)
            .arg(self.stream_cap);
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

    async fn create(&self, s: &NewSession, now: i64) -> Result<bool, StoreError> {
        let user_set_ttl = self.session_max_ttl + self.leeway;
        let created: i64 = self
            .run(
                &self.scripts.create,
                now,
                &[
                    &s.sid,
                    &s.sub,
                    &s.refresh_jti.as_deref().unwrap_or(""),
                    &s.abs_exp,
                    &s.refresh_exp,
                    &s.client_id,
                    &s.scope,
                    &s.user_agent,
                    &user_set_ttl,
                    &s.auth_time,
                    &s.parent.as_deref().unwrap_or(""),
                    &s.browser.as_deref().unwrap_or(""),
                    &s.amr,
                ],
            )
            .await?;
        Ok(created == 1)
    }

    async fn browser_session(
        &self,
        browser: &str,
        now: i64,
        idle_ttl: i64,
    ) -> Result<Option<BrowserSession>, StoreError> {
        let reply: Vec<Value> = self
            .run(&self.scripts.browser, now, &[&browser, &idle_ttl])
            .await?;
        Ok(match reply.as_slice() {
            [sid, sub, auth_time, amr, abs] => Some(BrowserSession {
                sid: text(sid),
                sub: text(sub),
                auth_time: int(auth_time),
                amr: text(amr),
                abs_exp: int(abs),
            }),
            _ => None,
        })
    }

    async fn reauthenticate(
        &self,
        sid: &str,
        new_browser: &str,
        auth_time: i64,
        amr: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n: i64 = self
            .run(
                &self.scripts.reauth,
                now,
                &[&sid, &new_browser, &auth_time, &amr],
            )
            .await?;
        Ok(n == 1)
    }

    async fn put_code(&self, digest: &str, grant: &CodeGrant, now: i64) -> Result<(), StoreError> {
        let json = serde_json::to_string(grant).map_err(|e| StoreError::Other(e.into()))?;
        let _: i64 = self
            .run(
                &self.scripts.put_code,
                now,
                &[&digest, &json, &grant.expires_at],
            )
            .await?;
        Ok(())
    }

    async fn take_code(
        &self,
        digest: &str,
        issue: &CodeIssue,
        now: i64,
        keep_until: i64,
    ) -> Result<CodeTake, StoreError> {
        let reply: Vec<Value> = self
            .run(
                &self.scripts.take_code,
                now,
                &[&digest, &issue.jti, &issue.sid, &keep_until],
            )
            .await?;
        let grant = |v: &Value| {
            serde_json::from_str::<CodeGrant>(&text(v)).map_err(|e| StoreError::Other(e.into()))
        };
        let tag = reply.first().map(text).unwrap_or_default();
        Ok(match (tag.as_str(), reply.as_slice()) {
            ("taken", [_, g]) => CodeTake::Taken(grant(g)?),
            ("reused", [_, g, jti, sid]) => CodeTake::Reused(
                CodeIssue {
                    jti: text(jti),
                    sid: text(sid),
                },
                grant(g)?,
            ),
            ("invalid", _) => CodeTake::Invalid,
            _ => {
                return Err(StoreError::Other(anyhow::anyhow!(
                    "unexpected take_code reply {reply:?}"
                )));
            }
        })
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

    async fn refresh_record(
        &self,
        jti: &str,
        now: i64,
    ) -> Result<Option<RefreshRecord>, StoreError> {
        let reply: Vec<Value> = self.run(&self.scripts.peek, now, &[&jti]).await?;
        Ok(match reply.as_slice() {
            [] => None,
            [sid, sub] => Some(RefreshRecord {
                sid: text(sid),
                sub: text(sub),
                session: None,
            }),
            [sid, sub, client_id, scope] => Some(RefreshRecord {
                sid: text(sid),
                sub: text(sub),
                session: Some(RefreshSession {
                    client_id: text(client_id),
                    scope: text(scope),
                }),
            }),
            _ => {
                return Err(StoreError::Other(anyhow::anyhow!(
                    "unexpected refresh record reply {reply:?}"
                )));
            }
        })
    }

    async fn list(&self, sub: &str, now: i64) -> Result<Vec<SessionInfo>, StoreError> {
        let rows: Vec<Vec<Value>> = self.run(&self.scripts.list, now, &[&sub]).await?;
        let mut out: Vec<SessionInfo> = rows
            .iter()
            .filter_map(|r| match r.as_slice() {
                [sid, auth, last, abs, client, ua, parent] => Some(SessionInfo {
                    sid: text(sid),
                    created_at: int(auth),
                    last_used_at: int(last),
                    expires_at: int(abs),
                    client_id: text(client),
                    user_agent: text(ua),
                    parent: text(parent),
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
        if n == 1 {
            self.acknowledge().await?;
        }
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
        self.acknowledge().await?;
        Ok(n.max(0) as u64)
    }
}

#[async_trait]
impl RevocationStore for RedisStore {
    async fn revoke(&self, event: &RevocationEvent, now: i64) -> Result<(), StoreError> {
        let (typ, value, exp, iat_before) = event.parts();
        let _: i64 = self
            .run(
                &self.scripts.revoke,
                now,
                &[&typ, &value, &exp, &iat_before],
            )
            .await?;
        self.acknowledge().await
    }

    async fn is_revoked(&self, c: &AccessClaims) -> Result<bool, StoreError> {
        let n: i64 = self
            .run(
                &self.scripts.is_revoked,
                shared::unix_now(),
                &[&c.jti, &c.sid.clone().unwrap_or_default(), &c.sub, &c.iat],
            )
            .await?;
        Ok(n == 1)
    }
}

/// A stream entry as a revocation event (entries this code did not write are skipped).
fn stream_event(entry: &redis::streams::StreamId) -> Option<(StreamId, RevocationEvent)> {
    let id: StreamId = entry.id.parse().ok()?;
    let field = |name: &str| entry.map.get(name).map(text);
    let iat_before = field("ib").and_then(|v| v.parse().ok()).unwrap_or(0);
    let event = RevocationEvent::from_parts(
        &field("t")?,
        field("v")?,
        field("exp")?.parse().ok()?,
        iat_before,
    )?;
    Some((id, event))
}

fn entry_event(member: &str, exp: i64, iat_before: i64) -> Option<RevocationEvent> {
    let (typ, value) = member.split_once(':')?;
    RevocationEvent::from_parts(typ, value.to_owned(), exp, iat_before)
}

impl RedisStore {
    fn stream_key(&self) -> String {
        format!("{}rev:stream", self.prefix)
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async(&mut conn)).await {
            Ok(r) => r.map_err(classify),
            Err(_) => Err(StoreError::Unavailable(anyhow::anyhow!("redis timed out"))),
        }
    }
}

#[async_trait]
impl RevocationFeed for RedisStore {
    async fn feed_state(&self) -> Result<FeedState, StoreError> {
        let reply: Vec<String> = self
            .run(&self.scripts.feed_state, shared::unix_now(), &[])
            .await?;
        let [epoch, last, first, complete, deleted] = reply.as_slice() else {
            return Err(StoreError::Other(anyhow::anyhow!(
                "unexpected feed state {reply:?}"
            )));
        };
        let id = |s: &str| {
            s.parse::<StreamId>()
                .map_err(|e| StoreError::Other(anyhow::anyhow!("stream id: {e}")))
        };
        Ok(FeedState {
            epoch: epoch.clone(),
            last: id(last)?,
            first: if first.is_empty() {
                None
            } else {
                Some(id(first)?)
            },
            complete: complete == "1",
            trimmed_through: match deleted.as_str() {
                "" | "0-0" => None,
                d => Some(id(d)?),
            },
        })
    }

    async fn live_entries(&self, now: i64) -> Result<Vec<RevocationEvent>, StoreError> {
        // ZSCAN returns every element present for the whole scan (perhaps twice): entries
        // added meanwhile come after the snapshot's position and reach the gateway as events.
        let mut cursor = "0".to_owned();
        let mut out = Vec::new();
        loop {
            let reply: Vec<Value> = self
                .run(&self.scripts.snapshot_page, now, &[&cursor, &1000])
                .await?;
            let Some((next, rows)) = reply.split_first() else {
                return Err(StoreError::Other(anyhow::anyhow!("empty snapshot page")));
            };
            for row in rows {
                if let Value::Array(f) = row
                    && let [member, exp, ib] = f.as_slice()
                    && let Some(e) = entry_event(&text(member), int(exp), int(ib))
                {
                    out.push(e);
                }
            }
            cursor = text(next);
            if cursor == "0" {
                return Ok(out);
            }
        }
    }

    async fn events_after(
        &self,
        after: StreamId,
        limit: usize,
    ) -> Result<Vec<(StreamId, RevocationEvent)>, StoreError> {
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(self.stream_key())
            .arg(format!("({after}"))
            .arg("+")
            .arg("COUNT")
            .arg(limit);
        let reply: redis::streams::StreamRangeReply = self.query(&cmd).await?;
        Ok(reply.ids.iter().filter_map(stream_event).collect())
    }

    async fn confirm_reader(
        &self,
        reader: &str,
        position: StreamId,
        serving: &[String],
        left: &[String],
    ) -> Result<bool, StoreError> {
        let Some(window) = self.outage_window else {
            return Ok(false);
        };
        let ttl = window.saturating_add(Duration::from_secs(60));
        let _: i64 = self
            .run(
                &self.scripts.feed_confirm,
                shared::unix_now(),
                &[
                    &reader,
                    &position,
                    &ttl.as_millis(),
                    &serving.join(","),
                    &left.join(","),
                    &window.as_millis(),
                ],
            )
            .await?;
        Ok(true)
    }

    async fn follower(&self) -> Result<Box<dyn FeedFollower>, StoreError> {
        Ok(Box::new(RedisFollower {
            client: self.client.clone(),
            conn: None,
            key: self.stream_key(),
            timeout: self.timeout,
        }))
    }
}

/// Blocking stream reads on a connection of their own (a blocked connection can serve nothing
/// else), reopened after a failure.
struct RedisFollower {
    client: redis::Client,
    conn: Option<redis::aio::MultiplexedConnection>,
    key: String,
    timeout: Duration,
}

#[async_trait]
impl FeedFollower for RedisFollower {
    async fn wait_after(
        &mut self,
        after: StreamId,
        block: Duration,
        limit: usize,
    ) -> Result<Vec<(StreamId, RevocationEvent)>, StoreError> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(block + self.timeout));
                let c = self
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(classify)?;
                self.conn.insert(c)
            }
        };
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(limit)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(after.to_string());
        let reply: Result<Option<redis::streams::StreamReadReply>, _> = cmd.query_async(conn).await;
        match reply {
            Ok(r) => Ok(r
                .into_iter()
                .flat_map(|r| r.keys)
                .flat_map(|k| k.ids)
                .filter_map(|e| stream_event(&e))
                .collect()),
            Err(e) => {
                self.conn = None;
                Err(classify(e))
            }
        }
    }
}

#[async_trait]
impl RateLimitStore for RedisStore {
    async fn hit(&self, key: &str, window: Duration) -> Result<(u64, Duration), StoreError> {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let reply: Vec<i64> = self
            .run(
                &self.scripts.rate_hit,
                shared::unix_now(),
                &[&key, &window_ms],
            )
            .await?;
        count_and_left(&reply)
    }

    async fn peek(&self, key: &str) -> Result<(u64, Duration), StoreError> {
        let reply: Vec<i64> = self
            .run(&self.scripts.rate_peek, shared::unix_now(), &[&key])
            .await?;
        count_and_left(&reply)
    }

    async fn clear(&self, key: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let k = format!("{}rl:{key}", self.prefix);
        let mut cmd = redis::cmd("DEL");
        cmd.arg(k);
        match tokio::time::timeout(self.timeout, cmd.query_async::<i64>(&mut conn)).await {
            Ok(r) => r.map(|_| ()).map_err(classify),
            Err(_) => Err(StoreError::Unavailable(anyhow::anyhow!("redis timed out"))),
        }
    }

    async fn gate(
        &self,
        key: &str,
        policy: &Backoff,
        failed: bool,
    ) -> Result<(u64, Duration), StoreError> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4);
        let reply: Vec<i64> = self
            .run(
                &self.scripts.gate,
                shared::unix_now(),
                &[
                    &key,
                    &policy.free,
                    &ms(policy.base),
                    &ms(policy.max),
                    &ms(policy.window).max(1),
                    &u8::from(failed),
                ],
            )
            .await?;
        count_and_left(&reply)
    }
}

fn count_and_left(reply: &[i64]) -> Result<(u64, Duration), StoreError> {
    let [count, left] = reply else {
        return Err(StoreError::Other(anyhow::anyhow!(
            "unexpected rate reply {reply:?}"
        )));
    };
    Ok((
        u64::try_from(*count).unwrap_or(0),
        Duration::from_millis(u64::try_from(*left).unwrap_or(0)),
    ))
}

#[async_trait]
impl AuditStore for RedisStore {
    async fn record(&self, user: &str, event: &AuditEvent) -> Result<(), StoreError> {
        let key = format!("{}audit:{user}", self.prefix);
        let json = serde_json::to_string(event).map_err(|e| StoreError::Other(e.into()))?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("LPUSH")
            .arg(&key)
            .arg(json)
            .ignore()
            .cmd("LTRIM")
            .arg(&key)
            .arg(0)
            .arg(AUDIT_KEEP - 1)
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(self.session_max_ttl.max(90 * 86_400))
            .ignore();
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, pipe.query_async::<()>(&mut conn)).await {
            Ok(r) => r.map_err(classify),
            Err(_) => Err(StoreError::Unavailable(anyhow::anyhow!("redis timed out"))),
        }
    }

    async fn recent(&self, user: &str, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        let mut cmd = redis::cmd("LRANGE");
        cmd.arg(format!("{}audit:{user}", self.prefix))
            .arg(0)
            .arg(limit.clamp(1, AUDIT_KEEP) - 1);
        let raw: Vec<String> = self.query(&cmd).await?;
        Ok(raw
            .iter()
            .filter_map(|r| serde_json::from_str(r).ok())
            .collect())
    }
}
