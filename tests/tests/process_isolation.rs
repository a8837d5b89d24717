//! Keys served by one process (`ferrokey serve --keys N`) are separate keys:
//! key 2 refuses key 1's credentials (allowList and discoverable), has its own
//! PIN and PIN retries, and its own counters.
//!
//! Needs `target/<profile>/ferrokey`: run `cargo build -p firmware-sim` first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod process_support;

use ferrokey_tests::pin::{permission, ClientPin};
use process_support::*;

const RP: &str = "isolation.example";

#[test]
fn keys_of_one_process_share_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let served = Served::start(tmp.path(), &["--keys", "2"]);
    served_wait_key2(&served);
    let mut k1 = connect(served.addr, "1-1");
    let mut k2 = connect(served.addr, "1-2");

    // Key 1's credentials (resident and not) are not key 2's.
    let rk1 = make_credential(&mut k1, RP, "one").unwrap();
    let nr1 = make_credential_with_options(&mut k1, RP, "one-nr", &[]).unwrap();
    for reg in [&rk1, &nr1] {
        assert_eq!(
            GetAssertion::new(RP)
                .allow(&reg.credential_id)
                .send(&mut k2)
                .unwrap()
                .err(),
            Some(status::NO_CREDENTIALS)
        );
    }
    assert_eq!(
        GetAssertion::new(RP).send(&mut k2).unwrap().err(),
        Some(status::NO_CREDENTIALS),
        "key 2 discovers key 1's resident credential"
    );
    // ...while key 1 still signs with them.
    let mut c1 = get_assertion(&mut k1, RP, &nr1).unwrap();

    // Counters: key 2's first signature does not continue key 1's count.
    let nr2 = make_credential_with_options(&mut k2, RP, "two-nr", &[]).unwrap();
    for _ in 0..5 {
        let c = get_assertion(&mut k1, RP, &nr1).unwrap();
        assert!(c > c1);
        c1 = c;
    }
    let c2 = get_assertion(&mut k2, RP, &nr2).unwrap();
    assert!(c2 < c1, "key 2 counter {c2} follows key 1's {c1}");
    assert_eq!(get_assertion(&mut k1, RP, &nr1).unwrap(), c1 + 1);

    // PINs: key 1's PIN is not key 2's; wrong PINs on key 2 cost key 1 nothing.
    let cp = ClientPin::new(2);
    assert_eq!(cp.set_pin(&mut k1, "first-key-pin").unwrap(), status::OK);
    assert_eq!(
        cp.token(&mut k2, "first-key-pin", None, None),
        Err(status::PIN_NOT_SET)
    );
    assert_eq!(cp.set_pin(&mut k2, "second-key-pin").unwrap(), status::OK);
    assert_eq!(
        cp.token(&mut k2, "first-key-pin", None, None),
        Err(status::PIN_INVALID)
    );
    assert_eq!(
        cp.token(&mut k2, "first-key-pin", None, None),
        Err(status::PIN_INVALID)
    );
    assert_eq!(cp.retries(&mut k2).unwrap().0, 6);
    assert_eq!(cp.retries(&mut k1).unwrap().0, 8);
    let t1 = cp
        .token(&mut k1, "first-key-pin", Some(permission::GA), Some(RP))
        .unwrap();
    assert_eq!(
        cp.token(&mut k1, "second-key-pin", None, None),
        Err(status::PIN_INVALID)
    );
    // Key 1's token means nothing to key 2.
    let ga = GetAssertion::new(RP)
        .allow(&nr2.credential_id)
        .pin_auth(&t1);
    assert_eq!(
        ga.send(&mut k2).unwrap().err(),
        Some(status::PIN_AUTH_INVALID)
    );
    drop((k1, k2));
    served.stop();
}

/// `Served::start` waits for key 1; wait for key 2 as well.
fn served_wait_key2(served: &Served) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ferrokey_tests::usbip_client::list_devices(served.addr)
        .unwrap()
        .len()
        < 2
    {
        assert!(std::time::Instant::now() < deadline, "key 2 never appeared");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
