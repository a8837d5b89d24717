//! Malformed and hostile USB/IP input: the offending connection is closed, the
//! server survives, a new session works, and the other key is unaffected.

mod usbip_support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use ferrokey_tests::usbip_client::{raw, UsbipClient};
use firmware_sim::usbip::BackgroundServer;
use usbip_support::*;

const DEVID: u32 = 0x0001_0001;

/// A raw connection that imported key 1-1 (the import reply is consumed).
fn raw_import(server: &BackgroundServer) -> TcpStream {
    // Wait until the previous holder's close has been processed.
    drop(import_retry(server, "1-1"));
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.write_all(&raw::op_import("1-1")).unwrap();
        let mut head = [0u8; 8];
        s.read_exact(&mut head).unwrap();
        if head[7] == 0 {
            let mut record = [0u8; 312];
            s.read_exact(&mut record).unwrap();
            return s;
        }
        assert!(std::time::Instant::now() < deadline, "key stayed busy");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Asserts that the server closes `s` (EOF or reset) without sending more than
/// `allowed` bytes first.
fn assert_closed(mut s: TcpStream, allowed: usize, what: &str) {
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("{what}: connection not closed: {e}"),
        }
    }
    assert!(
        got.len() <= allowed,
        "{what}: unexpected {} bytes",
        got.len()
    );
}

/// After each bad connection: a clean session on 1-1, and 1-2 (held by
/// `other` throughout) still answers.
fn check_healthy(server: &BackgroundServer, other: &mut UsbipClient, other_cid: u32) {
    let mut client = import_retry(server, "1-1");
    client.enumerate().unwrap();
    init_and_ping(&mut client);
    ctaphid_ping(other, other_cid, b"unaffected");
}

#[test]
fn malformed_input_closes_only_that_connection() {
    let server = mock_server(2);
    let mut other = attach(&server, "1-2");
    let other_cid = ctaphid_init(&mut other);

    let in_header = |seq: u32| raw::cmd_submit(seq, DEVID, 1, 1, 64, [0; 8], &[]);

    // Before any import: bad version, unknown op, garbage, partial op header,
    // import with an unterminated busid.
    let before_import: Vec<(&str, Vec<u8>)> = vec![
        ("bad version", vec![0x01, 0x06, 0x80, 0x05, 0, 0, 0, 0]),
        ("unknown op", vec![0x01, 0x11, 0x80, 0x77, 0, 0, 0, 0]),
        ("garbage", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        ("bad busid", {
            let mut v = raw::op_import("1-1");
            v[8..40].fill(b'1');
            v
        }),
    ];
    for (what, bytes) in before_import {
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.write_all(&bytes).unwrap();
        assert_closed(s, 0, what);
        check_healthy(&server, &mut other, other_cid);
    }
    for cut in [1usize, 4, 7, 20] {
        let mut s = TcpStream::connect(server.local_addr()).unwrap();
        s.write_all(&raw::op_import("1-1")[..cut]).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        assert_closed(s, 0, "partial op request");
        check_healthy(&server, &mut other, other_cid);
    }

    // After an import.
    let mut huge = raw::cmd_submit(1, DEVID, 0, 1, 0x7FFF_FFFF, [0; 8], &[]);
    huge.extend_from_slice(&[0; 64]);
    let after_import: Vec<(&str, Vec<u8>)> = vec![
        (
            "unknown command",
            raw::urb_header([0x99, 1, DEVID, 1, 1, 0, 64, 0, 0, 0], [0; 8]),
        ),
        (
            "reply command from client",
            raw::urb_header([3, 1, DEVID, 0, 0, 0, 0, 0, 0, 0], [0; 8]),
        ),
        ("huge transfer length", huge),
        (
            "negative transfer length",
            raw::cmd_submit(1, DEVID, 1, 1, 0xFFFF_FFFF, [0; 8], &[]),
        ),
        (
            "bad direction",
            raw::urb_header([1, 1, DEVID, 5, 1, 0, 64, 0, 0, 0], [0; 8]),
        ),
        (
            "bad endpoint",
            raw::urb_header([1, 1, DEVID, 1, 16, 0, 64, 0, 0, 0], [0; 8]),
        ),
        (
            "isochronous packets",
            raw::urb_header([1, 1, DEVID, 1, 1, 0, 64, 0, 4, 0], [0; 8]),
        ),
        (
            "wrong devid",
            raw::cmd_submit(1, 0x0001_0002, 1, 1, 64, [0; 8], &[]),
        ),
        ("duplicate pending seqnum", {
            let mut v = in_header(5);
            v.extend_from_slice(&in_header(5));
            v
        }),
    ];
    for (what, bytes) in after_import {
        let mut s = raw_import(&server);
        s.write_all(&bytes).unwrap();
        assert_closed(s, 0, what);
        check_healthy(&server, &mut other, other_cid);
    }

    // Abrupt closes in the middle of a header or of OUT data.
    let out = raw::cmd_submit(9, DEVID, 0, 1, 64, [0; 8], &[0x11; 64]);
    for cut in [1usize, 10, 47, 48, 80] {
        let mut s = raw_import(&server);
        s.write_all(&out[..cut]).unwrap();
        drop(s);
        check_healthy(&server, &mut other, other_cid);
    }
    // Half-close after a partial header.
    let mut s = raw_import(&server);
    s.write_all(&out[..30]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_closed(s, 0, "partial header then close");
    check_healthy(&server, &mut other, other_cid);
}

#[test]
fn broken_pipe_ends_only_that_connection() {
    let server = mock_server(2);
    let mut other = attach(&server, "1-2");
    let other_cid = ctaphid_init(&mut other);
    // Queue many control requests whose replies the client never reads, then
    // reset the connection.
    let mut s = raw_import(&server);
    let mut burst = Vec::new();
    for seq in 1..=200u32 {
        burst.extend_from_slice(&raw::cmd_submit(
            seq,
            DEVID,
            1,
            0,
            255,
            [0x80, 6, 2, 3, 0x09, 0x04, 255, 0],
            &[],
        ));
    }
    s.write_all(&burst).unwrap();
    // Let replies pile up unread; closing with unread data sends a reset, so
    // the server's next write fails.
    std::thread::sleep(Duration::from_millis(50));
    drop(s);
    check_healthy(&server, &mut other, other_cid);
}

#[test]
fn too_many_pending_urbs_closes_the_connection() {
    let server = mock_server(1);
    let mut s = raw_import(&server);
    let mut burst = Vec::new();
    for seq in 1..=300u32 {
        burst.extend_from_slice(&raw::cmd_submit(seq, DEVID, 1, 1, 64, [0; 8], &[]));
    }
    s.write_all(&burst).unwrap();
    assert_closed(s, 0, "URB flood");
    let mut client = import_retry(&server, "1-1");
    client.enumerate().unwrap();
    init_and_ping(&mut client);
}
