//! Who may drive the control plane: the checks every request passes before
//! any handler runs.
//!
//! A web page must not be able to press the key's button or seed credentials,
//! whatever the browser: the control API refuses what a browser sends on
//! another site's behalf.
//! - `Host` (TCP only): a loopback IP, `localhost` or `*.localhost`, the
//!   address the connection arrived at, or a host named with
//!   `--control-allow-host`. Anything else is DNS rebinding (a page whose name
//!   now resolves to 127.0.0.1) and is refused. A Unix socket skips this check:
//!   no browser can reach one.
//! - `Origin`: when present, it must be one given with
//!   `--control-allow-origin` (exactly: scheme, host and port).
//! - `Sec-Fetch-Site`: without an allowed `Origin`, only `none` (the user
//!   typed the URL) and `same-origin` pass; `same-site` and `cross-site` (an
//!   `<img>`, a form, a fetch from another page, even one on another
//!   localhost port) are refused.
//! - With `--control-token-file`, `Authorization: Bearer TOKEN`, compared in
//!   constant time (SHA-256 of both sides). CORS preflights from an allowed
//!   origin pass without it (browsers never send credentials in a preflight).
//!
//! Clients that are not browsers (curl, python requests/urllib, WebDriver
//! client libraries, python-fido2's test rig) send none of `Origin` or
//! `Sec-Fetch-*` and a loopback `Host`, so they pass.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::reply::{ApiError, ErrorCode};

/// How a connection reached the server; added to every request it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Over TCP, at this local address.
    Tcp(SocketAddr),
    /// Over the Unix socket.
    Unix,
}

/// The bearer token, kept only as its SHA-256 digest.
#[derive(Clone)]
pub struct Token(Zeroizing<[u8; 32]>);

impl Token {
    /// The shortest token accepted, in bytes.
    pub const MIN_LEN: usize = 16;

    /// A token from its text (surrounding whitespace trimmed). Refuses one
    /// shorter than [`Token::MIN_LEN`].
    pub fn new(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.len() < Self::MIN_LEN {
            return Err(format!(
                "the control token must be at least {} characters (e.g. from `openssl rand -hex 32`)",
                Self::MIN_LEN
            ));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the control token must be printable ASCII without spaces".into());
        }
        Ok(Token(Zeroizing::new(
            Sha256::digest(text.as_bytes()).into(),
        )))
    }

    /// Whether `presented` is the token, in time independent of where they differ.
    fn matches(&self, presented: &str) -> bool {
        let digest = Zeroizing::new(<[u8; 32]>::from(Sha256::digest(presented.as_bytes())));
        bool::from(digest.ct_eq(&*self.0))
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

/// The request checks of one control listener.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    allowed_origins: Vec<String>,
    allowed_hosts: Vec<String>,
    token: Option<Token>,
}

impl Guard {
    /// A guard with the given allow-lists (already normalized by
    /// [`normalize_origin`] and [`normalize_host`]) and optional token.
    pub fn new(
        allowed_origins: Vec<String>,
        allowed_hosts: Vec<String>,
        token: Option<Token>,
    ) -> Self {
        Guard {
            allowed_origins,
            allowed_hosts,
            token,
        }
    }

    /// The origins allowed to use the API from a page.
    pub fn allowed_origins(&self) -> &[String] {
        &self.allowed_origins
    }

    /// Checks one request; `Err` is the answer to send instead.
    pub fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
        arrival: Arrival,
    ) -> Result<(), ApiError> {
        if let Arrival::Tcp(local) = arrival {
            self.check_host(headers, local)?;
        }
        let origin_allowed = self.check_origin(headers)?;
        if !origin_allowed {
            check_fetch_site(headers)?;
        }
        let preflight = method == Method::OPTIONS
            && origin_allowed
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if !preflight {
            self.check_token(headers)?;
        }
        Ok(())
    }

    fn check_host(&self, headers: &HeaderMap, local: SocketAddr) -> Result<(), ApiError> {
        // Browsers always send Host; a client without one is not a browser.
        let Some(value) = headers.get(header::HOST) else {
            return Ok(());
        };
        let host = value
            .to_str()
            .ok()
            .and_then(host_name)
            .ok_or_else(|| forbidden("malformed Host header".into()))?;
        let allowed = is_loopback_name(&host)
            || host.parse::<IpAddr>().is_ok_and(|ip| ip == local.ip())
            || self.allowed_hosts.contains(&host);
        if allowed {
            Ok(())
        } else {
            Err(forbidden(format!(
                "Host {host:?} is not this server (a DNS-rebinding page?); use 127.0.0.1 or localhost, \
                 or start ferrokey with --control-allow-host {host}"
            )))
        }
    }

