//! The control API in process, over real sockets: power switches on a real
//! USB/IP server (raw OP_REQ_IMPORT over TCP), the HTTP front end and its
//! refusals (what a browser sends on another site's behalf), the bearer
//! token, the Unix socket, and the connection limits.

// Test code: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use ferrokey::platform::UvStatus;
use firmware_sim::control::guard::{normalize_host, normalize_origin, Token};
use firmware_sim::control::listen::Limits;
use firmware_sim::control::{Bound, ControlListen, ControlServer, Guard};
use firmware_sim::fleet::{Fleet, FleetConfig, KeyRef};
use firmware_sim::key::KeyOptions;
use firmware_sim::presence::UvMode;
use firmware_sim::usbip::{BackgroundServer, Server};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// A fleet of real keys on a USB/IP server, in a temporary state directory.
struct Rig {
    _tmp: tempfile::TempDir,
    fleet: Fleet,
    server: Option<BackgroundServer>,
}

impl Rig {
    /// `keys` keys numbered 1.., built from `options`.
    async fn new(keys: u32, options: KeyOptions) -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        let fleet = Fleet::open(&FleetConfig {
            root: tmp.path().join("state"),
            country: "US".into(),
            threads: 1,
            transport: firmware_sim::transport::Transport::Usbip,
        })
        .unwrap();
        for number in 1..=keys {
            fleet.add_numbered(number, options.clone()).await.unwrap();
        }
        let server = Server::bind_with("127.0.0.1:0".parse().unwrap(), fleet.exports())
            .unwrap()
            .spawn()
            .unwrap();
        Rig {
            _tmp: tmp,
            fleet,
            server: Some(server),
        }
    }

    fn usbip(&self) -> SocketAddr {
        self.server.as_ref().unwrap().local_addr()
    }

    /// Serves the control API for this fleet with `guard`.
    fn control(&self, guard: Guard) -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
        let bound = Bound::bind(&ControlListen::Tcp("127.0.0.1:0".parse().unwrap())).unwrap();
        let control = ControlServer::new(bound, guard);
        let addr = control.tcp_addr().unwrap();
        (addr, tokio::spawn(control.serve(self.fleet.clone())))
    }

    fn key(&self, number: u32) -> KeyRef {
        self.fleet.get_by_number(number).unwrap()
    }

    async fn stop(mut self) {
        self.fleet.shutdown().await;
        if let Some(server) = self.server.take() {
            server.stop().unwrap();
        }
    }
}

fn uv_auto() -> KeyOptions {
    KeyOptions {
        uv: UvMode::Auto,
        ..KeyOptions::default()
    }
}

/// OP_REQ_IMPORT of `busid`; the reply status and the still-open stream.
async fn import(addr: SocketAddr, busid: &str) -> (u32, TcpStream) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = vec![0x01, 0x11, 0x80, 0x03, 0, 0, 0, 0];
    let mut id = [0u8; 32];
    id[..busid.len()].copy_from_slice(busid.as_bytes());
    request.extend_from_slice(&id);
    stream.write_all(&request).await.unwrap();
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await.unwrap();
    let status = u32::from_be_bytes(header[4..8].try_into().unwrap());
    if status == 0 {
        let mut record = [0u8; 312];
        stream.read_exact(&mut record).await.unwrap();
    }
    (status, stream)
}

/// Whether the peer closed `stream` within `within`.
async fn closed<S: AsyncRead + Unpin>(stream: &mut S, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(within, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// An HTTP answer: status, lower-case headers, and the body as JSON (Null if
/// there is none or it is not JSON).
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn error(&self) -> &str {
        self.body["value"]["error"].as_str().unwrap_or("")
    }
}

/// Sends `head` (request line and headers, without the blank line) and
/// `body` on a stream, and reads one answer (by Content-Length, so
/// keep-alive connections work).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    head: &str,
    body: &[u8],
) -> Answer {
    let mut request = format!("{head}\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).await.unwrap();
    read_answer(stream).await
}

async fn read_answer<S: AsyncRead + Unpin>(stream: &mut S) -> Answer {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "connection closed before an answer: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed in the body");
        body.extend_from_slice(&chunk[..n]);
    }
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    }
}

