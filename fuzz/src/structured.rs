//! The input of the `ctap2_structured` target: requests of every CTAP2
//! command's shape, derived with `arbitrary` (see that target).
#![allow(missing_docs)]

use arbitrary::Arbitrary;
use ciborium::Value;
use ferrokey_test_support::cbor::{bytes, int, text};

use crate::RP;

/// A CBOR value of bounded depth.
#[derive(Arbitrary, Debug)]
pub enum Cbor {
    Int(i64),
    Bytes(Vec<u8>),
    Text(String),
    Bool(bool),
    Null,
    Array(Vec<Leaf>),
    Map(Vec<(Leaf, Leaf)>),
    Tag(u64, Leaf),
    Float(f64),
}

#[derive(Arbitrary, Debug)]
pub enum Leaf {
    Int(i64),
    Bytes(Vec<u8>),
    Text(String),
    Bool(bool),
}

impl Leaf {
    pub fn value(&self) -> Value {
        match self {
            Leaf::Int(i) => int(*i),
            Leaf::Bytes(b) => bytes(b),
            Leaf::Text(t) => text(t),
            Leaf::Bool(b) => Value::Bool(*b),
        }
    }
}

impl Cbor {
    pub fn value(&self) -> Value {
        match self {
            Cbor::Int(i) => int(*i),
            Cbor::Bytes(b) => bytes(b),
            Cbor::Text(t) => text(t),
            Cbor::Bool(b) => Value::Bool(*b),
            Cbor::Null => Value::Null,
            Cbor::Array(items) => Value::Array(items.iter().map(Leaf::value).collect()),
            Cbor::Map(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| (k.value(), v.value()))
                    .collect(),
            ),
            Cbor::Tag(tag, inner) => Value::Tag(*tag, Box::new(inner.value())),
            Cbor::Float(f) => Value::Float(*f),
        }
    }
}

#[derive(Arbitrary, Debug)]
pub enum Rp {
    Template,
    Numbered(u8),
    Text(String),
}

impl Rp {
    pub fn id(&self) -> String {
        match self {
            Rp::Template => RP.to_string(),
            Rp::Numbered(n) => format!("rp{}.example", n % 8),
            Rp::Text(t) => t.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
pub enum CredId {
    Template(u8),
    Created(u8),
    Bytes(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
pub enum Auth {
    None,
    /// pinUvAuthParam computed with the token the harness holds.
    Token,
    /// Arbitrary pinUvAuthParam and protocol.
    Garbage(Vec<u8>, u8),
    /// An empty pinUvAuthParam (the "is a PIN set" probe).
    Empty(u8),
}

#[derive(Arbitrary, Debug)]
pub enum Extension {
    CredProtect(u8),
    HmacSecret(bool),
    CredBlob(Vec<u8>),
    GetCredBlob(bool),
    LargeBlobKey(bool),
    MinPinLength(bool),
    HmacSecretGet { salts: u8 },
    Unknown(String, Cbor),
}

#[derive(Arbitrary, Debug)]
pub enum PinOp {
    GetRetries(u8),
    GetKeyAgreement(u8),
    SetPin(u8, String),
    ChangePin {
        protocol: u8,
        current_correct: bool,
        new: String,
    },
    Token {
        protocol: u8,
        correct: bool,
        permissions: Option<u8>,
        rp: Option<Rp>,
    },
    UvToken {
        protocol: u8,
        permissions: u8,
        rp: Option<Rp>,
    },
    UvRetries,
    /// Any subcommand with arbitrary parameters.
    Raw {
        protocol: Option<u8>,
        sub: u8,
        extra: Vec<(u8, Cbor)>,
    },
}

#[derive(Arbitrary, Debug)]
pub enum Step {
    MakeCredential {
        rp: Rp,
        user: Vec<u8>,
        options: Vec<(u8, bool)>,
        algs: Vec<i8>,
        exclude: Vec<CredId>,
        extensions: Vec<Extension>,
        auth: Auth,
        extra: Vec<(u8, Cbor)>,
    },
    GetAssertion {
        rp: Rp,
        allow: Vec<CredId>,
        options: Vec<(u8, bool)>,
        extensions: Vec<Extension>,
        auth: Auth,
        extra: Vec<(u8, Cbor)>,
    },
    GetNextAssertion,
    GetInfo,
    ClientPin(PinOp),
    CredentialManagement {
        sub: u8,
        rp: Option<Rp>,
        credential: Option<CredId>,
        user: Option<Vec<u8>>,
        auth: Auth,
        preview: bool,
    },
    LargeBlobs {
        get: Option<u16>,
        set: Option<Vec<u8>>,
        valid_array: bool,
        offset: u16,
        length: Option<u16>,
        auth: Auth,
    },
    Config {
        sub: u8,
        min_length: Option<u8>,
        rp_ids: Vec<Rp>,
        force_change: Option<bool>,
        auth: Auth,
    },
    Reset,
    Selection,
    /// A command byte with an arbitrary CBOR body.
    Other(u8, Cbor),
    /// The user's answer to presence from now on.
    Presence(bool),
    /// The clock advances.
    Wait(u16),
}

#[derive(Arbitrary, Debug)]
pub struct Input {
    /// Whether the user approves presence at first.
    pub approve: bool,
    /// The requests.
    pub steps: Vec<Step>,
}
