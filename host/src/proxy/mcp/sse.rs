//! `text/event-stream`, as far as a gateway must read it: split a stream
//! into whole events (so an event is scrubbed in full, whatever chunks it
//! arrived in), and read an event's data.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame};
use tokio::sync::mpsc;

/// Collects bytes until an event ends (a blank line), then hands out the
/// whole event, terminator included.
#[derive(Default)]
pub struct EventSplitter {
    buf: Vec<u8>,
}

impl EventSplitter {
    /// Add a chunk; returns every event it completed, in order.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Vec<u8>> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = event_end(&self.buf) {
            let rest = self.buf.split_off(end);
            events.push(std::mem::replace(&mut self.buf, rest));
        }
        events
    }

    /// Bytes of an event not yet complete.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// What is left when the stream ends (an unterminated last event).
    pub fn finish(self) -> Option<Vec<u8>> {
        (!self.buf.is_empty()).then_some(self.buf)
    }
}

/// The index just past the first blank line (`\n\n`, `\r\n\r\n`).
fn event_end(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The data of one event: its `data:` lines joined by `\n`; `None` when it
/// has none (a comment or a bare `id:`).
pub fn event_data(event: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(event);
    let mut data: Option<String> = None;
    for line in text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)) {
        let value = match line.strip_prefix("data") {
            Some("") => "",
            Some(v) if v.starts_with(':') => v[1..].strip_prefix(' ').unwrap_or(&v[1..]),
            _ => continue,
        };
        match &mut data {
            Some(d) => {
                d.push('\n');
                d.push_str(value);
            }
            None => data = Some(value.to_string()),
        }
    }
    data
}

/// Every JSON value carried by the events of a whole `text/event-stream` body.
pub fn messages(body: &[u8]) -> Vec<serde_json::Value> {
    let mut splitter = EventSplitter::default();
    let mut events = splitter.push(body);
    events.extend(splitter.finish());
    events
        .iter()
        .filter_map(|e| event_data(e))
        .filter_map(|d| serde_json::from_str(&d).ok())
        .collect()
}

/// One SSE event holding `data` (a JSON text on one line).
pub fn event(data: &str) -> Bytes {
    Bytes::from(format!("event: message\ndata: {data}\n\n"))
}

/// A response body fed by a task: the MCP stream relay writes scrubbed
/// events into it as they come. It ends when the task drops its sender.
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl ChannelBody {
    pub fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        ChannelBody { rx }
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_split_across_chunks_comes_out_whole() {
        let mut s = EventSplitter::default();
        assert!(s.push(b"event: message\nda").is_empty());
        assert!(s.push(b"ta: {\"a\":").is_empty());
        let events = s.push(b"1}\n\nevent: message\r\ndata: 2\r\n\r\ndata: 3");
        assert_eq!(events.len(), 2);
        assert_eq!(event_data(&events[0]).as_deref(), Some("{\"a\":1}"));
        assert_eq!(event_data(&events[1]).as_deref(), Some("2"));
        assert_eq!(s.pending(), 7);
        assert_eq!(s.finish().as_deref(), Some(&b"data: 3"[..]));
    }

    #[test]
    fn data_lines_join_and_comments_carry_none() {
        assert_eq!(
            event_data(b"data: a\ndata:b\ndata\n\n").as_deref(),
            Some("a\nb\n")
        );
        assert_eq!(event_data(b": keep-alive\n\n"), None);
        let body = b"event: message\ndata: {\"id\":1}\n\n: c\n\nevent: message\ndata: {\"id\":2}\n\n";
        assert_eq!(messages(body).len(), 2);
    }
}