/// One request on a fresh connection, with extra header lines.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}",
        addr.port()
    );
    for line in headers {
        head.push_str("\r\n");
        head.push_str(line);
    }
    exchange(&mut stream, &head, body.as_bytes()).await
}

async fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path, &[], "").await
}

async fn post(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "POST", path, &[], "").await
}

#[tokio::test]
async fn power_off_unplugs_and_refuses_imports_until_power_on() {
    let rig = Rig::new(1, KeyOptions::default()).await;
    let (control, control_task) = rig.control(Guard::default());
    let addr = rig.usbip();

    let (status, mut imported) = import(addr, "1-1").await;
    assert_eq!(status, 0);
    let all = get(control, "/").await;
    assert_eq!(all.status, 200);
    assert_eq!(all.header("content-type"), Some("application/json"));
    assert_eq!(all.body["value"]["keys"][0]["power"], "on");
    assert_eq!(all.body["value"]["keys"][0]["attached"], true);

    // The rig's GET form.
    let off = get(control, "/usb1/power/off").await;
    assert_eq!(off.status, 200, "{off:?}");
    assert_eq!(off.body["value"]["power"], "off");
    assert!(
        closed(&mut imported, Duration::from_secs(2)).await,
        "the import survived power-off"
    );
    assert!(!rig.key(1).info().powered);
    let (status, _) = import(addr, "1-1").await;
    assert_ne!(status, 0, "import accepted while powered off");

    // Power-off twice is harmless; power-on (POST form) makes the key importable at once.
    assert_eq!(post(control, "/usb1/power/off").await.status, 200);
    let on = post(control, "/usb1/power/on").await;
    assert_eq!(on.status, 200, "{on:?}");
    assert!(rig.key(1).info().powered);
    let (status, mut again) = import(addr, "1-1").await;
    assert_eq!(status, 0);
    assert!(!closed(&mut again, Duration::from_millis(500)).await);

    assert_eq!(get(control, "/usb1/touch/on").await.status, 200);
    // Presence is changed by POST only; the GET form of a new state change is refused.
    let refused = get(control, "/usb1/presence/deny").await;
    assert_eq!((refused.status, refused.error()), (405, "unknown method"));
    let deny = post(control, "/usb1/presence/deny").await;
    assert_eq!(deny.body["value"]["touch"], "on");
    assert_eq!(deny.body["value"]["presence"], "deny");
    let missing = post(control, "/usb2/power/off").await;
    assert_eq!(
        (missing.status, missing.error()),
        (404, "no such authenticator")
    );
    let bad = post(control, "/usb1/power/up").await;
    assert_eq!((bad.status, bad.error()), (400, "invalid argument"));
    let nowhere = get(control, "/favicon.ico").await;
    assert_eq!((nowhere.status, nowhere.error()), (404, "unknown command"));
    // Started with uv off: there is no built-in UV to script.
    let uv = post(control, "/usb1/uv/approve").await;
    assert_eq!((uv.status, uv.error()), (409, "unsupported operation"));
    assert_eq!(get(control, "/usb1").await.body["value"]["uv"], "off");

    drop(again);
    drop(imported);
    control_task.abort();
    rig.stop().await;
}

