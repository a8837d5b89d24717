//! USB/IP device list, import and enumeration, checked with the independent client.

mod usbip_support;

use std::time::Duration;

use ferrokey_tests::usbip_client::{list_devices, ImportError, UsbipClient, EPIPE};
use usbip_support::*;

const FIDO_REPORT_DESCRIPTOR: [u8; 34] = [
    0x06, 0xD0, 0xF1, 0x09, 0x01, 0xA1, 0x01, 0x09, 0x20, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x75, 0x08,
    0x95, 0x40, 0x81, 0x02, 0x09, 0x21, 0x15, 0x00, 0x26, 0xFF, 0x00, 0x75, 0x08, 0x95, 0x40, 0x91,
    0x02, 0xC0,
];

#[test]
fn enumeration_values() {
    let server = mock_server(1);
    let mut client = UsbipClient::import(server.local_addr(), "1-1").unwrap();
    let record = client.device().clone();
    let e = client.enumerate().unwrap();
    let id = identity("TEST0001");

    assert_eq!(e.device.bcd_usb, 0x0200);
    assert_eq!(e.device.class, 0);
    assert_eq!(e.device.max_packet_size0, 64);
    assert_eq!(e.device.vendor_id, id.vendor_id);
    assert_eq!(e.device.product_id, id.product_id);
    assert_eq!(e.device.bcd_device, id.device_release);
    assert_eq!(e.device.num_configurations, 1);
    assert_eq!(e.device.string_indexes, [1, 2, 3]);
    // The import record agrees with the descriptors.
    assert_eq!(record.vendor_id, e.device.vendor_id);
    assert_eq!(record.product_id, e.device.product_id);
    assert_eq!(record.bcd_device, e.device.bcd_device);
    assert_eq!(record.configuration_value, e.configuration_value);
    assert_eq!(record.num_interfaces, e.num_interfaces);

    assert_eq!(e.lang_ids, vec![0x0409]);
    assert_eq!(e.manufacturer, id.manufacturer);
    assert_eq!(e.product, id.product);
    assert_eq!(e.serial, "TEST0001");

    assert_eq!(e.config.len(), 41);
    assert_eq!(e.configuration_value, 1);
    assert_eq!(e.num_interfaces, 1);
    assert_eq!(e.interface, (0, 3, 0, 0));
    assert_eq!(e.report_descriptor_length, 34);
    assert_eq!(e.endpoints.len(), 2);
    let ep_in = e.endpoints.iter().find(|ep| ep.address == 0x81).unwrap();
    let ep_out = e.endpoints.iter().find(|ep| ep.address == 0x01).unwrap();
    for ep in [ep_in, ep_out] {
        assert_eq!(ep.attributes, 0x03, "interrupt");
        assert_eq!(ep.max_packet_size, 64);
        assert!(ep.interval >= 1 && ep.interval <= 10);
    }
    assert_eq!(e.report_descriptor, FIDO_REPORT_DESCRIPTOR);
    // Usage page 0xF1D0, usage 0x01.
    assert_eq!(&e.report_descriptor[..5], &[0x06, 0xD0, 0xF1, 0x09, 0x01]);
}

