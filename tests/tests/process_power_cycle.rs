//! A USB bus reset is not a power cycle; an unplug is (issue 10 §1 defect 6).
//!
//! Three wrong PINs in a row block PIN entry until the key loses power
//! (PIN_AUTH_BLOCKED, CTAP 2.1 §6.5.5.5). A real key keeps power through a
//! USB bus reset (SET_FEATURE(PORT_RESET), sent by a host that re-enumerates
//! it), so the block must stay; a USB/IP detach is an unplug, and a
//! re-import afterwards finds a freshly powered key.
//!
//! The test plays the platform side of PIN/UV auth protocol 1 with its own
//! crypto (p256 ECDH, AES-256-CBC, HMAC-SHA-256) against the real `ferrokey`
//! binary.

mod process_support;

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use ciborium::value::Value;
use ferrokey_tests::ctaphid_client::CtapHidClient;
use hmac::{Hmac, Mac};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use process_support::*;
use sha2::{Digest, Sha256};

const CLIENT_PIN: u8 = 0x06;
const PIN: &str = "1234";
const PIN_INVALID: u8 = 0x31;
const PIN_AUTH_BLOCKED: u8 = 0x34;

/// One key agreement with the key (PIN/UV auth protocol 1).
struct Session {
    platform_key: Value,
    shared: [u8; 32],
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}

fn client_pin(client: &mut CtapHidClient<Usb>, params: Vec<(Value, Value)>) -> (u8, Value) {
    let (status, body) = client
        .cbor(CLIENT_PIN, &encode(&Value::Map(params)))
        .unwrap();
    let value = if body.is_empty() {
        Value::Null
    } else {
        ciborium::from_reader(body.as_slice()).unwrap()
    };
    (status, value)
}

fn base(sub: i64) -> Vec<(Value, Value)> {
    vec![(int(1), int(1)), (int(2), int(sub))]
}

fn session(client: &mut CtapHidClient<Usb>) -> Session {
    let (status, value) = client_pin(client, base(2));
    assert_eq!(status, 0, "getKeyAgreement");
    let key = map_get(&value, 1).unwrap();
    let coordinate = |k: i64| map_get(key, k).unwrap().as_bytes().unwrap().clone();
    let mut sec1 = vec![4u8];
    sec1.extend(coordinate(-2));
    sec1.extend(coordinate(-3));
    let theirs = p256::PublicKey::from_sec1_bytes(&sec1).unwrap();
    let mine = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let z = p256::ecdh::diffie_hellman(mine.to_nonzero_scalar(), theirs.as_affine());
    let shared: [u8; 32] = Sha256::digest(z.raw_secret_bytes()).into();
    let point = mine.public_key().to_encoded_point(false);
    let platform_key = Value::Map(vec![
        (int(1), int(2)),
        (int(3), int(-25)),
        (int(-1), int(1)),
        (int(-2), Value::Bytes(point.x().unwrap().to_vec())),
        (int(-3), Value::Bytes(point.y().unwrap().to_vec())),
    ]);
    Session {
        platform_key,
        shared,
    }
}

impl Session {
    /// AES-256-CBC with a zero IV, chained by hand over the block cipher.
    fn encrypt(&self, plaintext: &[u8]) -> Vec<u8> {
        let cipher = aes::Aes256::new(GenericArray::from_slice(&self.shared));
        let mut previous = [0u8; 16];
        let mut out = Vec::new();
        for chunk in plaintext.chunks(16) {
            let mut block = GenericArray::clone_from_slice(chunk);
            for (b, p) in block.iter_mut().zip(previous) {
                *b ^= p;
            }
            cipher.encrypt_block(&mut block);
            previous.copy_from_slice(&block);
            out.extend_from_slice(&block);
        }
        out
    }

    fn decrypt(&self, ciphertext: &[u8]) -> Vec<u8> {
        let cipher = aes::Aes256::new(GenericArray::from_slice(&self.shared));
        let mut previous = [0u8; 16];
        let mut out = Vec::new();
        for chunk in ciphertext.chunks(16) {
            let mut block = GenericArray::clone_from_slice(chunk);
            cipher.decrypt_block(&mut block);
            for (b, p) in block.iter_mut().zip(previous) {
                *b ^= p;
            }
            previous.copy_from_slice(chunk);
            out.extend_from_slice(&block);
        }
        out
    }