#[tokio::test]
async fn malformed_http_and_unknown_methods_are_refused() {
    let rig = Rig::new(1, KeyOptions::default()).await;
    let (control, task) = rig.control(Guard::default());
    let mut stream = TcpStream::connect(control).await.unwrap();
    stream.write_all(b"HELLO\r\n\r\n").await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    let put = request(control, "PUT", "/", &[], "").await;
    assert_eq!((put.status, put.error()), (405, "unknown method"));
    // A head larger than the limit is refused, not buffered.
    let huge = format!("X-Big: {}", "a".repeat(64 * 1024));
    let mut stream = TcpStream::connect(control).await.unwrap();
    let head = format!("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n{huge}\r\n\r\n");
    let _ = stream.write_all(head.as_bytes()).await;
    let mut text = Vec::new();
    let _ = stream.read_to_end(&mut text).await;
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431 "),
        "{text}"
    );
    // A JSON body above the limit is refused without being buffered whole.
    let big = format!("{{\"on\": true, \"x\": \"{}\"}}", "a".repeat(300 * 1024));
    let json = ["Content-Type: application/json"];
    let answer = request(
        control,
        "POST",
        "/webauthn/authenticator/1/touch",
        &json,
        &big,
    )
    .await;
    assert_eq!(
        (answer.status, answer.error()),
        (413, "invalid argument"),
        "{answer:?}"
    );
    let form = ["Content-Type: application/x-www-form-urlencoded"];
    let answer = request(
        control,
        "POST",
        "/webauthn/authenticator/1/touch",
        &form,
        "on=1",
    )
    .await;
    assert_eq!((answer.status, answer.error()), (415, "invalid argument"));
    task.abort();
    rig.stop().await;
}

#[tokio::test]
async fn uv_override_is_scriptable_when_built_in_uv_is_on() {
    let rig = Rig::new(1, uv_auto()).await;
    let (control, task) = rig.control(Guard::default());
    let key = rig.key(1);

    assert_eq!(get(control, "/usb1").await.body["value"]["uv"], "auto");
    let deny = post(control, "/usb1/uv/deny").await;
    assert_eq!(deny.status, 200, "{deny:?}");
    assert_eq!(deny.body["value"]["uv"], "deny");
    assert_eq!(key.switch().uv_policy(), Some(UvStatus::Failed));
    assert_eq!(
        post(control, "/usb1/uv/approve").await.body["value"]["uv"],
        "approve"
    );
    assert_eq!(key.switch().uv_policy(), Some(UvStatus::Verified));
    assert_eq!(
        post(control, "/usb1/uv/default").await.body["value"]["uv"],
        "auto"
    );
    assert_eq!(key.switch().uv_policy(), None);
    assert_eq!(post(control, "/usb1/uv/maybe").await.status, 400);
    task.abort();
    rig.stop().await;
}

/// A refusal must change nothing: the key stays powered and the button up.
async fn assert_untouched(control: SocketAddr, key: &KeyRef) {
    let status = get(control, "/usb1").await;
    assert_eq!(status.body["value"]["power"], "on", "{status:?}");
    assert!(!key.switch().is_touched());
    assert_eq!(key.switch().policy(), None);
}

