//! Detach and re-attach: every session starts from a clean key.

mod usbip_support;

use std::time::Duration;

use ferrokey_tests::usbip_client::ECONNRESET;
use usbip_support::*;

#[test]
fn hundred_detach_reattach_cycles() {
    let server = mock_server(1);
    for cycle in 0..100 {
        let mut client = import_retry(&server, "1-1");
        let e = client
            .enumerate()
            .unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        assert_eq!(e.device.vendor_id, 0x1209, "cycle {cycle}");
        assert_eq!(e.report_descriptor.len(), 34, "cycle {cycle}");
        init_and_ping(&mut client);
        // Leave an IN URB pending on every other cycle, as usbhid does.
        if cycle % 2 == 0 {
            client.arm_in().unwrap();
        }
    }
}

#[test]
fn no_stale_report_survives_a_detach() {
    let server = mock_server(1);
    {
        let mut client = attach(&server, "1-1");
        let cid = ctaphid_init(&mut client);
        let armed = client.arm_in().unwrap();
        assert_eq!(client.unlink(armed).unwrap(), ECONNRESET);
        // A response is produced but never collected: then the client goes away.
        send_message(&mut client, cid, 0x01, &[0x77; 200]);
    }
    let mut client = import_retry(&server, "1-1");
    client.enumerate().unwrap();
    let seq = client.arm_in().unwrap();
    assert!(
        !client.poll_done(seq, Duration::from_millis(200)).unwrap(),
        "a report from the previous session leaked"
    );
    init_and_ping(&mut client);
}

#[test]
fn stale_control_data_does_not_survive_a_detach() {
    let server = mock_server(1);
    {
        let mut client = import_retry(&server, "1-1");
        // Start a multi-packet control IN and leave before it is read.
        client
            .submit_in(0, 255, [0x80, 6, 2, 3, 0x09, 0x04, 255, 0])
            .unwrap();
    }
    let mut client = import_retry(&server, "1-1");
    // The first GET_DESCRIPTOR(device) of the new session gets exactly the
    // device descriptor.
    let r = client.control(0x80, 6, 0x0100, 0, 18, &[]).unwrap();
    assert_eq!(r.status, 0);
    assert_eq!(r.data.len(), 18);
    assert_eq!(&r.data[..2], &[18, 1]);
    client.enumerate().unwrap();
    init_and_ping(&mut client);
}