#[test]
fn control_in_never_longer_than_w_length() {
    let server = mock_server(1);
    let mut client = attach(&server, "1-1");
    // 9 bytes of the 41-byte configuration.
    let r = client.control(0x80, 6, 0x0200, 0, 9, &[]).unwrap();
    assert_eq!((r.status, r.data.len(), r.actual_length), (0, 9, 9));
    // 64 bytes asked for an 18-byte device descriptor: exactly 18.
    let r = client.control(0x80, 6, 0x0100, 0, 64, &[]).unwrap();
    assert_eq!((r.status, r.data.len()), (0, 18));
    // Odd truncations, including inside the second packet of a string.
    for (value, index, len) in [
        (0x0100u16, 0u16, 1u16),
        (0x2200, 0, 10),
        (0x0302, 0x0409, 4),
        (0x0302, 0x0409, 70),
        (0x0200, 0, 40),
    ] {
        let request_type = if value == 0x2200 { 0x81 } else { 0x80 };
        let r = client
            .control(request_type, 6, value, index, len, &[])
            .unwrap();
        assert_eq!(r.status, 0);
        assert_eq!(r.data.len(), usize::from(len), "{value:#x} wLength {len}");
    }
    // The full 100-byte product string arrives whole (two control packets), and
    // repeating the request gives the same bytes (no stale data).
    let a = client.control(0x80, 6, 0x0302, 0x0409, 255, &[]).unwrap();
    let b = client.control(0x80, 6, 0x0302, 0x0409, 255, &[]).unwrap();
    assert_eq!(a.data.len(), 100);
    assert_eq!(a, b);
}

#[test]
fn standard_and_class_requests() {
    let server = mock_server(1);
    let mut client = attach(&server, "1-1");
    // GET_CONFIGURATION after SET_CONFIGURATION(1).
    let r = client.control(0x80, 8, 0, 0, 1, &[]).unwrap();
    assert_eq!((r.status, r.data), (0, vec![1]));
    // GET_STATUS (device, interface, endpoint).
    for (rt, index) in [(0x80u8, 0u16), (0x81, 0), (0x82, 0x81)] {
        let r = client.control(rt, 0, 0, index, 2, &[]).unwrap();
        assert_eq!((r.status, r.data.len()), (0, 2));
    }
    // CLEAR_FEATURE(ENDPOINT_HALT) on both interrupt endpoints.
    for ep in [0x81u16, 0x01] {
        let r = client.control(0x02, 1, 0, ep, 0, &[]).unwrap();
        assert_eq!(r.status, 0);
    }
    // SET_FEATURE(HALT) then GET_STATUS shows it, CLEAR_FEATURE clears it.
    assert_eq!(client.control(0x02, 3, 0, 0x81, 0, &[]).unwrap().status, 0);
    let r = client.control(0x82, 0, 0, 0x81, 2, &[]).unwrap();
    assert_eq!(r.data, vec![1, 0]);
    assert_eq!(client.control(0x02, 1, 0, 0x81, 0, &[]).unwrap().status, 0);
    let r = client.control(0x82, 0, 0, 0x81, 2, &[]).unwrap();
    assert_eq!(r.data, vec![0, 0]);
    // HID: SET_IDLE ok, GET_IDLE returns the rate, GET_REPORT stalls.
    assert_eq!(
        client
            .control(0x21, 0x0A, 0x0400, 0, 0, &[])
            .unwrap()
            .status,
        0
    );
    let r = client.control(0xA1, 0x02, 0, 0, 1, &[]).unwrap();
    assert_eq!((r.status, r.data), (0, vec![4]));
    assert_eq!(
        client
            .control(0xA1, 0x01, 0x0100, 0, 64, &[])
            .unwrap()
            .status,
        EPIPE
    );
    // An unknown descriptor type stalls; the next request works again.
    assert_eq!(
        client.control(0x80, 6, 0x0700, 0, 16, &[]).unwrap().status,
        EPIPE
    );
    assert_eq!(
        client
            .control(0x80, 6, 0x0305, 0x0409, 255, &[])
            .unwrap()
            .status,
        EPIPE
    );
    let r = client.control(0x80, 6, 0x0100, 0, 18, &[]).unwrap();
    assert_eq!((r.status, r.data.len()), (0, 18));
    // SET_ADDRESS (vhci handles it locally, but a client may send it): the
    // device goes to the Addressed state, like real hardware, and needs
    // SET_CONFIGURATION again.
    assert_eq!(client.control(0x00, 5, 7, 0, 0, &[]).unwrap().status, 0);
    let r = client.control(0x80, 8, 0, 0, 1, &[]).unwrap();
    assert_eq!((r.status, r.data), (0, vec![0]));
    assert_eq!(client.control(0x00, 9, 1, 0, 0, &[]).unwrap().status, 0);
    // A control OUT whose data does not match wLength is refused.
    let r = client.control(0x21, 0x09, 0x0200, 0, 64, &[0; 10]).unwrap();
    assert!(r.status < 0);
    // Still working afterwards.
    init_and_ping(&mut client);
}

