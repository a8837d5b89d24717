//! `ferrokey mds`: FIDO Metadata Service v3 data for ferrokey keys, so a relying
//! party that checks attestation against metadata accepts them in tests.
//!
//! Writes into `--out DIR`:
//!
//! | file | contents |
//! |------|----------|
//! | `metadata-statement.json` | the metadata statement (MDS v3.0 §4) for the AAGUID: attestation root = the `ferrokey ca` root, authenticatorGetInfo as the core answers it |
//! | `blob.jwt` | an MDS3 BLOB (a JWT, ES256) with one entry holding that statement, signed by the metadata signing key, its certificate in the header's x5c |
//! | `mds-root.pem` | the ferrokey MDS root that signing certificate chains to: what the relying party trusts for BLOBs |
//!
//! The MDS root and signing key live in `<state-dir>/ca/mds/` ([`ca`]); the
//! BLOB's `no` is the Unix time of its making (strictly increasing between
//! runs more than a second apart) and `nextUpdate` 30 days later.

pub mod blob;
pub mod ca;
pub mod statement;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use time::OffsetDateTime;

use self::blob::JwsSignature;
use self::ca::MdsCa;
use self::statement::KeyModel;
use crate::attestation::{AttestationMode, Ca, CaOptions};
use crate::identity::{Aaguid, FERROKEY_AAGUID};
use crate::presence::UvMode;
use crate::storage::{create_private_dir, write_file_atomic};

/// The statement's and the BLOB's legalHeader.
pub const LEGAL_HEADER: &str = "ferrokey test metadata, made by `ferrokey mds`: not FIDO Alliance \
     data. Trust it only in tests.";
/// The metadata statement file.
pub const STATEMENT_FILE: &str = "metadata-statement.json";
/// The BLOB file.
pub const BLOB_FILE: &str = "blob.jwt";
/// The MDS root certificate file.
pub const MDS_ROOT_FILE: &str = "mds-root.pem";
/// Days from the BLOB's making to its nextUpdate.
const NEXT_UPDATE_DAYS: i64 = 30;

/// Options of `ferrokey mds`.
#[derive(Clone, Debug, Args)]
pub struct MdsArgs {
    #[command(flatten)]
    pub state: crate::cli::StateArgs,
    /// Directory to write metadata-statement.json, blob.jwt and mds-root.pem into
    /// (created if needed).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The attestation mode the keys are served with (the statement's attestationTypes).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = AttestationMode::Batch)]
    pub attestation: AttestationMode,
    /// The keys' built-in user verification (`serve --uv`): getInfo and userVerificationDetails.
    #[arg(long, value_enum, default_value_t = UvMode::Off)]
    pub uv: UvMode,
    /// The AAGUID to describe [default: ferrokey's]. Another AAGUID makes metadata
    /// that does not cover ferrokey's keys (a relying party must then refuse them).
    #[arg(long, value_name = "UUID", value_parser = parse_aaguid)]
    pub aaguid: Option<Aaguid>,
    /// Encoding of the BLOB's ES256 signature: raw (R || S, RFC 7518, for JOSE
    /// libraries) or der (what python-fido2's fido2.mds3.parse_blob verifies).
    #[arg(long, value_enum, default_value_t = JwsSignature::Raw)]
    pub jws_signature: JwsSignature,
    /// Country (subject C) of the certificates, if they are created now.
    #[arg(long, value_name = "CC", default_value = crate::attestation::DEFAULT_COUNTRY,
          value_parser = parse_country)]
    pub country: String,
}

fn parse_country(text: &str) -> Result<String, String> {
    if text.len() == 2 && text.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(text.to_string())
    } else {
        Err(format!(
            "{text:?} is not a two-letter upper-case country code (e.g. US)"
        ))
    }
}

fn parse_aaguid(text: &str) -> Result<Aaguid, String> {
    Aaguid::parse(text)
        .ok_or_else(|| format!("{text:?} is not a UUID (32 hex digits, hyphens optional)"))
}

/// What `ferrokey mds` wrote.
#[derive(Debug)]
pub struct Written {
    /// The statement file.
    pub statement: PathBuf,
    /// The BLOB file.
    pub blob: PathBuf,
    /// The MDS root file.
    pub mds_root: PathBuf,
}

