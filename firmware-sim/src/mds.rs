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

use anyhow::{bail, Context, Result};
use clap::Args;
use time::OffsetDateTime;

use self::blob::JwsSignature;
use self::ca::MdsCa;
use self::statement::KeyModel;
use crate::attestation::{AttestationMode, Ca, CaOptions, KeyAttestation};
use crate::cli::state::core_config;
use crate::identity::{Aaguid, FERROKEY_AAGUID};
use crate::key::KeyOptions;
use crate::presence::UvMode;
use crate::storage::{create_private_dir, write_file_atomic};
use ferrokey::authenticator::{Attestation, EnterpriseAttestation};
use ferrokey::profile::AttestationKind;

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
    /// The keys' profile (`serve --profile`): the protocol family, versions,
    /// algorithms, options, AAGUID and attestation follow it.
    #[arg(long, value_name = "NAME", value_parser = crate::cli::parse_profile)]
    pub profile: Option<String>,
    /// The keys' profile file (`serve --profile-file`).
    #[arg(long, value_name = "PATH")]
    pub profile_file: Option<PathBuf>,
    /// A quirk the keys are served with (`serve --quirk`, repeatable): getInfo's limits.
    #[arg(long = "quirk", value_name = "NAME", value_parser = crate::cli::parse_quirk)]
    pub quirks: Vec<String>,
    /// The keys have the fingerprint sensor (`serve --bio`): a fingerprint in
    /// userVerificationDetails, getInfo's bioEnroll.
    #[arg(long, conflicts_with = "uv")]
    pub bio: bool,
    /// The keys are enterprise-attestation capable (`serve --enterprise`): getInfo's ep.
    #[arg(long)]
    pub enterprise: bool,
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

