//! The fleet over USB/IP: keys added and removed at run time (busids, state
//! directories, the host's view), control calls on the key's own task, and
//! the event bus (device events and one raw CTAP event per request).

mod process_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferrokey_tests::usbip_client::{list_devices, ImportError, UsbipClient};
use firmware_sim::events::{CtapEnd, Event, EventKind};
use firmware_sim::fleet::{Fleet, FleetConfig, FleetError};
use firmware_sim::key::KeyOptions;
use firmware_sim::usbip::{BackgroundServer, Server};
use process_support::*;
use tokio::sync::broadcast;

struct Rig {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    fleet: Fleet,
    server: BackgroundServer,
    rt: tokio::runtime::Runtime,
}

impl Rig {
    fn new() -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("state");
        let fleet = Fleet::open(&FleetConfig {
            root: root.clone(),
            country: "US".into(),
            threads: 2,
            transport: firmware_sim::transport::Transport::Usbip,
        })
        .unwrap();
        let server = Server::bind_with("127.0.0.1:0".parse().unwrap(), fleet.exports())
            .unwrap()
            .spawn()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Rig {
            _tmp: tmp,
            root,
            fleet,
            server,
            rt,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    fn busids(&self) -> Vec<String> {
        list_devices(self.addr())
            .unwrap()
            .into_iter()
            .map(|d| d.busid)
            .collect()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.rt.block_on(self.fleet.shutdown());
    }
}

fn next_event(
    rt: &tokio::runtime::Runtime,
    rx: &mut broadcast::Receiver<Arc<Event>>,
    name: &str,
) -> Arc<Event> {
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let event = rx.recv().await.unwrap();
                if event.kind.name() == name {
                    return event;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {name} event"))
    })
}

#[test]
fn keys_are_added_and_removed_while_the_server_runs() {
    let rig = Rig::new();
    let first = rig
        .rt
        .block_on(rig.fleet.add(KeyOptions::default()))
        .unwrap();
    let second = rig
        .rt
        .block_on(rig.fleet.add(KeyOptions::default()))
        .unwrap();
    assert_eq!((first.number, first.busid.as_str()), (1, "1-1"));
    assert_eq!((second.number, second.busid.as_str()), (2, "1-2"));
    assert_ne!(first.serial, second.serial);
    assert_eq!(rig.busids(), ["1-1", "1-2"]);
    assert!(rig.root.join("key-2/identity.json").exists());

    // The host uses the new key for real.
    let mut client = connect(rig.addr(), "1-2");
    let registration = make_credential(&mut client, "example.com", "alice").unwrap();
    assert_eq!(registration.fmt, "packed");

    // Removing it unplugs the host, withdraws the busid and deletes its state.
    rig.rt.block_on(rig.fleet.remove(second.id)).unwrap();
    let unplugged = get_assertion(&mut client, "example.com", &registration);
    assert!(
        matches!(unplugged, Err(AssertError::Transport(_))),
        "{unplugged:?}"
    );
    assert_eq!(rig.busids(), ["1-1"]);
    assert!(!rig.root.join("key-2").exists());
    assert!(matches!(
        UsbipClient::import(rig.addr(), "1-2"),
        Err(ImportError::Refused(_))
    ));
    assert!(matches!(
        rig.rt.block_on(rig.fleet.remove(second.id)),
        Err(FleetError::NoSuchKey(_))
    ));

    // The next key gets the freed number and busid, with fresh state.
    let third = rig
        .rt
        .block_on(rig.fleet.add(KeyOptions::default()))
        .unwrap();
    assert_eq!((third.number, third.busid.as_str()), (2, "1-2"));
    assert_ne!(third.id, second.id);
    assert_ne!(third.serial, second.serial);
    let mut client = connect(rig.addr(), "1-2");
    let fresh = get_assertion(&mut client, "example.com", &registration);
    assert!(
        matches!(fresh, Err(AssertError::Status(status::NO_CREDENTIALS))),
        "{fresh:?}"
    );
    let ids: Vec<_> = rig.fleet.list().iter().map(|k| k.id).collect();
    assert_eq!(ids, [first.id, third.id]);

    // Bad options are refused by name, and nothing is created.
    let bad: KeyOptions = serde_json::from_value(serde_json::json!({"vendorId": 0})).unwrap();
    let error = rig.rt.block_on(rig.fleet.add(bad)).unwrap_err().to_string();
    assert!(error.contains("vendorId"), "{error}");
    assert!(!rig.root.join("key-3").exists());
    assert_eq!(rig.busids(), ["1-1", "1-2"]);
}

