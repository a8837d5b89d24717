//! Interrupt transfers over USB/IP: CTAPHID through the real transport, pending
//! IN URBs, queueing, unlinking, resets, and CBOR getInfo on the real authenticator.

mod usbip_support;

use std::time::Duration;

use ferrokey_tests::usbip_client::{UsbipClient, ECONNRESET};
use usbip_support::*;

#[test]
fn ctaphid_init_and_ping() {
    let server = mock_server(1);
    let mut client = attach(&server, "1-1");
    let cid = ctaphid_init(&mut client);
    assert_ne!(cid, 0);
    assert_ne!(cid, 0xFFFF_FFFF);
    ctaphid_ping(&mut client, cid, b"");
    ctaphid_ping(&mut client, cid, b"hello over USB/IP");
    // Multi-packet both ways (1 init + 17 continuation packets).
    let big: Vec<u8> = (0..1057u32).map(|i| (i * 7) as u8).collect();
    ctaphid_ping(&mut client, cid, &big);
}

#[test]
fn pending_in_urb_waits_for_a_report() {
    let server = mock_server(1);
    let mut client = attach(&server, "1-1");
    let seq = client.arm_in().unwrap();
    // Idle: the IN URB is not answered (no zero-length completion either).
    assert!(!client.poll_done(seq, Duration::from_millis(200)).unwrap());
    // A request makes a report; the same pending URB carries it.
    send_message(&mut client, 0xFFFF_FFFF, 0x06, &[9; 8]);
    let r = client.wait(seq, TIMEOUT).unwrap().expect("IN URB answered");
    assert_eq!(r.status, 0);
    assert_eq!(r.data.len(), 64);
    assert_eq!(r.actual_length, 64);
    assert_eq!(r.data[4], 0x86);
    assert_eq!(&r.data[7..15], &[9; 8]);
}

#[test]
fn in_urbs_queue_in_order() {
    let server = mock_server(1);
    let mut client = attach(&server, "1-1");
    let cid = ctaphid_init(&mut client);
    // Drop the IN URB the client keeps armed, then queue three IN URBs before
    // a 3-packet response exists.
    let armed = client.arm_in().unwrap();
    assert_eq!(client.unlink(armed).unwrap(), ECONNRESET);
    let seqs: Vec<u32> = (0..3)
        .map(|_| client.submit_in(1, 64, [0; 8]).unwrap())
        .collect();
    let payload = [0x5A; 150];
    let mut report = [0u8; 64];
    report[..4].copy_from_slice(&cid.to_be_bytes());
    report[4] = 0x81;
    report[5..7].copy_from_slice(&150u16.to_be_bytes());
    report[7..].copy_from_slice(&payload[..57]);
    let out = client.submit_out(1, &report, [0; 8]).unwrap();
    for (seq, chunk) in payload[57..].chunks(59).enumerate() {
        let mut report = [0u8; 64];
        report[..4].copy_from_slice(&cid.to_be_bytes());
        report[4] = seq as u8;
        report[5..5 + chunk.len()].copy_from_slice(chunk);
        client.submit_out(1, &report, [0; 8]).unwrap();
    }
    assert_eq!(client.wait(out, TIMEOUT).unwrap().unwrap().status, 0);
    let replies: Vec<_> = seqs
        .iter()
        .map(|&s| client.wait(s, TIMEOUT).unwrap().expect("answered"))
        .collect();
    assert_eq!(replies[0].data[4], 0x81, "init packet first");
    assert_eq!(replies[1].data[4], 0, "then continuation 0");
    assert_eq!(replies[2].data[4], 1, "then continuation 1");
}

#[test]
fn unlink_of_pending_and_completed_urbs() {
    let server = mock_server(1);
    let mut client = attach(&server, "1-1");
    let seq = client.submit_in(1, 64, [0; 8]).unwrap();
    assert!(!client.poll_done(seq, Duration::from_millis(50)).unwrap());
    assert_eq!(client.unlink(seq).unwrap(), ECONNRESET);
    // The unlinked URB never completes, and its report is not lost: the next
    // IN URB gets the INIT response.
    let cid = ctaphid_init(&mut client);
    assert!(!client.poll_done(seq, Duration::from_millis(50)).unwrap());
    // Unlinking a URB that already completed answers 0.
    let mut ping = [0u8; 64];
    ping[..4].copy_from_slice(&cid.to_be_bytes());
    ping[4] = 0x81;
    let out = client.submit_out(1, &ping, [0; 8]).unwrap();
    assert_eq!(client.wait(out, TIMEOUT).unwrap().unwrap().status, 0);
    assert_eq!(client.unlink(out).unwrap(), 0);
    assert_eq!(recv_message(&mut client, cid), (0x01, Vec::new()));
    // Unlinking an unknown seqnum answers 0 too.
    assert_eq!(client.unlink(0xDEAD).unwrap(), 0);
    ctaphid_ping(&mut client, cid, b"after unlinks");
}