#[tokio::test]
async fn requests_a_browser_sends_for_another_site_are_refused() {
    let rig = Rig::new(1, KeyOptions::default()).await;
    let (control, task) = rig.control(Guard::default());
    let key = rig.key(1);
    let port = control.port();

    // <img src="http://127.0.0.1:PORT/usb1/power/off"> in a page of another site.
    let img = [
        "Sec-Fetch-Site: cross-site",
        "Sec-Fetch-Mode: no-cors",
        "Sec-Fetch-Dest: image",
        "Referer: https://evil.example/",
    ];
    let answer = request(control, "GET", "/usb1/power/off", &img, "").await;
    assert_eq!(
        (answer.status, answer.error()),
        (403, "forbidden"),
        "{answer:?}"
    );
    // Even a page on another localhost port (same-site) is refused.
    let same_site = ["Sec-Fetch-Site: same-site", "Sec-Fetch-Mode: no-cors"];
    assert_eq!(
        request(control, "GET", "/usb1/touch/on", &same_site, "")
            .await
            .status,
        403
    );
    // A cross-site fetch()/form POST carries an Origin.
    let fetch = [
        "Origin: https://evil.example",
        "Sec-Fetch-Site: cross-site",
        "Sec-Fetch-Mode: cors",
        "Content-Type: text/plain",
    ];
    assert_eq!(
        request(control, "POST", "/usb1/presence/approve", &fetch, "x")
            .await
            .status,
        403
    );
    let json_fetch = [
        "Origin: https://evil.example",
        "Sec-Fetch-Site: cross-site",
        "Content-Type: application/json",
    ];
    let body = r#"{"protocol": "ctap2", "transport": "usb"}"#;
    assert_eq!(
        request(
            control,
            "POST",
            "/webauthn/authenticator",
            &json_fetch,
            body
        )
        .await
        .status,
        403
    );
    let old_browser_form = [
        "Origin: http://evil.example",
        "Content-Type: application/x-www-form-urlencoded",
    ];
    assert_eq!(
        request(control, "POST", "/usb1/power/off", &old_browser_form, "a=b")
            .await
            .status,
        403
    );
    // DNS rebinding: the page's own name now resolves to 127.0.0.1.
    let mut stream = TcpStream::connect(control).await.unwrap();
    let rebound = exchange(
        &mut stream,
        &format!("GET /usb1/power/off HTTP/1.1\r\nHost: rebind.evil.example:{port}"),
        b"",
    )
    .await;
    assert_eq!((rebound.status, rebound.error()), (403, "forbidden"));
    assert!(rebound.body["value"]["message"]
        .as_str()
        .unwrap()
        .contains("rebind.evil.example"));
    assert_untouched(control, &key).await;
    assert_eq!(rig.fleet.list().len(), 1, "a refused request added a key");

    // What must still work: a person typing the URL, and non-browser clients
    // with any loopback name.
    let typed = ["Sec-Fetch-Site: none", "Sec-Fetch-Mode: navigate"];
    assert_eq!(
        request(control, "GET", "/usb1", &typed, "").await.status,
        200
    );
    for host in ["localhost", "[::1]", "127.0.0.1"] {
        let mut stream = TcpStream::connect(control).await.unwrap();
        let head = format!("GET /usb1 HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: curl/8.0");
        assert_eq!(
            exchange(&mut stream, &head, b"").await.status,
            200,
            "{host}"
        );
    }
    task.abort();
    rig.stop().await;
}

