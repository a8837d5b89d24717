//! Just enough HTTP/1.1 for the control API: one request per connection, the
//! request line parsed strictly, headers read (bounded) and ignored, no body,
//! and a JSON answer with `Connection: close`.

use std::io;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest request head (request line and headers) accepted.
pub const MAX_HEAD: usize = 8 * 1024;

/// The longest request target accepted.
const MAX_TARGET: usize = 256;

/// A parsed request.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The path, without the query string.
    pub path: String,
}

/// Why a request could not be read.
#[derive(Debug)]
pub enum BadRequest {
    /// The socket failed or closed early.
    Io(io::Error),
    /// The request is not acceptable HTTP (answered with 400).
    Invalid(&'static str),
}

/// Reads a request head from `stream` (up to the blank line) and parses it.
pub async fn read_request<R: AsyncReadExt + Unpin>(stream: &mut R) -> Result<Request, BadRequest> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = find_head_end(&head) {
            return parse_head(head.get(..end).unwrap_or_default());
        }
        if head.len() >= MAX_HEAD {
            return Err(BadRequest::Invalid("request head too long"));
        }
        let n = stream.read(&mut chunk).await.map_err(BadRequest::Io)?;
        if n == 0 {
            return Err(BadRequest::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        head.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// The offset of the blank line ending the head (`\r\n\r\n`, or a bare `\n\n`).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Parses the request line of a head; the headers are ignored.
pub fn parse_head(head: &[u8]) -> Result<Request, BadRequest> {
    let head = std::str::from_utf8(head).map_err(|_| BadRequest::Invalid("not UTF-8"))?;
    let line = head.lines().next().unwrap_or_default();
    let mut words = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(BadRequest::Invalid("malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(BadRequest::Invalid("malformed method"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(BadRequest::Invalid("unsupported HTTP version"));
    }
    if !target.starts_with('/') || target.len() > MAX_TARGET {
        return Err(BadRequest::Invalid("malformed request target"));
    }
    let path = target.split(['?', '#']).next().unwrap_or_default();
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(BadRequest::Invalid("malformed request target"));
    }
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
    })
}

/// The reason phrase of the status codes the control API uses.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Formats a complete response with a JSON body.
pub fn format_response(status: u16, body: &Value) -> Vec<u8> {
    let body = format!("{body}\n");
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Writes a response and shuts the connection down.
pub async fn write_response<W: AsyncWriteExt + Unpin>(
    stream: &mut W,
    status: u16,
    body: &Value,
) -> io::Result<()> {
    stream.write_all(&format_response(status, body)).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Request, &'static str> {
        parse_head(text.as_bytes()).map_err(|e| match e {
            BadRequest::Invalid(why) => why,
            BadRequest::Io(_) => "io",
        })
    }

    #[test]
    fn request_lines() {
        assert_eq!(
            parse("GET /usb1/power/on?x=1 HTTP/1.1\r\nHost: a"),
            Ok(Request {
                method: "GET".into(),
                path: "/usb1/power/on".into()
            })
        );
        assert!(parse("POST / HTTP/1.0").is_ok());
        for bad in [
            "",
            "GET",
            "GET /",
            "GET / HTTP/2",
            "get / HTTP/1.1",
            "GET  / HTTP/1.1",
            "GET x HTTP/1.1",
            "GET / HTTP/1.1 extra",
            "GET /a\tb HTTP/1.1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("GET /{} HTTP/1.1", "a".repeat(300));
        assert!(parse(&long).is_err());
    }

    #[tokio::test]
    async fn reads_up_to_the_blank_line_with_a_limit() {
        let mut ok: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(read_request(&mut ok).await.is_ok());
        let mut lf: &[u8] = b"GET /usb1 HTTP/1.0\n\n";
        assert_eq!(read_request(&mut lf).await.unwrap().path, "/usb1");
        let mut short: &[u8] = b"GET / HTTP/1.1\r\n";
        assert!(matches!(
            read_request(&mut short).await,
            Err(BadRequest::Io(_))
        ));
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        let mut huge = huge.as_bytes();
        assert!(matches!(
            read_request(&mut huge).await,
            Err(BadRequest::Invalid(_))
        ));
    }

    #[test]
    fn responses_have_a_length_and_close() {
        let text = String::from_utf8(format_response(404, &serde_json::json!({"a": 1}))).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains("Content-Length: 8\r\n"), "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n{\"a\":1}\n"), "{text}");
    }
}