#[test]
fn a_call_runs_on_the_key_between_reports() {
    let rig = Rig::new();
    let info = rig
        .rt
        .block_on(rig.fleet.add(KeyOptions::default()))
        .unwrap();
    let key = rig.fleet.get(info.id).unwrap();
    let remaining = |key: &firmware_sim::fleet::KeyRef| {
        rig.rt
            .block_on(key.call(|core| core.authenticator().remaining_discoverable_credentials()))
    };
    let before = remaining(&key).unwrap();
    let mut client = connect(rig.addr(), &info.busid);
    make_credential(&mut client, "example.com", "bob").unwrap();
    assert_eq!(remaining(&key).unwrap(), before - 1);
    // The call sees the same core the host just used, on the key's thread.
    let thread = rig
        .rt
        .block_on(key.call(|_| std::thread::current().name().map(String::from)))
        .unwrap()
        .unwrap();
    assert!(thread.starts_with("ferrokey-keys-"), "{thread}");

    // No power, no core; power back, same credentials.
    assert!(!rig.rt.block_on(key.power(false)).unwrap());
    assert!(!key.info().powered);
    assert!(matches!(remaining(&key), Err(FleetError::PoweredOff(_))));
    assert!(rig.rt.block_on(key.power(true)).unwrap());
    assert_eq!(remaining(&key).unwrap(), before - 1);

    rig.rt.block_on(rig.fleet.remove(info.id)).unwrap();
    assert!(matches!(remaining(&key), Err(FleetError::Stopped(_))));
    assert!(rig.fleet.get(info.id).is_none());
}

#[test]
fn events_tell_what_the_keys_do() {
    let rig = Rig::new();
    let mut rx = rig.fleet.events().subscribe();
    let info = rig
        .rt
        .block_on(rig.fleet.add(KeyOptions::default()))
        .unwrap();
    let plugged = next_event(&rig.rt, &mut rx, "plugged");
    assert_eq!(plugged.key, info.id);
    assert_eq!(plugged.payload["busid"], "1-1");

    let mut client = connect(rig.addr(), "1-1");
    let imported = next_event(&rig.rt, &mut rx, "imported");
    assert_eq!(imported.payload["transport"], "usbip");

    let registration = make_credential(&mut client, "example.com", "carol").unwrap();
    let ctap = next_event(&rig.rt, &mut rx, "ctap");
    let EventKind::Ctap(raw) = &ctap.kind else {
        unreachable!()
    };
    assert_eq!(raw.request[0], cmd::MAKE_CREDENTIAL);
    let request = decode(&raw.request[1..]).unwrap();
    assert_eq!(get_bytes(&request, 1).unwrap(), registration.cdh);
    let CtapEnd::Response(response) = &raw.end else {
        panic!("no response: {:?}", raw.end)
    };
    assert_eq!(response[0], 0, "status");
    let body = decode(&response[1..]).unwrap();
    assert_eq!(get_bytes(&body, 2).unwrap(), registration.raw_auth_data);
    assert!(raw.latency > Duration::ZERO && raw.latency < Duration::from_secs(10));

    let key = rig.fleet.get(info.id).unwrap();
    rig.rt.block_on(key.power(false)).unwrap();
    assert_eq!(
        next_event(&rig.rt, &mut rx, "released").payload["reason"],
        "powered off"
    );
    next_event(&rig.rt, &mut rx, "powerOff");
    rig.rt.block_on(key.power(true)).unwrap();
    next_event(&rig.rt, &mut rx, "powerOn");
    rig.rt.block_on(rig.fleet.remove(info.id)).unwrap();
    assert_eq!(next_event(&rig.rt, &mut rx, "unplugged").key, info.id);
}

#[test]
fn a_detach_is_a_power_cycle_and_a_bus_reset_is_not() {
    let rig = Rig::new();
    let mut rx = rig.fleet.events().subscribe();
    rig.rt
        .block_on(rig.fleet.add(KeyOptions::default()))
        .unwrap();
    let mut usb = UsbipClient::import(rig.addr(), "1-1").unwrap();
    usb.enumerate().unwrap();
    // SET_FEATURE(PORT_RESET), as USB/IP clients forward it: a bus reset.
    let reset = usb.control(0x23, 3, 4, 1, 0, &[]).unwrap();
    assert_eq!(reset.status, 0);
    usb.enumerate().unwrap();
    init_and_getinfo(usb);
    // Only the detach (the client going away) powered the key down and up.
    let mut before_release = Vec::new();
    let released = rig.rt.block_on(async {
        loop {
            let event = rx.recv().await.unwrap();
            if event.kind.name() == "released" {
                return event;
            }
            before_release.push(event.kind.name().to_string());
        }
    });
    assert_eq!(
        before_release,
        ["plugged", "imported", "ctap"],
        "a bus reset is not a power cycle"
    );
    assert_eq!(released.payload["reason"], "the host closed the connection");
    assert_eq!(
        next_event(&rig.rt, &mut rx, "powerOff").payload["reason"],
        "unplugged"
    );
    next_event(&rig.rt, &mut rx, "powerOn");
}

/// Opens a channel and asks for getInfo, then lets the connection go.
fn init_and_getinfo(usb: UsbipClient) {
    let mut client = CtapHidClient::new(usb);
    client.set_timeout(Duration::from_secs(10));
    client.init().unwrap();
    ctap2::get_info(&mut client).unwrap();
}