#[test]
fn device_list_record_fields() {
    let server = mock_server(2);
    let devices = list_devices(server.local_addr()).unwrap();
    assert_eq!(devices.len(), 2);
    for (i, d) in devices.iter().enumerate() {
        let n = i as u32 + 1;
        assert_eq!(d.busid, format!("1-{n}"));
        assert!(d.path.ends_with(&d.busid));
        assert_eq!(d.busnum, 1);
        assert_eq!(d.devnum, n);
        assert_eq!(d.speed, 2, "full speed");
        assert_eq!(
            (d.vendor_id, d.product_id, d.bcd_device),
            (0x1209, 0xF1D0, 0x0123)
        );
        assert_eq!(d.class, (0, 0, 0));
        assert_eq!(d.configuration_value, 1);
        assert_eq!(d.num_configurations, 1);
        assert_eq!(d.num_interfaces, 1);
        assert_eq!(d.interfaces, vec![[3, 0, 0, 0]]);
    }
}

#[test]
fn list_while_another_client_is_attached() {
    let server = mock_server(2);
    let mut attached = attach(&server, "1-1");
    let cid = init_and_ping(&mut attached);
    for _ in 0..3 {
        let devices = list_devices(server.local_addr()).unwrap();
        assert_eq!(devices.len(), 2);
    }
    // The attached session was not disturbed.
    ctaphid_ping(&mut attached, cid, b"still here");
}

#[test]
fn two_keys_one_server() {
    let server = mock_server(2);
    let mut a = UsbipClient::import(server.local_addr(), "1-1").unwrap();
    let mut b = UsbipClient::import(server.local_addr(), "1-2").unwrap();
    assert_ne!(a.device().devid(), b.device().devid());
    let ea = a.enumerate().unwrap();
    let eb = b.enumerate().unwrap();
    assert_eq!(ea.serial, "TEST0001");
    assert_eq!(eb.serial, "TEST0002");
    let ca = ctaphid_init(&mut a);
    let cb = ctaphid_init(&mut b);
    ctaphid_ping(&mut a, ca, b"key a");
    ctaphid_ping(&mut b, cb, b"key b");
    ctaphid_ping(&mut a, ca, &[0xAA; 300]);
}

#[test]
fn two_servers_on_different_ports() {
    let one = mock_server(1);
    let two = mock_server(1);
    assert_ne!(one.local_addr().port(), two.local_addr().port());
    let mut a = attach(&one, "1-1");
    let mut b = attach(&two, "1-1");
    init_and_ping(&mut a);
    init_and_ping(&mut b);
}

#[test]
fn import_of_unknown_busid_is_refused() {
    let server = mock_server(1);
    for busid in ["1-2", "2-1", "x"] {
        match UsbipClient::import(server.local_addr(), busid) {
            Err(ImportError::Refused(1)) => {}
            other => panic!("import {busid}: {:?}", other.err()),
        }
    }
}

#[test]
fn busy_import_is_refused_until_the_holder_leaves() {
    let server = mock_server(1);
    let mut holder = attach(&server, "1-1");
    init_and_ping(&mut holder);
    match UsbipClient::import(server.local_addr(), "1-1") {
        Err(ImportError::Refused(1)) => {}
        other => panic!("second import: {:?}", other.err()),
    }
    drop(holder);
    // The key is freed once the server has seen the close.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut client = loop {
        match UsbipClient::import(server.local_addr(), "1-1") {
            Ok(client) => break client,
            Err(ImportError::Refused(1)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("re-import: {e:?}"),
        }
    };
    client.enumerate().unwrap();
    init_and_ping(&mut client);
}
