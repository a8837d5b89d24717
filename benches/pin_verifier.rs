//! The cost of one PIN verification (the stored verifier of src/pin/verifier.rs:
//! PBKDF2-HMAC-SHA-256 at `PinKdfCost::DEFAULT` iterations) next to its floor,
//! one P-256 signature made with the `p256` crate, measured in the same run.
//!
//! `cargo bench --bench pin_verifier` prints milliseconds per verification,
//! the ratio verification / signature, and the iterations one millisecond
//! buys on this machine (what the default was chosen from).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use ferrokey::pin::verifier::{PinKdfCost, PinVerifier};
use ferrokey::test_platform::seeded_rng;
use p256::ecdsa::signature::Signer;

/// The median time of `f` over `runs` runs (after one warm-up).
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too: be quick then.
    let quick = !std::env::args().any(|a| a == "--bench");
    let runs = if quick { 3 } else { 21 };
    let signing_key = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap();
    let message = [0x5Au8; 64];
    let signature = median(runs, || {
        let s: p256::ecdsa::Signature = signing_key.sign(black_box(&message));
        black_box(s);
    });
    let pin_hash = [0x3Cu8; 16];
    let cost = if quick {
        PinKdfCost::TEST
    } else {
        PinKdfCost::DEFAULT
    };
    let verifier = PinVerifier::new(&pin_hash, cost, &mut seeded_rng(1));
    let verification = median(runs, || {
        assert!(verifier.matches(black_box(&pin_hash)));
    });
    let ms = verification.as_secs_f64() * 1e3;
    println!(
        "P-256 signature (floor): {:.3} ms",
        signature.as_secs_f64() * 1e3
    );
    println!(
        "PIN verification at {} iterations: {ms:.2} ms = {:.0} signatures; {:.0} iterations per ms",
        cost.get(),
        verification.as_secs_f64() / signature.as_secs_f64(),
        f64::from(cost.get()) / ms
    );
}