    /// `Ok(true)`: an allowed Origin; `Ok(false)`: no Origin.
    fn check_origin(&self, headers: &HeaderMap) -> Result<bool, ApiError> {
        let Some(value) = headers.get(header::ORIGIN) else {
            return Ok(false);
        };
        let origin = value.to_str().unwrap_or_default().to_ascii_lowercase();
        if origin != "null" && self.allowed_origins.contains(&origin) {
            Ok(true)
        } else {
            Err(forbidden(format!(
                "requests from web pages are refused (Origin {origin:?}); start ferrokey with \
                 --control-allow-origin ORIGIN to let one page use the API"
            )))
        }
    }

    fn check_token(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            });
        match presented {
            Some(text) if token.matches(text) => Ok(()),
            Some(_) => Err(ApiError::new(ErrorCode::Unauthorized, "wrong bearer token")),
            None => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "this control API needs Authorization: Bearer TOKEN (see --control-token-file)",
            )),
        }
    }
}

fn check_fetch_site(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or("?"))
    {
        None | Some("none" | "same-origin") => Ok(()),
        Some(site) => Err(forbidden(format!(
            "requests a browser sends on another site's behalf are refused (Sec-Fetch-Site: {site})"
        ))),
    }
}

fn forbidden(message: String) -> ApiError {
    ApiError::new(ErrorCode::Forbidden, message)
}