fn iso_date(t: OffsetDateTime) -> String {
    let d = t.date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Makes the statement and the BLOB for the state directory `state_dir`;
/// `firmware_version` is getInfo's (the statement's authenticatorVersion).
pub fn write(state_dir: &Path, args: &MdsArgs, firmware_version: u32) -> Result<Written> {
    let ca = Ca::load_or_create(
        state_dir,
        &CaOptions {
            country: args.country.clone(),
            aaguid: FERROKEY_AAGUID,
        },
    )?;
    let mds_ca = MdsCa::load_or_create(state_dir, &args.country)?;
    let aaguid = args.aaguid.map_or(FERROKEY_AAGUID, |a| a.0);
    let model = KeyModel {
        aaguid,
        attestation: args.attestation,
        uv: args.uv,
        firmware_version,
    };
    let statement = statement::metadata_statement(&model, ca.root_cert_der())
        .map_err(|e| anyhow::anyhow!("making the metadata statement: {e}"))?;
    let now = OffsetDateTime::now_utc();
    let today = iso_date(now);
    let payload = blob::payload(
        LEGAL_HEADER,
        u64::try_from(now.unix_timestamp()).unwrap_or(0),
        &iso_date(now + time::Duration::days(NEXT_UPDATE_DAYS)),
        vec![blob::entry(
            &Aaguid(aaguid).to_string(),
            statement.clone(),
            &today,
        )],
    );
    let jwt = blob::sign(
        &blob::header(&mds_ca.signer_der),
        &payload,
        &mds_ca.signer_key,
        args.jws_signature,
    )?;

    create_private_dir(&args.out)?;
    let written = Written {
        statement: args.out.join(STATEMENT_FILE),
        blob: args.out.join(BLOB_FILE),
        mds_root: args.out.join(MDS_ROOT_FILE),
    };
    let mut statement_text = serde_json::to_string_pretty(&statement)?;
    statement_text.push('\n');
    for (path, contents) in [
        (&written.statement, statement_text.as_bytes()),
        (&written.blob, jwt.as_bytes()),
        (&written.mds_root, mds_ca.root_pem.as_bytes()),
    ] {
        write_file_atomic(path, contents).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attestation::check::{check_issued_by, parse_strict};
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine;
    use p256::ecdsa::signature::Verifier;

    fn args(out: &Path, jws: JwsSignature) -> MdsArgs {
        MdsArgs {
            state: crate::cli::StateArgs { state_dir: None },
            out: out.to_path_buf(),
            attestation: AttestationMode::Chain,
            uv: UvMode::Off,
            aaguid: None,
            jws_signature: jws,
            country: "US".into(),
        }
    }

    #[test]
    fn the_blob_is_signed_by_a_certificate_that_chains_to_the_written_mds_root() {
        let state = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        let written = write(state.path(), &args(out.path(), JwsSignature::Raw), 0x0100).unwrap();

        let root_pem = std::fs::read_to_string(&written.mds_root).unwrap();
        let root = parse_strict(pem::parse(&root_pem).unwrap().contents()).unwrap();
        let jwt = std::fs::read_to_string(&written.blob).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        let signer_der = STANDARD.decode(header["x5c"][0].as_str().unwrap()).unwrap();
        let signer = parse_strict(&signer_der).unwrap();
        check_issued_by(&signer, &root).unwrap();
        let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(signer.public_key()).unwrap();
        let sig =
            p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap()).unwrap();
        key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();

        // The payload's one entry is the statement, for ferrokey's AAGUID and root.
        let payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        let statement: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&written.statement).unwrap()).unwrap();
        assert_eq!(payload["entries"][0]["metadataStatement"], statement);
        assert_eq!(
            payload["entries"][0]["aaguid"],
            Aaguid(FERROKEY_AAGUID).to_string()
        );
        let ca = Ca::load_or_create(state.path(), &CaOptions::default()).unwrap();
        assert_eq!(
            statement["attestationRootCertificates"][0],
            STANDARD.encode(ca.root_cert_der())
        );
        assert_eq!(statement["attestationTypes"][0], "basic_full");
        assert!(payload["no"].as_u64().unwrap() > 1_700_000_000);

        // Made again: same MDS root and signer, a later or equal serial.
        let again = write(state.path(), &args(out.path(), JwsSignature::Der), 0x0100).unwrap();
        assert_eq!(std::fs::read_to_string(&again.mds_root).unwrap(), root_pem);
        let jwt = std::fs::read_to_string(&again.blob).unwrap();
        let payload2: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(jwt.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert!(payload2["no"].as_u64() >= payload["no"].as_u64());
        assert_eq!(
            payload2["entries"][0]["metadataStatement"]["authenticatorVersion"],
            0x0100
        );
    }
}
