//! The control API in process: power switches on a real USB/IP server (raw
//! OP_REQ_IMPORT over TCP), the HTTP front end, and the presence switch.

// Test code: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ferrokey::platform::UvStatus;
use firmware_sim::control::{self, ControlTarget};
use firmware_sim::key::ReportCore;
use firmware_sim::presence::{PresenceSwitch, UvMode};
use firmware_sim::usb::hid::REPORT_SIZE;
use firmware_sim::usbip::{Notify, Server, UsbIdentity};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A core that only counts its power cycles.
struct Counting {
    offs: Arc<AtomicU32>,
    ons: Arc<AtomicU32>,
}

impl ReportCore for Counting {
    fn handle_report(&mut self, _: &[u8], _: u64) {}
    fn next_report(&mut self) -> Option<[u8; REPORT_SIZE]> {
        None
    }
    fn tick(&mut self, _: u64) {}
    fn next_deadline(&self) -> Option<u64> {
        None
    }
    fn reset(&mut self) {}
    fn power_off(&mut self) {
        self.offs.fetch_add(1, Ordering::SeqCst);
    }
    fn power_on(&mut self) -> bool {
        self.ons.fetch_add(1, Ordering::SeqCst);
        true
    }
}

/// A server with one [`Counting`] key (busid 1-1): the server, the key's
/// wake-up, and its power-off and power-on counters.
async fn counting_server() -> (Server, Arc<Notify>, Arc<AtomicU32>, Arc<AtomicU32>) {
    let offs = Arc::new(AtomicU32::new(0));
    let ons = Arc::new(AtomicU32::new(0));
    let wake = Arc::new(Notify::new());
    let mut server = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let core = Counting {
        offs: offs.clone(),
        ons: ons.clone(),
    };
    server.add_key(identity(), core, wake.clone()).unwrap();
    (server, wake, offs, ons)
}

