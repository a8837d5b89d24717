//! `ferrokey events [--control URL] [--authenticator ID]`: follows a running
//! server's event stream (`GET /events`, Server-Sent Events) and prints each
//! event as one JSON line on standard output, until the server goes away or
//! the user interrupts.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use axum::body::Body;
use axum::http::{header, Request};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

/// Where a control API is: `http://HOST:PORT[/]` or `unix:PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// TCP: the `host:port` authority.
    Tcp(String),
    /// A Unix socket.
    Unix(PathBuf),
}

impl Endpoint {
    /// Parses `http://HOST:PORT[/]`, `HOST:PORT` or `unix:PATH`.
    pub fn parse(text: &str) -> Result<Self> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                bail!("unix: needs a path");
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let rest = text.strip_prefix("http://").unwrap_or(text);
        let authority = rest.trim_end_matches('/');
        if authority.is_empty()
            || authority.contains('/')
            || !authority.contains(':')
            || text.starts_with("https://")
        {
            bail!("{text:?} is not http://HOST:PORT or unix:PATH");
        }
        Ok(Endpoint::Tcp(authority.to_string()))
    }
}

/// One SSE data payload at a time, out of a byte stream.
#[derive(Debug, Default)]
pub struct SseParser {
    buffer: String,
    data: Vec<String>,
}

impl SseParser {
    /// Feeds bytes; returns the data of every event they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.buffer.push_str(&String::from_utf8_lossy(bytes));
        let mut events = Vec::new();
        while let Some(end) = self.buffer.find('\n') {
            let line: String = self.buffer.drain(..=end).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    events.push(self.data.join("\n"));
                    self.data.clear();
                }
            } else if let Some(value) = line.strip_prefix("data:") {
                self.data
                    .push(value.strip_prefix(' ').unwrap_or(value).to_string());
            }
            // `event:`, `id:`, `retry:` and comments (keep-alives) carry nothing to print.
        }
        events
    }
}

/// Follows the event stream at `endpoint` (`path` is `/events` or an
/// authenticator's), calling `each` with every event's JSON line.
pub async fn follow(
    endpoint: &Endpoint,
    path: &str,
    token: Option<&str>,
    mut each: impl FnMut(&str),
) -> Result<()> {
    match endpoint {
        Endpoint::Tcp(authority) => {
            let stream = TcpStream::connect(authority)
                .await
                .with_context(|| format!("connecting to {authority}"))?;
            stream_events(stream, authority, path, token, &mut each).await
        }
        Endpoint::Unix(socket) => {
            let stream = UnixStream::connect(socket)
                .await
                .with_context(|| format!("connecting to {}", socket.display()))?;
            stream_events(stream, "localhost", path, token, &mut each).await
        }
    }
}

async fn stream_events<S>(
    stream: S,
    host: &str,
    path: &str,
    token: Option<&str>,
    each: &mut impl FnMut(&str),
) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake with the control API")?;
    let driver = tokio::spawn(connection);
    let mut request = Request::get(path)
        .header(header::HOST, host)
        .header(header::ACCEPT, "text/event-stream");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = sender
        .send_request(
            request
                .body(Body::empty())
                .context("building the request")?,
        )
        .await
        .context("sending the request")?;
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        driver.abort();
        bail!(
            "the control API answered {status}: {}",
            String::from_utf8_lossy(&bytes).trim()
        );
    }
    let mut parser = SseParser::default();
    while let Some(frame) = body.frame().await {
        let frame = frame.context("reading the event stream")?;
        if let Some(bytes) = frame.data_ref() {
            for line in parser.push(bytes) {
                each(&line);
            }
        }
    }
    driver.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:8765/").unwrap(),
            Endpoint::Tcp("127.0.0.1:8765".into())
        );
        assert_eq!(
            Endpoint::parse("localhost:1").unwrap(),
            Endpoint::Tcp("localhost:1".into())
        );
        assert_eq!(
            Endpoint::parse("unix:/tmp/s").unwrap(),
            Endpoint::Unix("/tmp/s".into())
        );
        for bad in [
            "",
            "http://",
            "https://a:1",
            "http://a:1/x",
            "unix:",
            "noport",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sse_is_split_into_events_across_chunks() {
        let mut parser = SseParser::default();
        assert!(parser
            .push(b": keep-alive\n\nevent: ctap\ndata: {\"a\"")
            .is_empty());
        assert_eq!(
            parser.push(b":1}\n\nevent: x\r\ndata:2\r\ndata: 3\r\n\r\n"),
            ["{\"a\":1}", "2\n3"]
        );
        assert!(parser.push(b"\n\n").is_empty());
    }
}
