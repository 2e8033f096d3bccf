//! A revocation-feed client for tests: connects like a gateway and hands out parsed events.

use std::time::Duration;

use shared::feed::{SseEvent, SseParser};

/// An open feed connection.
pub struct FeedClient {
    res: reqwest::Response,
    parser: SseParser,
    ready: std::collections::VecDeque<SseEvent>,
}

impl FeedClient {
    /// `GET {base}/v1/revocations` with the test feed token (or `token`), resuming from
    /// `last_event_id`. Returns the response when it is not a 200 stream.
    pub async fn connect(
        base: &str,
        token: Option<&str>,
        last_event_id: Option<&str>,
    ) -> Result<FeedClient, reqwest::Response> {
        let mut req = reqwest::Client::new()
            .get(format!("{base}/v1/revocations"))
            .header("accept", "text/event-stream")
            .bearer_auth(token.unwrap_or(crate::FEED_TOKEN));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let res = req.send().await.expect("feed request");
        if res.status() != 200 {
            return Err(res);
        }
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        assert_eq!(res.headers()["cache-control"], "no-store");
        Ok(FeedClient {
            res,
            parser: SseParser::new(64 << 20),
            ready: Default::default(),
        })
    }

    /// The next event, or `None` when none arrives within `within` (or the stream ended).
    pub async fn next_within(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            let chunk = tokio::time::timeout_at(deadline, self.res.chunk())
                .await
                .ok()?;
            match chunk {
                Ok(Some(bytes)) => self
                    .ready
                    .extend(self.parser.push(&bytes).expect("event within bounds")),
                _ => return None,
            }
        }
    }

    /// The next event that is not a heartbeat, waiting up to 10 s.
    pub async fn next_non_heartbeat(&mut self) -> SseEvent {
        loop {
            let e = self
                .next_within(Duration::from_secs(10))
                .await
                .expect("a feed event within 10 s");
            if e.event != shared::feed::HEARTBEAT {
                return e;
            }
        }
    }
}
