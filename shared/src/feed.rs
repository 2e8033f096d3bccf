//! The revocation feed's wire format (`GET /v1/revocations`, Server-Sent Events), shared by the
//! auth-service that serves it and the gateways that follow it.
//!
//! Events, each an SSE event whose `data` is one JSON document:
//! - `snapshot` (`id` = the position it covers): [`Snapshot`], every live entry;
//! - `revoke` (`id` = its position): one [`RevocationEvent`] of a token, session or user;
//! - `key_revoked` (`id` = its position): one [`RevocationEvent::Kid`], a compromised signing key;
//! - `heartbeat` (no `id`): [`Heartbeat`], sent every few seconds while the server can read the
//!   event stream, so that a quiet feed and a dead one can be told apart;
//! - `reset` (no `id`): [`Reset`], the requested `Last-Event-ID` cannot be resumed (trimmed, or
//!   the store lost its stream); a `snapshot` follows on the same connection;
//! - `outage` (no `id`): [`Outage`], the server cannot read the event stream because its store is
//!   down, and guarantees that no revocation will be acknowledged that this follower has not
//!   received, for `grace_ms` from now. Sent only to followers that named themselves with
//!   [`SUBSCRIBER_HEADER`] and that the server has registered in its store (so that every other
//!   replica of the issuer holds back its acknowledgements for them). A follower that ignores the
//!   event judges its staleness as before.
//!
//! A position is `{epoch}/{ms}-{seq}`: the epoch names one life of the store's stream (a store
//! that lost its data starts a new epoch), the rest is the stream entry id.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::RevocationEvent;

/// SSE event name of a snapshot.
pub const SNAPSHOT: &str = "snapshot";
/// SSE event name of one revocation.
pub const REVOKE: &str = "revoke";
/// SSE event name of a key revocation: data is a [`RevocationEvent::Kid`] entry. (Key entries
/// are sent under their own name so that a follower that cannot apply them notices, rather than
/// taking them for one more `revoke`.)
pub const KEY_REVOKED: &str = "key_revoked";
/// SSE event name of a heartbeat.
pub const HEARTBEAT: &str = "heartbeat";
/// SSE event name of a reset.
pub const RESET: &str = "reset";
/// SSE event name of a store outage with a grace, see [`Outage`].
pub const OUTAGE: &str = "outage";
/// The request header a follower names itself with (a random id per process, 1 to 64 of
/// `[A-Za-z0-9_-]`): the server registers the names it serves in its store, which is what lets
/// it promise an [`Outage`] grace.
pub const SUBSCRIBER_HEADER: &str = "revocation-subscriber";

/// An entry id of the event stream (`{ms}-{seq}`, as Redis Streams number them); ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    /// Milliseconds since the Unix epoch at which the entry was added.
    pub ms: u64,
    /// Sequence within that millisecond.
    pub seq: u64,
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Why a position or stream id does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a feed position: {0:?}")]
pub struct BadPosition(pub String);

impl FromStr for StreamId {
    type Err = BadPosition;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadPosition(s.chars().take(64).collect());
        let (ms, seq) = s.split_once('-').ok_or_else(bad)?;
        let digits =
            |v: &str| !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return Err(bad());
        }
        Ok(StreamId {
            ms: ms.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// A position in the feed: the stream's epoch and an entry id within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// Which life of the stream.
    pub epoch: String,
    /// The last entry covered.
    pub id: StreamId,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.epoch, self.id)
    }
}

impl FromStr for Position {
    type Err = BadPosition;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadPosition(s.chars().take(64).collect());
        let (epoch, id) = s.split_once('/').ok_or_else(bad)?;
        if epoch.is_empty()
            || epoch.len() > 64
            || !epoch
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
        {
            return Err(bad());
        }
        Ok(Position {
            epoch: epoch.to_owned(),
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

/// The `data` of a `snapshot` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The position the snapshot covers (also the event's `id`).
    pub position: String,
    /// Server time in Unix milliseconds.
    pub time_ms: i64,
    /// Every live entry.
    pub entries: Vec<RevocationEvent>,
}

/// The `data` of a `heartbeat` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Server time in Unix milliseconds when the stream was last read successfully.
    pub time_ms: i64,
}

/// The `data` of an `outage` event.
///
/// The issuer's replicas acknowledge a revocation only once every replica serving a registered
/// follower has read it, or that replica's last registration is older than the grace it may
/// have promised (plus a margin). So while the store is down no revocation is acknowledged that
/// this follower has not had, for `grace_ms`, and the follower may keep trusting its list that
/// long. A replica cut off from a store that the others still reach holds their
/// acknowledgements back the same way: they answer 503 rather than acknowledge what this
/// follower cannot learn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outage {
    /// Server time in Unix milliseconds.
    pub time_ms: i64,
    /// How long from receipt the list stays trustworthy without news.
    pub grace_ms: u64,
}

/// The `data` of a `reset` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reset {
    /// `trimmed` (the position fell out of the retained stream), `epoch` (the stream was lost and
    /// restarted) or `invalid` (the position is not one of ours).
    pub reason: String,
}

/// One SSE event as received.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// `event:` (empty means `message`).
    pub event: String,
    /// `id:`, when the event set one.
    pub id: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: String,
}

/// An event exceeded the parser's size bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an SSE event exceeds {0} bytes")]
pub struct EventTooLarge(pub usize);