fn identity() -> UsbIdentity {
    UsbIdentity {
        vendor_id: 0x1209,
        product_id: 0x000A,
        device_release: 0x0100,
        manufacturer: "m".into(),
        product: "p".into(),
        serial: "CTRL0001".into(),
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

/// Whether the server closed `stream` within a second.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Serves the control API for key 1 of `server` (presence mode "auto").
fn serve_control(
    server: &Server,
    presence: PresenceSwitch,
    uv: UvMode,
) -> (SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>) {
    let targets = server
        .key_switches()
        .into_iter()
        .map(|power| ControlTarget {
            number: 1,
            power,
            presence: presence.clone(),
            mode: "auto".into(),
            uv,
        })
        .collect::<Vec<_>>();
    let listener = control::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let control_addr = listener.local_addr().unwrap();
    (
        control_addr,
        tokio::spawn(control::serve(listener, targets)),
    )
}

/// One GET through the HTTP front end: (status line, body).
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[tokio::test]
async fn power_off_unplugs_and_refuses_imports_until_power_on() {
    let (server, wake, offs, ons) = counting_server().await;
    let presence = PresenceSwitch::new(wake.clone());
    let (control_addr, control_task) = serve_control(&server, presence, UvMode::Off);
    let background = server.spawn().unwrap();
    let addr = background.local_addr();

    let (status, mut imported) = import(addr, "1-1").await;
    assert_eq!(status, 0);
    let (line, body) = get(control_addr, "/").await;
    assert_eq!(line, "HTTP/1.1 200 OK");
    assert!(body.contains(r#""power":"on""#), "{body}");
    assert!(body.contains(r#""attached":true"#), "{body}");

    let (line, body) = get(control_addr, "/usb1/power/off").await;
    assert_eq!(line, "HTTP/1.1 200 OK", "{body}");
    assert!(body.contains(r#""power":"off""#), "{body}");
    assert!(
        closed_by_server(&mut imported).await,
        "the import survived power-off"
    );
    assert_eq!(offs.load(Ordering::SeqCst), 1);
    let (status, _) = import(addr, "1-1").await;
    assert_ne!(status, 0, "import accepted while powered off");

    // Power-off twice is harmless; power-on makes the key importable at once.
    assert_eq!(
        get(control_addr, "/usb1/power/off").await.0,
        "HTTP/1.1 200 OK"
    );
    let (line, body) = get(control_addr, "/usb1/power/on").await;
    assert_eq!(line, "HTTP/1.1 200 OK", "{body}");
    assert_eq!(ons.load(Ordering::SeqCst), 1);
    assert_eq!(offs.load(Ordering::SeqCst), 1);
    let (status, mut again) = import(addr, "1-1").await;
    assert_eq!(status, 0);
    assert!(!closed_by_server(&mut again).await);

    let (line, _) = get(control_addr, "/usb1/touch/on").await;
    assert_eq!(line, "HTTP/1.1 200 OK");
    let (_, body) = get(control_addr, "/usb1/presence/deny").await;
    assert!(body.contains(r#""touch":"on""#), "{body}");
    assert!(body.contains(r#""presence":"deny""#), "{body}");
    assert_eq!(
        get(control_addr, "/usb2/power/off").await.0,
        "HTTP/1.1 404 Not Found"
    );
    assert!(get(control_addr, "/usb1/power/up").await.0.contains("404"));
    // Started with --uv off: there is no built-in UV to script.
    let (line, body) = get(control_addr, "/usb1/uv/approve").await;
    assert_eq!(line, "HTTP/1.1 409 Conflict", "{body}");
    assert!(body.contains("--uv off"), "{body}");
    assert!(get(control_addr, "/usb1").await.1.contains(r#""uv":"off""#));

    drop(again);
    drop(imported);
    control_task.abort();
    background.stop().unwrap();
}

#[tokio::test]
async fn malformed_http_is_refused() {
    let listener = control::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(control::serve(listener, Vec::new()));
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"HELLO\r\n\r\n").await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"PUT / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 405 "), "{text}");
    task.abort();
}

#[tokio::test]
async fn uv_override_is_scriptable_when_built_in_uv_is_on() {
    let (server, wake, _, _) = counting_server().await;
    let presence = PresenceSwitch::new(wake.clone());
    let (control_addr, control_task) = serve_control(&server, presence.clone(), UvMode::Auto);

    assert!(get(control_addr, "/usb1")
        .await
        .1
        .contains(r#""uv":"auto""#));
    let (line, body) = get(control_addr, "/usb1/uv/deny").await;
    assert_eq!(line, "HTTP/1.1 200 OK", "{body}");
    assert!(body.contains(r#""uv":"deny""#), "{body}");
    assert_eq!(presence.uv_policy(), Some(UvStatus::Failed));
    let (_, body) = get(control_addr, "/usb1/uv/approve").await;
    assert!(body.contains(r#""uv":"approve""#), "{body}");
    assert_eq!(presence.uv_policy(), Some(UvStatus::Verified));
    let (_, body) = get(control_addr, "/usb1/uv/default").await;
    assert!(body.contains(r#""uv":"auto""#), "{body}");
    assert_eq!(presence.uv_policy(), None);
    assert!(get(control_addr, "/usb1/uv/maybe").await.0.contains("404"));

    control_task.abort();
}

#[tokio::test]
async fn a_detach_power_cycles_the_core_and_the_key_stays_importable() {
    let (server, _, offs, ons) = counting_server().await;
    let background = server.spawn().unwrap();
    let addr = background.local_addr();

    for cycle in 1..=3 {
        let (status, imported) = import(addr, "1-1").await;
        assert_eq!(status, 0, "import {cycle}");
        drop(imported);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while ons.load(Ordering::SeqCst) < cycle {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no power cycle after detach {cycle}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(offs.load(Ordering::SeqCst), cycle);
    }
    background.stop().unwrap();
}