#[test]
fn report_waits_in_the_endpoint_until_the_host_asks() {
    let server = mock_server(1);
    let mut client = attach(&server, "1-1");
    // Send the INIT request with no IN URB pending, then wait before asking.
    let mut report = [0u8; 64];
    report[..4].copy_from_slice(&0xFFFF_FFFFu32.to_be_bytes());
    report[4] = 0x86;
    report[6] = 8;
    report[7..15].copy_from_slice(&[3; 8]);
    let out = client.submit_out(1, &report, [0; 8]).unwrap();
    assert_eq!(client.wait(out, TIMEOUT).unwrap().unwrap().status, 0);
    std::thread::sleep(Duration::from_millis(100));
    let seq = client.submit_in(1, 64, [0; 8]).unwrap();
    let r = client.wait(seq, TIMEOUT).unwrap().expect("report kept");
    assert_eq!(r.data[4], 0x86);
    assert_eq!(&r.data[7..15], &[3; 8]);
}

#[test]
fn port_reset_resets_the_device() {
    let server = mock_server(1);
    let mut client = attach(&server, "1-1");
    let cid = ctaphid_init(&mut client);
    let pending = client.arm_in().unwrap();
    // SET_FEATURE(PORT_RESET), as forwarded by USB/IP clients.
    let r = client.control(0x23, 3, 4, 1, 0, &[]).unwrap();
    assert_eq!(r.status, 0);
    // Pending URBs were cut off; the device is unconfigured again.
    let cut = client.wait(pending, TIMEOUT).unwrap().expect("cut off");
    assert!(cut.status < 0);
    let r = client.control(0x80, 8, 0, 0, 1, &[]).unwrap();
    assert_eq!(r.data, vec![0]);
    // Re-enumerate; the channel from before the reset is gone.
    let e = client.enumerate().unwrap();
    assert_eq!(e.serial, "TEST0001");
    let seq = client.submit_in(1, 64, [0; 8]).unwrap();
    send_message(&mut client, cid, 0x01, b"old channel");
    let r = client.wait(seq, TIMEOUT).unwrap().unwrap();
    assert_eq!(
        r.data[4], 0xBF,
        "CTAPHID ERROR on a channel from before the reset"
    );
}

#[test]
fn cbor_get_info_on_the_real_authenticator() {
    let dir = tempfile::tempdir().unwrap();
    let server = authenticator_server(dir.path());
    let mut client = UsbipClient::import(server.local_addr(), "1-1").unwrap();
    let e = client.enumerate().unwrap();
    assert_eq!(e.serial, "AUTH0001");
    let cid = ctaphid_init(&mut client);
    send_message(&mut client, cid, 0x10, &[0x04]);
    let (cmd, payload) = recv_message(&mut client, cid);
    assert_eq!(cmd, 0x10);
    assert_eq!(payload[0], 0, "CTAP2_OK");
    let info: ciborium::Value = ciborium::from_reader(&payload[1..]).unwrap();
    let map = info.as_map().expect("getInfo map");
    let versions = map
        .iter()
        .find(|(k, _)| k.as_integer() == Some(1.into()))
        .and_then(|(_, v)| v.as_array())
        .expect("versions");
    assert!(versions.iter().any(|v| v.as_text() == Some("FIDO_2_0")));
}

#[test]
fn ctaphid_client_runs_over_usbip() {
    use ferrokey_tests::ctaphid_client::CtapHidClient;
    let dir = tempfile::tempdir().unwrap();
    let server = authenticator_server(dir.path());
    let mut usb = UsbipClient::import(server.local_addr(), "1-1").unwrap();
    usb.enumerate().unwrap();
    let mut client = CtapHidClient::new(usb);
    client.set_timeout(TIMEOUT);
    let info = client.init().unwrap();
    assert!(info.has_cbor());
    assert_eq!(client.ping(&[0x42; 500]).unwrap(), vec![0x42; 500]);
    let (status, body) = client.cbor(0x04, &[]).unwrap();
    assert_eq!(status, 0);
    assert!(!body.is_empty());
}
