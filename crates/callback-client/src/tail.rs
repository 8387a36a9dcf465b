//! Attempts as they happen: the server-sent events of
//! `GET /api/v1/attempts/stream`.

use crate::client::Client;
use crate::error::Error;
use crate::ops;
use crate::types::{LiveAttempt, TailEvent, TailFilter};
use futures_util::{Stream, StreamExt};

impl Client {
    /// The attempts the server makes from now on, as they end, until the
    /// stream is dropped. A stream shows the attempts of the instance it
    /// reaches.
    ///
    /// ```no_run
    /// # async fn run(client: callback_client::Client) -> Result<(), callback_client::Error> {
    /// use futures_util::StreamExt;
    /// let mut tail = std::pin::pin!(client.tail(&Default::default()).await?);
    /// while let Some(event) = tail.next().await {
    ///     println!("{:?}", event?);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn tail(
        &self,
        filter: &TailFilter,
    ) -> Result<impl Stream<Item = Result<TailEvent, Error>>, Error> {
        let response = self.open_stream(ops::STREAM_ATTEMPTS, filter).await?;
        let chunks = response.bytes_stream();
        Ok(futures_util::stream::unfold(
            (chunks, SseParser::default()),
            |(mut chunks, mut parser)| async move {
                loop {
                    if let Some(event) = parser.next_event() {
                        return Some((event, (chunks, parser)));
                    }
                    match chunks.next().await? {
                        Ok(bytes) => parser.push(&bytes),
                        Err(err) => return Some((Err(Error::Transport(err)), (chunks, parser))),
                    }
                }
            },
        ))
    }
}

/// Splits server-sent events out of the bytes as they come.
#[derive(Default)]
struct SseParser {
    buffer: Vec<u8>,
}

impl SseParser {
    fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next whole event, skipping comments and events of other kinds.
    fn next_event(&mut self) -> Option<Result<TailEvent, Error>> {
        loop {
            let end = self.buffer.windows(2).position(|w| w == b"\n\n")?;
            let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
            let block = String::from_utf8_lossy(&block);
            let mut name = "message";
            let mut data = String::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    name = value.trim();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push_str(value.trim_start());
                }
            }
            let decode = |e: serde_json::Error| Error::Decode {
                status: 200,
                detail: format!("a {name} event: {e}"),
            };
            match name {
                "attempt" => {
                    return Some(
                        serde_json::from_str::<LiveAttempt>(&data)
                            .map(TailEvent::Attempt)
                            .map_err(decode),
                    )
                }
                "missed" => {
                    return Some(
                        serde_json::from_str::<serde_json::Value>(&data)
                            .map(|v| TailEvent::Missed(v["missed"].as_u64().unwrap_or(0)))
                            .map_err(decode),
                    )
                }
                _ => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_read_whole_and_comments_are_skipped() {
        let mut parser = SseParser::default();
        parser.push(b": keep-alive\n\nevent: missed\ndata: {\"mis");
        assert!(parser.next_event().is_none());
        parser.push(b"sed\": 3}\n\nevent: attempt\ndata: {}\n\n");
        assert_eq!(parser.next_event().unwrap().unwrap(), TailEvent::Missed(3));
        assert!(matches!(
            parser.next_event(),
            Some(Err(Error::Decode { .. }))
        ));
        assert!(parser.next_event().is_none());
    }
}
