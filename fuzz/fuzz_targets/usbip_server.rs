//! The USB/IP server side: arbitrary byte streams into a real server (the
//! `serve` acceptor and a fleet key's connection state machine: import,
//! URB submit/unlink through the simulated USB stack to the FIDO HID
//! interface), over a loopback TCP connection per input.
//!
//! Invariants: no panic anywhere in the process (key threads included);
//! the server closes the connection once the client stopped sending (no
//! hang); what it sends back starts with a USB/IP reply of the right version.
#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use firmware_sim::fleet::{Fleet, FleetConfig};
use firmware_sim::key::KeyOptions;
use firmware_sim::usbip::{BackgroundServer, Server};
use libfuzzer_sys::fuzz_target;

struct Setup {
    addr: SocketAddr,
    _server: BackgroundServer,
    _fleet: Fleet,
    _runtime: tokio::runtime::Runtime,
    _root: tempfile::TempDir,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let fleet = Fleet::open(&FleetConfig {
            root: root.path().join("state"),
            country: "US".into(),
            threads: 1,
            transport: firmware_sim::transport::Transport::Usbip,
        })
        .unwrap_or_else(|e| panic!("fleet: {e:#}"));
        let info = runtime
            .block_on(fleet.add_numbered(1, KeyOptions::default()))
            .unwrap_or_else(|e| panic!("key 1: {e}"));
        assert_eq!(info.busid, "1-1", "the seeds import busid 1-1");
        let server = Server::bind_with(SocketAddr::from(([127, 0, 0, 1], 0)), fleet.exports())
            .unwrap_or_else(|e| panic!("bind: {e}"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn: {e}"));
        Setup {
            addr: server.local_addr(),
            _server: server,
            _fleet: fleet,
            _runtime: runtime,
            _root: root,
        }
    })
}

/// How long the server may take to close a connection whose client stopped.
const CLOSE_LIMIT: Duration = Duration::from_secs(10);

fuzz_target!(|data: &[u8]| {
    let setup = setup();
    let mut stream = TcpStream::connect(setup.addr).unwrap_or_else(|e| panic!("connect: {e}"));
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    // The server may close early (malformed input): a failed write is fine.
    let _ = stream.write_all(data);
    let _ = stream.shutdown(Shutdown::Write);
    let started = Instant::now();
    let mut reply = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        assert!(
            started.elapsed() < CLOSE_LIMIT,
            "the server kept the connection open {CLOSE_LIMIT:?} after the client stopped"
        );
    }
    if reply.len() >= 2 {
        assert_eq!(
            &reply[..2],
            &[0x01, 0x11],
            "reply with a wrong USB/IP version"
        );
    }
});