/// The host name of a `Host` header value (port removed, lower case, a
/// trailing dot removed). `None` if it is malformed.
fn host_name(value: &str) -> Option<String> {
    let value = value.trim();
    let host = if let Some(rest) = value.strip_prefix('[') {
        // [v6]:port
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        inside
    } else {
        match value.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return None,
            None => value,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'));
    valid.then_some(host)
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.len() <= 5 && text.bytes().all(|b| b.is_ascii_digit())
}

/// Whether a host name always means this machine: a loopback IP literal,
/// `localhost`, or a name under `.localhost` (RFC 6761; browsers resolve
/// those to loopback themselves).
fn is_loopback_name(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Normalizes a `--control-allow-origin` value: `scheme://host[:port]`, lower
/// case, no path. Refuses `*`, `null` and anything with a path or query.
pub fn normalize_origin(text: &str) -> Result<String, String> {
    let lower = text.trim().to_ascii_lowercase();
    let bad = || {
        format!(
            "{text:?} is not an origin: give scheme://host[:port] exactly as the browser sends it \
             (e.g. http://localhost:8080); * and null are not accepted"
        )
    };
    let (scheme, rest) = lower.split_once("://").ok_or_else(bad)?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains(['/', '?', '#', '@'])
    {
        return Err(bad());
    }
    host_name(rest).ok_or_else(bad)?;
    Ok(lower)
}

/// Normalizes a `--control-allow-host` value: a host name or IP address
/// without a port.
pub fn normalize_host(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    let bare = trimmed
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(trimmed);
    match host_name(&format!("[{bare}]")).or_else(|| host_name(bare)) {
        Some(host) if !host.contains(':') || bare.parse::<IpAddr>().is_ok() => Ok(host),
        _ => Err(format!(
            "{text:?} is not a host name or IP address (without a port)"
        )),
    }
}

/// The axum middleware that applies a [`Guard`] to every request.
pub async fn middleware(
    State(guard): State<std::sync::Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    let arrival = request
        .extensions()
        .get::<Arrival>()
        .copied()
        // Requests built in process (tests) arrive like local TCP ones.
        .unwrap_or(Arrival::Tcp(SocketAddr::from(([127, 0, 0, 1], 0))));
    match guard.check(request.method(), request.headers(), arrival) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::warn!(
                method = %request.method(),
                path = %request.uri().path(),
                "control API refused a request: {}",
                refusal.message
            );
            refusal.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const LOCAL: Arrival = Arrival::Tcp(SocketAddr::new(
        IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        4000,
    ));

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn code(
        guard: &Guard,
        method: Method,
        pairs: &[(&'static str, &str)],
        arrival: Arrival,
    ) -> Option<ErrorCode> {
        guard
            .check(&method, &headers(pairs), arrival)
            .err()
            .map(|e| e.code)
    }

    #[test]
    fn host_names_parse() {
        assert_eq!(host_name("127.0.0.1:8080").as_deref(), Some("127.0.0.1"));
        assert_eq!(host_name("[::1]:80").as_deref(), Some("::1"));
        assert_eq!(host_name("[::1]").as_deref(), Some("::1"));
        assert_eq!(host_name("LocalHost.").as_deref(), Some("localhost"));
        assert_eq!(host_name("a.localhost:1").as_deref(), Some("a.localhost"));
        for bad in [
            "",
            ":80",
            "[::1",
            "[::1]x",
            "a b",
            "a:b",
            "evil.com:99999999",
            "a/b",
        ] {
            assert_eq!(host_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn non_browser_clients_pass() {
        let guard = Guard::default();
        // curl, python requests, urllib (the python-fido2 rig), WebDriver clients.
        for host in [
            "127.0.0.1:4000",
            "localhost:4000",
            "[::1]:4000",
            "127.0.0.2",
            "x.localhost",
        ] {
            assert_eq!(
                code(&guard, Method::GET, &[("host", host)], LOCAL),
                None,
                "{host}"
            );
        }
        assert_eq!(code(&guard, Method::POST, &[], LOCAL), None);
        // A person typing the URL into a browser: Sec-Fetch-Site: none.
        assert_eq!(
            code(
                &guard,
                Method::GET,
                &[("host", "localhost:4000"), ("sec-fetch-site", "none")],
                LOCAL
            ),
            None
        );
    }

    #[test]
    fn dns_rebinding_hosts_are_refused() {
        let guard = Guard::default();
        for host in [
            "evil.example:4000",
            "evil.example",
            "10.0.2.2:4000",
            "192.168.1.9",
            "localhost.evil.example",
        ] {
            assert_eq!(
                code(&guard, Method::GET, &[("host", host)], LOCAL),
                Some(ErrorCode::Forbidden),
                "{host}"
            );
        }
        assert_eq!(
            code(&guard, Method::GET, &[("host", "a b")], LOCAL),
            Some(ErrorCode::Forbidden)
        );
        // The address the connection arrived at is this server.
        let lan = Arrival::Tcp("192.168.1.9:4000".parse().unwrap());
        assert_eq!(
            code(&guard, Method::GET, &[("host", "192.168.1.9:4000")], lan),
            None
        );
        // Explicitly allowed hosts (the QEMU guest reaches us as 10.0.2.2).
        let allowing = Guard::new(vec![], vec![normalize_host("10.0.2.2").unwrap()], None);
        assert_eq!(
            code(&allowing, Method::GET, &[("host", "10.0.2.2:4000")], LOCAL),
            None
        );
        // No browser reaches a Unix socket: its Host is not checked.
        assert_eq!(
            code(
                &guard,
                Method::GET,
                &[("host", "evil.example")],
                Arrival::Unix
            ),
            None
        );
    }

    #[test]
    fn cross_site_browser_requests_are_refused() {
        let guard = Guard::default();
        // <img src="http://127.0.0.1:PORT/usb1/power/off"> on another site.
        let img = [
            ("host", "127.0.0.1:4000"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "no-cors"),
        ];
        assert_eq!(
            code(&guard, Method::GET, &img, LOCAL),
            Some(ErrorCode::Forbidden)
        );
        // A page on another localhost port is same-site, and refused too.
        let same_site = [("host", "127.0.0.1:4000"), ("sec-fetch-site", "same-site")];
        assert_eq!(
            code(&guard, Method::GET, &same_site, LOCAL),
            Some(ErrorCode::Forbidden)
        );
        // A cross-site fetch or form POST carries an Origin.
        let fetch = [
            ("host", "127.0.0.1:4000"),
            ("origin", "https://evil.example"),
        ];
        assert_eq!(
            code(&guard, Method::POST, &fetch, LOCAL),
            Some(ErrorCode::Forbidden)
        );
        let null = [("host", "127.0.0.1:4000"), ("origin", "null")];
        assert_eq!(
            code(&guard, Method::POST, &null, LOCAL),
            Some(ErrorCode::Forbidden)
        );
        // Even Sec-Fetch-Site: same-origin does not excuse a foreign Origin.
        let lying = [
            ("origin", "http://localhost:3000"),
            ("sec-fetch-site", "same-origin"),
        ];
        assert_eq!(
            code(&guard, Method::POST, &lying, LOCAL),
            Some(ErrorCode::Forbidden)
        );
    }

    #[test]
    fn an_allowed_origin_may_use_the_api() {
        let origin = normalize_origin("http://LOCALHOST:3000").unwrap();
        let guard = Guard::new(vec![origin], vec![], None);
        let page = [
            ("host", "127.0.0.1:4000"),
            ("origin", "http://localhost:3000"),
            ("sec-fetch-site", "same-site"),
        ];
        assert_eq!(code(&guard, Method::POST, &page, LOCAL), None);
        let other_port = [
            ("host", "127.0.0.1:4000"),
            ("origin", "http://localhost:3001"),
        ];
        assert_eq!(
            code(&guard, Method::POST, &other_port, LOCAL),
            Some(ErrorCode::Forbidden)
        );
    }

    #[test]
    fn the_bearer_token_is_checked() {
        let origin = normalize_origin("http://localhost:3000").unwrap();
        let token = Token::new("0123456789abcdef0123\n").unwrap();
        let guard = Guard::new(vec![origin], vec![], Some(token));
        let host = ("host", "127.0.0.1:4000");
        assert_eq!(
            code(&guard, Method::GET, &[host], LOCAL),
            Some(ErrorCode::Unauthorized)
        );
        let wrong = ("authorization", "Bearer 0123456789abcdef0124");
        assert_eq!(
            code(&guard, Method::GET, &[host, wrong], LOCAL),
            Some(ErrorCode::Unauthorized)
        );
        let basic = ("authorization", "Basic 0123456789abcdef0123");
        assert_eq!(
            code(&guard, Method::GET, &[host, basic], LOCAL),
            Some(ErrorCode::Unauthorized)
        );
        let right = ("authorization", "bearer 0123456789abcdef0123");
        assert_eq!(code(&guard, Method::GET, &[host, right], LOCAL), None);
        // The token does not excuse a foreign page or host.
        let evil = ("origin", "https://evil.example");
        assert_eq!(
            code(&guard, Method::GET, &[host, right, evil], LOCAL),
            Some(ErrorCode::Forbidden)
        );
        // A CORS preflight from the allowed page needs no token...
        let preflight = [
            host,
            ("origin", "http://localhost:3000"),
            ("access-control-request-method", "POST"),
        ];
        assert_eq!(code(&guard, Method::OPTIONS, &preflight, LOCAL), None);
        // ...but a preflight-looking request from elsewhere is refused.
        let foreign = [
            host,
            ("origin", "https://evil.example"),
            ("access-control-request-method", "POST"),
        ];
        assert_eq!(
            code(&guard, Method::OPTIONS, &foreign, LOCAL),
            Some(ErrorCode::Forbidden)
        );
    }

    #[test]
    fn tokens_must_be_long_and_printable() {
        assert!(Token::new("short").is_err());
        assert!(Token::new("0123456789abcdef 0123").is_err());
        assert!(Token::new("  0123456789abcdef  ").is_ok());
        assert_eq!(
            format!("{:?}", Token::new("0123456789abcdef").unwrap()),
            "Token(..)"
        );
    }

    #[test]
    fn allow_lists_are_normalized() {
        assert_eq!(
            normalize_origin("HTTPS://Example.COM").unwrap(),
            "https://example.com"
        );
        assert_eq!(
            normalize_origin("http://[::1]:8080").unwrap(),
            "http://[::1]:8080"
        );
        for bad in [
            "*",
            "null",
            "example.com",
            "http://example.com/",
            "ftp://x",
            "http://",
            "http://a:b@c",
        ] {
            assert!(normalize_origin(bad).is_err(), "{bad}");
        }
        assert_eq!(normalize_host("10.0.2.2").unwrap(), "10.0.2.2");
        assert_eq!(normalize_host("[::1]").unwrap(), "::1");
        assert_eq!(normalize_host("::1").unwrap(), "::1");
        assert_eq!(normalize_host("My-Host.").unwrap(), "my-host");
        for bad in ["", "a:80", "a b", "a/b"] {
            assert!(normalize_host(bad).is_err(), "{bad}");
        }
    }
}