#[tokio::test]
async fn an_allowed_origin_gets_cors_and_others_do_not() {
    let rig = Rig::new(1, KeyOptions::default()).await;
    let origin = normalize_origin("http://localhost:3000").unwrap();
    let guard = Guard::new(
        vec![origin],
        vec![normalize_host("10.0.2.2").unwrap()],
        None,
    );
    let (control, task) = rig.control(guard);
    let key = rig.key(1);

    let preflight = [
        "Origin: http://localhost:3000",
        "Access-Control-Request-Method: POST",
        "Access-Control-Request-Headers: content-type",
        "Sec-Fetch-Site: same-site",
        "Sec-Fetch-Mode: cors",
    ];
    let answer = request(control, "OPTIONS", "/usb1/touch/on", &preflight, "").await;
    assert!(answer.status == 200 || answer.status == 204, "{answer:?}");
    assert_eq!(
        answer.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    let page = [
        "Origin: http://localhost:3000",
        "Sec-Fetch-Site: same-site",
        "Sec-Fetch-Mode: cors",
    ];
    let touched = request(control, "POST", "/usb1/touch/on", &page, "").await;
    assert_eq!(touched.status, 200, "{touched:?}");
    assert_eq!(
        touched.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert!(key.switch().is_touched());
    let other = ["Origin: http://localhost:3001", "Sec-Fetch-Site: same-site"];
    assert_eq!(
        request(control, "POST", "/usb1/touch/off", &other, "")
            .await
            .status,
        403
    );
    assert!(key.switch().is_touched());
    // The QEMU guest's name for the host, explicitly allowed.
    let mut stream = TcpStream::connect(control).await.unwrap();
    let head = format!(
        "GET /usb1/touch/off HTTP/1.1\r\nHost: 10.0.2.2:{}",
        control.port()
    );
    assert_eq!(exchange(&mut stream, &head, b"").await.status, 200);
    assert!(!key.switch().is_touched());
    task.abort();
    rig.stop().await;
}

#[tokio::test]
async fn the_bearer_token_is_required_when_configured() {
    let rig = Rig::new(1, KeyOptions::default()).await;
    let token = Token::new("s3cret-token-for-tests-0123456789").unwrap();
    let (control, task) = rig.control(Guard::new(vec![], vec![], Some(token)));
    let key = rig.key(1);

    let none = post(control, "/usb1/touch/on").await;
    assert_eq!((none.status, none.error()), (401, "unauthorized"));
    assert!(none
        .header("www-authenticate")
        .unwrap()
        .starts_with("Bearer"));
    let wrong = ["Authorization: Bearer s3cret-token-for-tests-0123456788"];
    assert_eq!(
        request(control, "POST", "/usb1/touch/on", &wrong, "")
            .await
            .status,
        401
    );
    assert!(!key.switch().is_touched());
    let right = ["Authorization: Bearer s3cret-token-for-tests-0123456789"];
    assert_eq!(
        request(control, "POST", "/usb1/touch/on", &right, "")
            .await
            .status,
        200
    );
    assert!(key.switch().is_touched());
    assert_eq!(
        request(control, "GET", "/openapi.json", &right, "")
            .await
            .status,
        200
    );
    assert_eq!(get(control, "/openapi.json").await.status, 401);
    task.abort();
    rig.stop().await;
}

#[tokio::test]
async fn a_unix_socket_serves_its_owner() {
    let rig = Rig::new(1, KeyOptions::default()).await;
    let key = rig.key(1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.sock");
    let bound = Bound::bind(&ControlListen::Unix(path.clone())).unwrap();
    let control = ControlServer::new(bound, Guard::default());
    assert_eq!(
        control.describe().unwrap(),
        format!("unix:{}", path.display())
    );
    let task = tokio::spawn(control.serve(rig.fleet.clone()));

    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let mut stream = UnixStream::connect(&path).await.unwrap();
    // curl --unix-socket sends Host: localhost; any Host is fine on a socket.
    let answer = exchange(
        &mut stream,
        "POST /usb1/touch/on HTTP/1.1\r\nHost: localhost",
        b"",
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(key.switch().is_touched());
    // The Origin checks still apply.
    let refused = exchange(
        &mut stream,
        "POST /usb1/touch/off HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example",
        b"",
    )
    .await;
    assert_eq!(refused.status, 403);
    task.abort();
    let _ = task.await;
    assert!(!path.exists(), "the socket file outlived the server");
    rig.stop().await;
}

#[tokio::test]
async fn connections_are_bounded_and_idle_ones_closed() {
    let rig = Rig::new(1, KeyOptions::default()).await;
    let bound = Bound::bind(&ControlListen::Tcp("127.0.0.1:0".parse().unwrap())).unwrap();
    let limits = Limits {
        max_connections: 4,
        head_timeout: Duration::from_millis(500),
    };
    let control = ControlServer::new(bound, Guard::default()).with_limits(limits);
    let addr = control.tcp_addr().unwrap();
    let task = tokio::spawn(control.serve(rig.fleet.clone()));

    // Keep-alive: several requests on one connection.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    for _ in 0..3 {
        assert_eq!(
            exchange(&mut kept, "GET /usb1 HTTP/1.1\r\nHost: 127.0.0.1", b"")
                .await
                .status,
            200
        );
    }
    // Four connections are served at once; a fifth is closed at once.
    let mut idle = vec![kept];
    for _ in 0..3 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut fifth = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed(&mut fifth, Duration::from_millis(300)).await,
        "a fifth connection was served"
    );
    // Idle and slow clients are dropped after the head timeout, freeing their slots.
    idle[1].write_all(b"GET / HTTP/1.1\r\nHos").await.unwrap();
    for stream in &mut idle {
        assert!(
            closed(stream, Duration::from_secs(3)).await,
            "an idle connection stayed open"
        );
    }
    assert_eq!(get(addr, "/usb1").await.status, 200);
    task.abort();
    rig.stop().await;
}
