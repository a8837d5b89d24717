//! A USB bus reset is not a power cycle; an unplug is (issue 10 §1 defect 6).
//!
//! Three wrong PINs in a row block PIN entry until the key loses power
//! (PIN_AUTH_BLOCKED, CTAP 2.1 §6.5.5.5). A real key keeps power through a
//! USB bus reset (SET_FEATURE(PORT_RESET), sent by a host that re-enumerates
//! it), so the block must stay; a USB/IP detach is an unplug, and a
//! re-import afterwards finds a freshly powered key.
//!
//! The platform side of PIN/UV auth protocol 1 is the shared one
//! (`ferrokey_tests::pin`, independent crypto), against the real `ferrokey`
//! binary. Needs `target/<profile>/ferrokey`: run `cargo build -p firmware-sim`
//! first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod process_support;

use ferrokey_tests::pin::ClientPin;
use process_support::*;

const PIN: &str = "1234";

/// Protocol 1, as the test always used.
fn pin() -> ClientPin {
    ClientPin::new(1)
}

/// getPinToken with `pin`: the token value, or the status.
fn get_pin_token(client: &mut Client, pin_text: &str) -> Result<Vec<u8>, u8> {
    pin().token(client, pin_text, None, None).map(|t| t.value)
}

/// getPINRetries: (pinRetries, powerCycleState).
fn retries(client: &mut Client) -> (u8, bool) {
    let (retries, power_cycle) = pin().retries(client).unwrap();
    (retries, power_cycle.unwrap_or(false))
}

fn block_pin_entry(client: &mut Client) {
    for expected in [
        status::PIN_INVALID,
        status::PIN_INVALID,
        status::PIN_AUTH_BLOCKED,
    ] {
        assert_eq!(get_pin_token(client, "0000").err(), Some(expected));
    }
    assert_eq!(retries(client), (5, true));
    assert_eq!(
        get_pin_token(client, PIN).err(),
        Some(status::PIN_AUTH_BLOCKED)
    );
}

/// SET_FEATURE(PORT_RESET) on the root hub port, as the kernel forwards it,
/// then the re-enumeration a host does after a reset and a new channel.
fn bus_reset(client: &mut Client) {
    let usb = client.transport_mut();
    let reply = usb.control(0x23, 0x03, 4, 1, 0, &[]).unwrap();
    assert_eq!(reply.status, 0, "PORT_RESET completes");
    usb.enumerate().unwrap();
    // The reset cut off the interrupt IN URB the host had pending
    // (-ESHUTDOWN); collect it, which arms a new one.
    let cut_off = usb
        .recv_report(std::time::Duration::from_secs(5))
        .unwrap_err();
    assert!(cut_off.to_string().contains("-108"), "{cut_off}");
    client.init().unwrap();
}

#[test]
fn a_bus_reset_keeps_the_pin_block_and_a_replug_lifts_it() {
    let state = tempfile::tempdir().unwrap();
    let served = Served::start(state.path(), &[]);
    let mut client = served.connect("1-1");
    assert_eq!(pin().set_pin(&mut client, PIN).unwrap(), status::OK);
    let token = get_pin_token(&mut client, PIN).unwrap();
    block_pin_entry(&mut client);

    // A bus reset: the key kept its power, so PIN entry stays blocked and no
    // attempt is spent.
    bus_reset(&mut client);
    assert_eq!(retries(&mut client), (5, true));
    assert_eq!(
        get_pin_token(&mut client, PIN).err(),
        Some(status::PIN_AUTH_BLOCKED)
    );
    assert_eq!(retries(&mut client), (5, true));

    // Detach (the connection goes) and import again: a power cycle.
    drop(client);
    let mut client = served.connect("1-1");
    assert_eq!(retries(&mut client), (5, false));
    let fresh = get_pin_token(&mut client, PIN).expect("the right PIN works after a replug");
    assert_ne!(fresh, token, "tokens do not survive a power cycle");
    assert_eq!(retries(&mut client), (8, false));
    served.stop();
}
