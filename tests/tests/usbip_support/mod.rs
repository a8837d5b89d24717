//! Shared set-up for the USB/IP integration tests: in-process servers on port 0
//! with a mock app (CTAPHID handled by the real `ferrokey::device::Device`) or the
//! real authenticator, and a minimal CTAPHID framing for INIT/PING.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use ferrokey::app::{App, CallContext, Message, Outcome, Protocol};
use ferrokey::device::{Device, DeviceConfig};
use ferrokey::platform::{Platform, PresenceStatus};
use ferrokey_tests::usbip_client::UsbipClient;
use firmware_sim::usbip::Notify;
use firmware_sim::usbip::{BackgroundServer, Server, UsbIdentity};

/// An app that answers every CBOR/MSG request with CTAP1_ERR_INVALID_COMMAND.
pub struct NullApp;

impl App for NullApp {
    fn handle(&mut self, _: Protocol, _: &[u8], _: CallContext, response: &mut Message) -> Outcome {
        response.clear();
        let _ = response.push(0x01);
        Outcome::Response
    }
    fn request_presence(&mut self, _: u64) {}
    fn poll_presence(&mut self, _: u64) -> PresenceStatus {
        PresenceStatus::Denied
    }
    fn cancel_presence(&mut self) {}
}

/// A USB identity with a distinct serial.
pub fn identity(serial: &str) -> UsbIdentity {
    UsbIdentity {
        vendor_id: 0x1209,
        product_id: 0xF1D0,
        device_release: 0x0123,
        manufacturer: "ferrokey project".into(),
        // Long enough that its string descriptor (2 + 2*49 = 100 bytes) takes two
        // control packets.
        product: "ferrokey simulated FIDO2 security key (test unit)".into(),
        serial: serial.into(),
    }
}

/// A server with `n` mock keys (serials "TEST0001", …), running in the background.
pub fn mock_server(n: usize) -> BackgroundServer {
    let mut server = Server::bind_blocking("127.0.0.1:0".parse().unwrap()).unwrap();
    for i in 0..n {
        let device = Device::new(NullApp, DeviceConfig::default());
        let busid = server
            .add_key(
                identity(&format!("TEST{:04}", i + 1)),
                device,
                Arc::new(Notify::new()),
            )
            .unwrap();
        assert_eq!(busid, format!("1-{}", i + 1));
    }
    server.spawn().unwrap()
}

/// A server with one real authenticator (file storage in `dir`, automatic presence).
pub fn authenticator_server(dir: &std::path::Path) -> BackgroundServer {
    let wake = Arc::new(Notify::new());
    let storage = firmware_sim::storage::FileStorage::open(dir).unwrap();
    let presence = firmware_sim::presence::Presence::auto(wake.clone());
    let platform = Platform {
        storage,
        presence,
        rng: rand::rngs::OsRng,
    };
    let app = ferrokey::authenticator::Authenticator::new(
        platform,
        ferrokey::authenticator::Config::default(),
    )
    .unwrap();
    let device = Device::new(app, DeviceConfig::default());
    let mut server = Server::bind_blocking("127.0.0.1:0".parse().unwrap()).unwrap();
    server.add_key(identity("AUTH0001"), device, wake).unwrap();
    server.spawn().unwrap()
}

/// Imports and enumerates `busid`.
pub fn attach(server: &BackgroundServer, busid: &str) -> UsbipClient {
    let mut client = UsbipClient::import(server.local_addr(), busid)
        .unwrap_or_else(|e| panic!("import {busid}: {e:?}"));
    client.enumerate().unwrap();
    client
}

pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Sends one CTAPHID message (init + continuation packets).
pub fn send_message(client: &mut UsbipClient, cid: u32, cmd: u8, payload: &[u8]) {
    let mut report = [0u8; 64];
    report[..4].copy_from_slice(&cid.to_be_bytes());
    report[4] = 0x80 | cmd;
    report[5..7].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    let first = payload.len().min(57);
    report[7..7 + first].copy_from_slice(&payload[..first]);
    client.send_report(&report).unwrap();
    for (seq, chunk) in payload[first..].chunks(59).enumerate() {
        let mut report = [0u8; 64];
        report[..4].copy_from_slice(&cid.to_be_bytes());
        report[4] = seq as u8;
        report[5..5 + chunk.len()].copy_from_slice(chunk);
        client.send_report(&report).unwrap();
    }
}

/// Reads one CTAPHID message on `cid`, skipping KEEPALIVEs: (cmd, payload).
pub fn recv_message(client: &mut UsbipClient, cid: u32) -> (u8, Vec<u8>) {
    loop {
        let report = client
            .recv_report(TIMEOUT)
            .unwrap()
            .expect("no response report");
        assert_eq!(u32::from_be_bytes(report[..4].try_into().unwrap()), cid);
        let cmd = report[4] & 0x7F;
        assert!(report[4] & 0x80 != 0, "expected an init packet");
        if cmd == 0x3B {
            continue;
        }
        let len = usize::from(u16::from_be_bytes([report[5], report[6]]));
        let mut payload = report[7..7 + len.min(57)].to_vec();
        let mut seq = 0u8;
        while payload.len() < len {
            let report = client
                .recv_report(TIMEOUT)
                .unwrap()
                .expect("missing continuation");
            assert_eq!(report[4], seq, "continuation sequence");
            seq += 1;
            let take = (len - payload.len()).min(59);
            payload.extend_from_slice(&report[5..5 + take]);
        }
        return (cmd, payload);
    }
}

/// CTAPHID INIT on the broadcast channel; returns the new channel id.
pub fn ctaphid_init(client: &mut UsbipClient) -> u32 {
    let nonce = [1, 2, 3, 4, 5, 6, 7, 8];
    send_message(client, 0xFFFF_FFFF, 0x06, &nonce);
    let (cmd, payload) = recv_message(client, 0xFFFF_FFFF);
    assert_eq!(cmd, 0x06);
    assert_eq!(&payload[..8], &nonce);
    u32::from_be_bytes(payload[8..12].try_into().unwrap())
}

/// CTAPHID PING; asserts the echo.
pub fn ctaphid_ping(client: &mut UsbipClient, cid: u32, data: &[u8]) {
    send_message(client, cid, 0x01, data);
    let (cmd, payload) = recv_message(client, cid);
    assert_eq!(cmd, 0x01);
    assert_eq!(payload, data);
}

/// INIT then a 100-byte PING.
pub fn init_and_ping(client: &mut UsbipClient) -> u32 {
    let cid = ctaphid_init(client);
    let data: Vec<u8> = (0..100u8).collect();
    ctaphid_ping(client, cid, &data);
    cid
}

/// Imports `busid`, retrying while the server still holds it for a connection
/// that just closed.
pub fn import_retry(server: &BackgroundServer, busid: &str) -> UsbipClient {
    use ferrokey_tests::usbip_client::ImportError;
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        match UsbipClient::import(server.local_addr(), busid) {
            Ok(client) => return client,
            Err(ImportError::Refused(1)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("import {busid}: {e:?}"),
        }
    }
}