/// An incremental parser of a `text/event-stream` body (the WHATWG rules: `\n`, `\r\n` or `\r`
/// line ends; comments; `data` lines joined; an event ends at a blank line), bounded in memory.
#[derive(Debug)]
pub struct SseParser {
    line: Vec<u8>,
    pending_cr: bool,
    current: SseEvent,
    has_data: bool,
    size: usize,
    max_event_bytes: usize,
}

impl SseParser {
    /// A parser refusing events larger than `max_event_bytes`.
    pub fn new(max_event_bytes: usize) -> Self {
        SseParser {
            line: Vec::new(),
            pending_cr: false,
            current: SseEvent::default(),
            has_data: false,
            size: 0,
            max_event_bytes,
        }
    }

    /// Feeds bytes; returns the events they complete.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<Vec<SseEvent>, EventTooLarge> {
        let mut out = Vec::new();
        if self.pending_cr && bytes.first() == Some(&b'\n') {
            bytes = &bytes[1..];
        }
        self.pending_cr = false;
        while let Some(end) = bytes.iter().position(|b| *b == b'\n' || *b == b'\r') {
            self.extend(&bytes[..end])?;
            let cr = bytes[end] == b'\r';
            bytes = &bytes[end + 1..];
            if cr {
                if bytes.first() == Some(&b'\n') {
                    bytes = &bytes[1..];
                } else if bytes.is_empty() {
                    self.pending_cr = true;
                }
            }
            let line = std::mem::take(&mut self.line);
            if let Some(event) = self.line_done(&line) {
                out.push(event);
            }
        }
        self.extend(bytes)?;
        Ok(out)
    }

    fn extend(&mut self, bytes: &[u8]) -> Result<(), EventTooLarge> {
        self.size += bytes.len();
        if self.size > self.max_event_bytes {
            return Err(EventTooLarge(self.max_event_bytes));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn line_done(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            self.size = 0;
            let event = std::mem::take(&mut self.current);
            let has_data = std::mem::replace(&mut self.has_data, false);
            // Per the spec, an event with no data is not dispatched (its id still counts).
            return (has_data || !event.event.is_empty()).then_some(event);
        }
        if line[0] == b':' {
            return None;
        }
        let text = String::from_utf8_lossy(line);
        let (field, value) = match text.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (text.as_ref(), ""),
        };
        match field {
            "event" => self.current.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.current.id = Some(value.to_owned()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_order() {
        let p: Position = "1732345678123456/1732345679000-3".parse().unwrap();
        assert_eq!(p.epoch, "1732345678123456");
        assert_eq!(
            p.id,
            StreamId {
                ms: 1_732_345_679_000,
                seq: 3
            }
        );
        assert_eq!(p.to_string(), "1732345678123456/1732345679000-3");
        assert!(StreamId { ms: 5, seq: 9 } < StreamId { ms: 6, seq: 0 });
        assert!(StreamId { ms: 5, seq: 1 } < StreamId { ms: 5, seq: 2 });
        for bad in [
            "",
            "/1-0",
            "e/1",
            "e/-1",
            "e/1-",
            "e/a-0",
            "e/1-0-0",
            "e 1/1-0",
            "e/+1-0",
            "e/99999999999999999999999-0",
        ] {
            assert!(bad.parse::<Position>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn parses_events_split_anywhere_with_any_line_ending() {
        let body = "event: snapshot\r\nid: e/1-0\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n: comment\n\nevent: heartbeat\ndata: {}\n\nevent:revoke\rid:e/2-0\rdata:x\r\r";
        let expected = vec![
            SseEvent {
                event: "snapshot".into(),
                id: Some("e/1-0".into()),
                data: "{\"a\":\n1}".into(),
            },
            SseEvent {
                event: "heartbeat".into(),
                id: None,
                data: "{}".into(),
            },
            SseEvent {
                event: "revoke".into(),
                id: Some("e/2-0".into()),
                data: "x".into(),
            },
        ];
        // Every split point, including between \r and \n.
        for cut in 0..body.len() {
            let mut p = SseParser::new(1024);
            let mut got = p.push(&body.as_bytes()[..cut]).unwrap();
            got.extend(p.push(&body.as_bytes()[cut..]).unwrap());
            assert_eq!(got, expected, "split at {cut}");
        }
        // Byte by byte.
        let mut p = SseParser::new(1024);
        let mut got = Vec::new();
        for b in body.as_bytes() {
            got.extend(p.push(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn oversized_events_are_refused_but_size_resets_per_event() {
        let mut p = SseParser::new(32);
        assert!(p.push(b"data: 0123456789\n\n").unwrap().len() == 1);
        assert!(p.push(b"data: 0123456789\n\n").unwrap().len() == 1);
        assert_eq!(
            p.push(b"data: 0123456789012345678901234567890123456789"),
            Err(EventTooLarge(32))
        );
    }

    #[test]
    fn wire_types_serialise_as_documented() {
        let s = Snapshot {
            position: "e/1-0".into(),
            time_ms: 7,
            entries: vec![RevocationEvent::Jti {
                value: "j".into(),
                exp: 9,
            }],
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"position":"e/1-0","time_ms":7,"entries":[{"type":"jti","value":"j","exp":9}]}"#
        );
        assert_eq!(
            serde_json::to_string(&Heartbeat { time_ms: 3 }).unwrap(),
            r#"{"time_ms":3}"#
        );
    }
}