    fn authenticate(&self, parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.shared).unwrap();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes()[..16].to_vec()
    }
}

fn set_pin(client: &mut CtapHidClient<Usb>, pin: &str) {
    let s = session(client);
    let mut padded = [0u8; 64];
    padded[..pin.len()].copy_from_slice(pin.as_bytes());
    let new_pin_enc = s.encrypt(&padded);
    let mut params = base(3);
    params.push((int(3), s.platform_key.clone()));
    params.push((int(4), Value::Bytes(s.authenticate(&[&new_pin_enc]))));
    params.push((int(5), Value::Bytes(new_pin_enc)));
    assert_eq!(client_pin(client, params).0, 0, "setPIN");
}

/// getPinToken with `pin`: the status, and the decrypted token on success.
fn get_pin_token(client: &mut CtapHidClient<Usb>, pin: &str) -> (u8, Option<Vec<u8>>) {
    let s = session(client);
    let pin_hash_enc = s.encrypt(&Sha256::digest(pin.as_bytes())[..16]);
    let mut params = base(5);
    params.push((int(3), s.platform_key.clone()));
    params.push((int(6), Value::Bytes(pin_hash_enc)));
    let (status, value) = client_pin(client, params);
    let token = (status == 0).then(|| s.decrypt(map_get(&value, 2).unwrap().as_bytes().unwrap()));
    (status, token)
}

/// getPINRetries: (pinRetries, powerCycleState).
fn retries(client: &mut CtapHidClient<Usb>) -> (i128, bool) {
    let (status, value) = client_pin(client, base(1));
    assert_eq!(status, 0, "getPINRetries");
    (
        map_get(&value, 3).unwrap().as_integer().unwrap().into(),
        map_get(&value, 4).and_then(Value::as_bool).unwrap_or(false),
    )
}

fn block_pin_entry(client: &mut CtapHidClient<Usb>) {
    for expected in [PIN_INVALID, PIN_INVALID, PIN_AUTH_BLOCKED] {
        assert_eq!(get_pin_token(client, "0000").0, expected);
    }
    assert_eq!(retries(client), (5, true));
    assert_eq!(get_pin_token(client, PIN).0, PIN_AUTH_BLOCKED);
}

/// SET_FEATURE(PORT_RESET) on the root hub port, as the kernel forwards it,
/// then the re-enumeration a host does after a reset and a new channel.
fn bus_reset(client: &mut CtapHidClient<Usb>) {
    let usb = &mut client.transport_mut().0;
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
    let mut client = connect(served.addr, "1-1");
    set_pin(&mut client, PIN);
    let (status, token) = get_pin_token(&mut client, PIN);
    assert_eq!(status, 0);
    let token = token.unwrap();
    block_pin_entry(&mut client);

    // A bus reset: the key kept its power, so PIN entry stays blocked and no
    // attempt is spent.
    bus_reset(&mut client);
    assert_eq!(retries(&mut client), (5, true));
    assert_eq!(get_pin_token(&mut client, PIN).0, PIN_AUTH_BLOCKED);
    assert_eq!(retries(&mut client), (5, true));

    // Detach (the connection goes) and import again: a power cycle.
    drop(client);
    let mut client = reconnect(served.addr);
    assert_eq!(retries(&mut client), (5, false));
    let (status, fresh) = get_pin_token(&mut client, PIN);
    assert_eq!(status, 0, "the right PIN works after a replug");
    assert_ne!(fresh.unwrap(), token, "tokens do not survive a power cycle");
    assert_eq!(retries(&mut client), (8, false));
    served.stop();
}

/// Imports `1-1` again, retrying while the server still holds it for the
/// connection that just closed.
fn reconnect(addr: std::net::SocketAddr) -> CtapHidClient<Usb> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match ferrokey_tests::usbip_client::UsbipClient::import(addr, "1-1") {
            Ok(mut usb) => {
                usb.enumerate().unwrap();
                let mut client = CtapHidClient::new(Usb(usb));
                client.set_timeout(std::time::Duration::from_secs(20));
                client.init().unwrap();
                return client;
            }
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => panic!("re-import: {e:?}"),
        }
    }
}