/// The keys `args` describe, as `ferrokey serve` with the same flags makes
/// them: their profile, attestation, UV, sensor and enterprise attestation
/// (checked as serve checks them). `--aaguid` replaces the AAGUID described.
pub fn key_model(ca: &Ca, args: &MdsArgs, firmware_version: u32) -> Result<KeyModel> {
    let mut options = KeyOptions {
        uv: args.uv,
        attestation: args.attestation,
        bio: args.bio,
        enterprise_attestation: args.enterprise,
        profile: args.profile.clone(),
        quirks: args.quirks.clone(),
        ..KeyOptions::default()
    };
    if let Some(path) = &args.profile_file {
        options.profile_spec = Some(crate::profile::ProfileSpec::load(path)?);
    }
    options.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let profile = options
        .resolved_profile()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let attestation = KeyAttestation::new(ca, args.attestation)?;
    // getInfo only says whether a key is capable (ep); the per-key
    // certificate it would sign with is not part of the model, so the batch
    // key stands in for it in the throwaway core.
    let enterprise = args
        .enterprise
        .then(|| -> Result<EnterpriseAttestation> {
            Ok(EnterpriseAttestation {
                attestation: Attestation {
                    private_key: ca.batch_private_key(),
                    certificate: heapless::Vec::from_slice(ca.batch_cert_der())
                        .map_err(|_| anyhow::anyhow!("the batch certificate is too long"))?,
                    intermediate: None,
                },
                rp_ids: heapless::Vec::new(),
            })
        })
        .transpose()?;
    let mut config = core_config(
        FERROKEY_AAGUID,
        &attestation,
        options.core_flags(profile, enterprise),
    );
    config.firmware_version = firmware_version;
    if let Some(aaguid) = args.aaguid {
        config.aaguid = aaguid.0;
    }
    let model = KeyModel {
        config,
        uv: options.effective_uv(),
        attestation: match profile.attestation {
            AttestationKind::Device => args.attestation,
            AttestationKind::SelfAttestation => AttestationMode::SelfAttestation,
            AttestationKind::None => AttestationMode::None,
        },
    };
    if !model.u2f_only() && model.aaguid() == [0; 16] {
        bail!(
            "the keys of profile {} report the all-zero AAGUID (a passkey provider that does not say \
             which it is) with attestation {}: a relying party cannot tie their registrations to any \
             metadata, so there is no statement to write. Describe a provider that names itself with \
             a profile file that sets `aaguid` (and attestation self or none)",
            options.profile_name(),
            model.attestation.name()
        );
    }
    Ok(model)
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
    let model = key_model(&ca, args, firmware_version)?;
    let mds_ca = MdsCa::load_or_create(state_dir, &args.country)?;
    let statement = statement::metadata_statement(&model, ca.root_cert_der())
        .map_err(|e| anyhow::anyhow!("making the metadata statement: {e}"))?;
    let now = OffsetDateTime::now_utc();
    let today = iso_date(now);
    let payload = blob::payload(
        LEGAL_HEADER,
        u64::try_from(now.unix_timestamp()).unwrap_or(0),
        &iso_date(now + time::Duration::days(NEXT_UPDATE_DAYS)),
        vec![blob::entry(statement.clone(), &today)],
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
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use serde_json::json;

    fn args(out: &Path, jws: JwsSignature) -> MdsArgs {
        MdsArgs {
            state: crate::cli::StateArgs { state_dir: None },
            out: out.to_path_buf(),
            attestation: AttestationMode::Chain,
            uv: UvMode::Off,
            profile: None,
            profile_file: None,
            quirks: Vec::new(),
            bio: false,
            enterprise: false,
            aaguid: None,
            jws_signature: jws,
            country: "US".into(),
        }
    }

    /// The statement `ferrokey mds` makes with `args` changed by `change`
    /// (batch attestation unless changed), and the CA it was made with.
    fn statement_with(change: impl FnOnce(&mut MdsArgs)) -> Result<(serde_json::Value, Ca)> {
        let state = tempfile::tempdir().unwrap();
        let ca = Ca::load_or_create(state.path(), &CaOptions::default()).unwrap();
        let mut a = args(state.path(), JwsSignature::Der);
        a.attestation = AttestationMode::Batch;
        change(&mut a);
        let model = key_model(&ca, &a, 0x000100)?;
        let statement = statement::metadata_statement(&model, ca.root_cert_der())
            .map_err(|e| anyhow::anyhow!(e))?;
        Ok((statement, ca))
    }

    fn statement_of(change: impl FnOnce(&mut MdsArgs)) -> serde_json::Value {
        statement_with(change).unwrap().0
    }

    fn uv_methods(statement: &serde_json::Value) -> Vec<String> {
        statement["userVerificationDetails"]
            .as_array()
            .unwrap()
            .iter()
            .map(|way| {
                way[0]["userVerificationMethod"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn the_default_key_is_described_as_the_core_answers_get_info() {
        let (s, ca) = statement_with(|_| {}).unwrap();
        let info = &s["authenticatorGetInfo"];
        assert_eq!(info["versions"], json!(["U2F_V2", "FIDO_2_0", "FIDO_2_1"]));
        let hex: String = FERROKEY_AAGUID.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(info["aaguid"], json!(hex));
        assert_eq!(s["aaguid"], json!(Aaguid(FERROKEY_AAGUID).to_string()));
        assert_eq!(info["options"]["rk"], json!(true));
        assert!(info["options"].get("uv").is_none());
        assert!(info["options"].get("ep").is_none());
        assert_eq!(
            info["algorithms"][0],
            json!({"alg": -7, "type": "public-key"})
        );
        assert_eq!(info["maxMsgSize"], json!(7609));
        assert!(info.get("remainingDiscoverableCredentials").is_none());
        assert_eq!(s["protocolFamily"], "fido2");
        assert_eq!(
            s["upv"],
            json!([{"major": 1, "minor": 0}, {"major": 1, "minor": 1}])
        );
        assert_eq!(
            s["authenticationAlgorithms"],
            json!(["secp256r1_ecdsa_sha256_raw", "ed25519_eddsa_sha512_raw"])
        );
        assert_eq!(s["attestationTypes"], json!(["basic_full"]));
        assert_eq!(
            s["attestationRootCertificates"],
            json!([STANDARD.encode(ca.root_cert_der())])
        );
        assert_eq!(uv_methods(&s), ["presence_internal", "passcode_external"]);

        let with_uv = statement_of(|a| a.uv = UvMode::Auto);
        assert_eq!(
            with_uv["authenticatorGetInfo"]["options"]["uv"],
            json!(true)
        );
        assert_eq!(with_uv["authenticatorGetInfo"]["uvModality"], json!(2));
        assert_eq!(
            uv_methods(&with_uv),
            [
                "presence_internal",
                "passcode_external",
                "fingerprint_internal"
            ]
        );
        let none = statement_of(|a| a.attestation = AttestationMode::None);
        assert_eq!(none["attestationTypes"], json!(["none"]));
        let own = statement_of(|a| a.attestation = AttestationMode::SelfAttestation);
        assert_eq!(own["attestationTypes"], json!(["basic_surrogate"]));
    }

    #[test]
    fn each_profile_is_described_as_it_is_served() {
        let older = statement_of(|a| a.profile = Some("ctap2.0".into()));
        let info = &older["authenticatorGetInfo"];
        assert_eq!(info["versions"], json!(["U2F_V2", "FIDO_2_0"]));
        assert_eq!(info["maxMsgSize"], json!(1200));
        assert_eq!(info["pinUvAuthProtocols"], json!([1]));
        assert!(info.get("algorithms").is_none() && info.get("firmwareVersion").is_none());
        assert_eq!(older["upv"], json!([{"major": 1, "minor": 0}]));
        assert_eq!(
            older["authenticationAlgorithms"],
            json!(["secp256r1_ecdsa_sha256_raw"])
        );
        assert_eq!(older["authenticatorVersion"], json!(0x000100));

        let strict = statement_of(|a| a.profile = Some("strict".into()));
        assert_eq!(
            strict["authenticatorGetInfo"]["maxCredentialCountInList"],
            json!(1)
        );
        assert_eq!(
            strict["authenticatorGetInfo"]["maxCredentialIdLength"],
            json!(128)
        );
        let quirk = statement_of(|a| a.quirks = vec!["one-credential-per-list".into()]);
        assert_eq!(
            quirk["authenticatorGetInfo"]["maxCredentialCountInList"],
            json!(1)
        );
        assert_eq!(quirk["authenticatorGetInfo"]["maxMsgSize"], json!(7609));
    }

    #[test]
    fn a_u2f_key_is_described_by_its_attestation_certificate_key_identifier() {
        let (s, ca) = statement_with(|a| a.profile = Some("u2f".into())).unwrap();
        assert_eq!(s["protocolFamily"], "u2f");
        assert_eq!(s["upv"], json!([{"major": 1, "minor": 1}]));
        assert_eq!(s["publicKeyAlgAndEncodings"], json!(["ecc_x962_raw"]));
        assert!(s.get("aaguid").is_none() && s.get("authenticatorGetInfo").is_none());
        assert_eq!(uv_methods(&s), ["presence_internal"]);
        // SHA-1 of the batch key's uncompressed point, computed from the key.
        let key = p256::SecretKey::from_slice(&ca.batch_private_key()).unwrap();
        let point = key.public_key().to_encoded_point(false);
        let want: String = <sha1::Sha1 as sha1::Digest>::digest(point.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(s["attestationCertificateKeyIdentifiers"], json!([want]));
        let entry = blob::entry(s, "2026-01-01");
        assert_eq!(entry["attestationCertificateKeyIdentifiers"], json!([want]));
        assert!(entry.get("aaguid").is_none());

        // Self-signed U2F certificates (one per registration) cannot be named.
        for mode in [AttestationMode::SelfAttestation, AttestationMode::None] {
            let err = statement_with(|a| {
                a.profile = Some("u2f".into());
                a.attestation = mode;
            })
            .unwrap_err()
            .to_string();
            assert!(err.contains("self-signed"), "{err}");
        }
    }

    #[test]
    fn bio_and_enterprise_keys_say_so() {
        let bio = statement_of(|a| a.bio = true);
        assert_eq!(
            uv_methods(&bio),
            [
                "presence_internal",
                "passcode_external",
                "fingerprint_internal"
            ]
        );
        assert_eq!(
            bio["userVerificationDetails"][2][0]["baDesc"],
            json!({"maxTemplates": ferrokey::bio::MAX_TEMPLATES, "maxRetries": 8})
        );
        // A fresh sensor has no finger: bioEnroll false, uv not yet usable.
        assert_eq!(
            bio["authenticatorGetInfo"]["options"]["bioEnroll"],
            json!(false)
        );
        let ep = statement_of(|a| a.enterprise = true);
        assert_eq!(ep["authenticatorGetInfo"]["options"]["ep"], json!(false));
        assert!(statement_with(|a| {
            a.enterprise = true;
            a.attestation = AttestationMode::None;
        })
        .unwrap_err()
        .to_string()
        .contains("enterpriseAttestation needs an attestation other than none"));
    }

    #[test]
    fn a_passkey_provider_without_an_aaguid_has_no_statement_and_one_with_its_own_has() {
        let err = statement_with(|a| a.profile = Some("synced-passkey".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("all-zero AAGUID") && err.contains("synced-passkey"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("provider.toml");
        std::fs::write(
            &file,
            "base = \"synced-passkey\"\naaguid = \"00112233-4455-6677-8899-aabbccddeeff\"\n",
        )
        .unwrap();
        let s = statement_of(|a| a.profile_file = Some(file));
        assert_eq!(s["aaguid"], "00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(s["attestationTypes"], json!(["none"]));
        assert_eq!(
            s["upv"],
            json!([{"major": 1, "minor": 0}, {"major": 1, "minor": 1}])
        );
        assert_eq!(s["authenticatorGetInfo"]["options"]["uv"], json!(true));
        assert_eq!(
            s["authenticatorGetInfo"]["versions"],
            json!(["FIDO_2_0", "FIDO_2_1"])
        );
        assert!(uv_methods(&s).contains(&"fingerprint_internal".to_string()));
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
