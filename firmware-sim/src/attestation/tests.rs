//! Tests of the CA directory: creation, strict checks of every certificate,
//! the re-issue of an old non-DER batch certificate, the intermediate CA.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use p256::pkcs8::DecodePrivateKey;
use rcgen::{CertificateParams, CustomExtension, DnType, IsCa, KeyPair, KeyUsagePurpose};
use x509_cert::certificate::Version;
use x509_cert::der::oid::db::rfc4519::{
    COMMON_NAME, COUNTRY_NAME, ORGANIZATIONAL_UNIT_NAME, ORGANIZATION_NAME,
};
use x509_cert::der::Decode;
use x509_cert::ext::pkix::BasicConstraints;

use super::check::{check_issued_by, check_packed_attestation, check_valid_at, parse_strict};
use super::*;

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn pem_der(path: &Path) -> Vec<u8> {
    pem::parse(fs::read_to_string(path).unwrap())
        .unwrap()
        .contents()
        .to_vec()
}

/// A batch certificate as ferrokey made it before the fix: rcgen's
/// `IsCa::ExplicitNoCa`, which encodes basicConstraints as `30 03 01 01 00`,
/// and (`with_key_usage`) rcgen's keyUsage, `03 03 07 80 00`.
fn old_style_batch_cert(
    ca_dir: &Path,
    aaguid: &[u8; 16],
    with_key_usage: bool,
) -> (Vec<u8>, String) {
    let root_pem = fs::read_to_string(ca_dir.join(ROOT_CERT_FILE)).unwrap();
    let root_key =
        KeyPair::from_pem(&fs::read_to_string(ca_dir.join(ROOT_KEY_FILE)).unwrap()).unwrap();
    let root_params = CertificateParams::from_ca_cert_pem(&root_pem).unwrap();
    let root = root_params.self_signed(&root_key).unwrap();
    let batch_key =
        KeyPair::from_pem(&fs::read_to_string(ca_dir.join(BATCH_KEY_FILE)).unwrap()).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CountryName, "US");
    params
        .distinguished_name
        .push(DnType::OrganizationName, ORGANIZATION);
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, ATTESTATION_OU);
    params.distinguished_name.push(DnType::CommonName, BATCH_CN);
    params.is_ca = IsCa::ExplicitNoCa;
    if with_key_usage {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    }
    params.use_authority_key_identifier_extension = true;
    let mut ext = CustomExtension::from_oid_content(
        AAGUID_EXTENSION_OID,
        aaguid_extension_value(aaguid).to_vec(),
    );
    ext.set_criticality(false);
    params.custom_extensions.push(ext);
    let cert = params.signed_by(&batch_key, &root, &root_key).unwrap();
    (cert.der().to_vec(), cert.pem())
}

/// Every field WebAuthn §8.2.1 names, read with the strict parser.
fn assert_packed_attestation_fields(der: &[u8], aaguid: &[u8; 16]) {
    let cert = parse_strict(der).unwrap();
    assert_eq!(cert.version(), Version::V3);
    assert_eq!(cert.subject_attribute(COUNTRY_NAME).unwrap(), vec!["US"]);
    assert_eq!(
        cert.subject_attribute(ORGANIZATION_NAME).unwrap(),
        vec!["ferrokey"]
    );
    assert_eq!(
        cert.subject_attribute(ORGANIZATIONAL_UNIT_NAME).unwrap(),
        vec!["Authenticator Attestation"]
    );
    assert_eq!(
        cert.subject_attribute(COMMON_NAME).unwrap(),
        vec!["ferrokey Batch Attestation"]
    );
    let (critical, bc) = cert.basic_constraints.clone().expect("basicConstraints");
    assert!(critical);
    assert!(!bc.ca);
    assert_eq!(bc.path_len_constraint, None);
    let (aaguid_critical, found) = cert.aaguid.expect("AAGUID extension");
    assert!(!aaguid_critical);
    assert_eq!(&found, aaguid);
    assert!(cert.key_usage.unwrap().digital_signature());
    check_packed_attestation(&cert, Some(aaguid)).unwrap();
    check_valid_at(&cert, now()).unwrap();
}

#[test]
fn every_certificate_is_strict_der_and_the_batch_certificate_meets_webauthn_8_2_1() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();
    let aaguid = crate::identity::FERROKEY_AAGUID;

    let root = parse_strict(ca.root_cert_der()).unwrap();
    assert_eq!(root.version(), Version::V3);
    assert!(root.is_ca());
    assert_eq!(
        root.basic_constraints
            .as_ref()
            .unwrap()
            .1
            .path_len_constraint,
        Some(1)
    );
    assert!(root.key_usage.unwrap().key_cert_sign());
    check_issued_by(&root, &root).unwrap();

    assert!(ca.batch_cert_der().len() <= MAX_CERTIFICATE_SIZE);
    assert_packed_attestation_fields(ca.batch_cert_der(), &aaguid);
    let batch = parse_strict(ca.batch_cert_der()).unwrap();
    check_issued_by(&batch, &root).unwrap();
    // The encoded extension is exactly the DER of CA=false: an empty SEQUENCE.
    let bc_ext = [
        0x06, 0x03, 0x55, 0x1d, 0x13, 0x01, 0x01, 0xff, 0x04, 0x02, 0x30, 0x00,
    ];
    assert!(ca.batch_cert_der().windows(12).any(|w| w == bc_ext));

    // The private key matches the certificate and signs what it verifies.
    let key = SecretKey::from_slice(&ca.batch_private_key()).unwrap();
    assert_eq!(batch.public_key(), public_key_sec1(&key));
    use p256::ecdsa::signature::{Signer, Verifier};
    let sig: p256::ecdsa::Signature = p256::ecdsa::SigningKey::from(&key).sign(b"client data");
    p256::ecdsa::VerifyingKey::from_sec1_bytes(batch.public_key())
        .unwrap()
        .verify(b"client data", &sig)
        .unwrap();

    // A second, lenient parser agrees on the essentials.
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (rest, lenient) = X509Certificate::from_der(ca.batch_cert_der()).unwrap();
    assert!(rest.is_empty());
    assert!(!lenient.basic_constraints().unwrap().unwrap().value.ca);
    assert!(lenient.validity().is_valid());
    let years = (lenient.validity().not_after.timestamp()
        - lenient.validity().not_before.timestamp())
        / (365 * 86400);
    assert!(years >= 29, "{years}");
}

/// The defect of issue 10 §1.1: the old batch certificate's basicConstraints is
/// `30 03 01 01 00`. The strict parser must refuse it (the der crate's own
/// decoder accepts the DEFAULT; the re-encoding round trip catches it).
#[test]
fn the_strict_parser_refuses_the_old_explicit_ca_false_encoding() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();
    let (old, _) = old_style_batch_cert(ca.dir(), &crate::identity::FERROKEY_AAGUID, false);
    let explicit_false = [0x04, 0x05, 0x30, 0x03, 0x01, 0x01, 0x00];
    assert!(
        old.windows(7).any(|w| w == explicit_false),
        "the old encoding"
    );

    // der alone decodes `30 03 01 01 00` as CA=false...
    let bc = BasicConstraints::from_der(&[0x30, 0x03, 0x01, 0x01, 0x00]).unwrap();
    assert!(!bc.ca);
    // ...so the strict parser re-encodes, and refuses the certificate.
    let err = parse_strict(&old).unwrap_err();
    assert!(err.0.contains("basicConstraints"), "{err}");
    assert!(err.0.contains("not canonical DER"), "{err}");
    // The certificate as it really was also had rcgen's 9-bit keyUsage.
    let (old_with_ku, _) = old_style_batch_cert(ca.dir(), &crate::identity::FERROKEY_AAGUID, true);
    let rcgen_key_usage = [0x04, 0x05, 0x03, 0x03, 0x07, 0x80, 0x00];
    assert!(old_with_ku.windows(7).any(|w| w == rcgen_key_usage));
    let err = parse_strict(&old_with_ku).unwrap_err();
    assert!(err.0.contains("keyUsage is not canonical DER"), "{err}");
    let fixed_ku = replace(
        &old_with_ku,
        &rcgen_key_usage,
        &[0x04, 0x04, 0x03, 0x02, 0x07, 0x80],
    );
    // (Shortening the extension breaks the outer lengths: still refused.)
    assert!(parse_strict(&fixed_ku).is_err());
    // Other BER forms are refused by der itself: a BOOLEAN TRUE as 0x01.
    let err = parse_strict(&replace(
        &old,
        &explicit_false,
        &[0x04, 0x05, 0x30, 0x03, 0x01, 0x01, 0x01],
    ))
    .unwrap_err();
    assert!(err.0.contains("basicConstraints"), "{err}");
    // A long-form length where a short one fits is refused too.
    assert!(parse_strict(&[0x30, 0x81, 0x00]).is_err());
    // Trailing bytes after the certificate are refused.
    let mut trailing = ca.root_cert_der().to_vec();
    trailing.push(0);
    assert!(parse_strict(&trailing).is_err());
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = haystack
        .windows(from.len())
        .position(|w| w == from)
        .unwrap();
    [&haystack[..at], to, &haystack[at + from.len()..]].concat()
}

#[test]
fn an_old_non_der_batch_certificate_is_issued_again_with_the_same_key_and_root() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();
    let root_pem = ca.root_cert_pem().to_string();
    let key = ca.batch_private_key();
    let (old, old_pem) = old_style_batch_cert(ca.dir(), &crate::identity::FERROKEY_AAGUID, true);
    let batch_path = ca.dir().join(BATCH_CERT_FILE);
    fs::write(&batch_path, old_pem).unwrap();

    let again = Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();
    assert_eq!(again.root_cert_pem(), root_pem);
    assert_eq!(again.batch_private_key(), key);
    assert_ne!(again.batch_cert_der(), old.as_slice());
    assert_eq!(pem_der(&batch_path), again.batch_cert_der());
    assert_eq!(mode_of(&batch_path), 0o600);
    assert_packed_attestation_fields(again.batch_cert_der(), &crate::identity::FERROKEY_AAGUID);
    let root = parse_strict(again.root_cert_der()).unwrap();
    check_issued_by(&parse_strict(again.batch_cert_der()).unwrap(), &root).unwrap();

    // A certificate from another CA is not re-issued: it is refused, untouched.
    let other = tempfile::tempdir().unwrap();
    let foreign = Ca::load_or_create(other.path(), &CaOptions::default()).unwrap();
    let (_, foreign_pem) =
        old_style_batch_cert(foreign.dir(), &crate::identity::FERROKEY_AAGUID, true);
    fs::write(&batch_path, &foreign_pem).unwrap();
    let err = Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap_err();
    assert!(err.to_string().contains("batch-key.pem"), "{err}");
    assert_eq!(fs::read_to_string(&batch_path).unwrap(), foreign_pem);
}

#[test]
fn the_intermediate_ca_is_made_once_and_chains_the_batch_key_to_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();
    let chain = ca.chain().unwrap();
    let dir = ca.dir().join(INTERMEDIATE_DIR);
    assert_eq!(mode_of(&dir), 0o700);
    for f in [
        INTERMEDIATE_CERT_FILE,
        INTERMEDIATE_KEY_FILE,
        BATCH_CERT_FILE,
    ] {
        assert_eq!(mode_of(&dir.join(f)), 0o600, "{f}");
    }
    assert!(!ca.dir().join("intermediate.tmp").exists());

    let root = parse_strict(ca.root_cert_der()).unwrap();
    let intermediate = parse_strict(&chain.intermediate_cert_der).unwrap();
    assert!(intermediate.is_ca());
    assert_eq!(
        intermediate
            .basic_constraints
            .as_ref()
            .unwrap()
            .1
            .path_len_constraint,
        Some(0)
    );
    assert_eq!(intermediate.version(), Version::V3);
    check_issued_by(&intermediate, &root).unwrap();
    check_valid_at(&intermediate, now()).unwrap();
    assert_packed_attestation_fields(&chain.batch_cert_der, &crate::identity::FERROKEY_AAGUID);
    let leaf = parse_strict(&chain.batch_cert_der).unwrap();
    check_issued_by(&leaf, &intermediate).unwrap();
    assert!(check_issued_by(&leaf, &root).is_err());
    // Same key as the root-issued batch certificate.
    let key = SecretKey::from_slice(&ca.batch_private_key()).unwrap();
    assert_eq!(leaf.public_key(), public_key_sec1(&key));

    // Loaded again, unchanged; and from a new process's view too.
    let again = Ca::load_or_create(tmp.path(), &CaOptions::default())
        .unwrap()
        .chain()
        .unwrap();
    assert_eq!(again.batch_cert_der, chain.batch_cert_der);
    assert_eq!(again.intermediate_cert_der, chain.intermediate_cert_der);
    assert_eq!(
        ca.root_cert_pem(),
        Ca::load_or_create(tmp.path(), &CaOptions::default())
            .unwrap()
            .root_cert_pem()
    );

    // A damaged intermediate key is refused, untouched.
    let key_path = dir.join(INTERMEDIATE_KEY_FILE);
    let original = fs::read(&key_path).unwrap();
    fs::write(&key_path, fs::read(ca.dir().join(BATCH_KEY_FILE)).unwrap()).unwrap();
    let err = ca.chain().unwrap_err();
    assert!(err.to_string().contains("ca-key.pem"), "{err}");
    fs::write(&key_path, original).unwrap();
    ca.chain().unwrap();
}

#[test]
fn a_root_that_allows_no_intermediate_refuses_chain_mode_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();
    // Replace the root by one with pathLenConstraint 0, as older versions made,
    // and re-issue the batch certificate from it.
    let root_key =
        SecretKey::from_pkcs8_pem(&fs::read_to_string(ca.dir().join(ROOT_KEY_FILE)).unwrap())
            .unwrap();
    let (root_der, root_pem) = issue(
        &Subject {
            country: "US",
            organization: ORGANIZATION,
            unit: None,
            common_name: ROOT_CN,
        },
        &root_key,
        Profile::Ca { path_len: 0 },
        1,
        None,
    )
    .unwrap();
    fs::write(ca.dir().join(ROOT_CERT_FILE), root_pem).unwrap();
    let issuer = Issuer::new(&root_der, &root_key).unwrap();
    let batch_key = SecretKey::from_slice(&ca.batch_private_key()).unwrap();
    let (_, batch_pem) =
        issue_batch("US", &batch_key, &crate::identity::FERROKEY_AAGUID, &issuer).unwrap();
    fs::write(ca.dir().join(BATCH_CERT_FILE), batch_pem).unwrap();

    let ca = Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();
    let err = ca.chain().unwrap_err();
    assert!(err.to_string().contains("pathLenConstraint 0"), "{err}");
    assert!(!ca.dir().join(INTERMEDIATE_DIR).exists());
}

#[test]
fn files_are_private_and_reloaded_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();
    let dir = tmp.path().join(CA_DIR);
    assert_eq!(mode_of(&dir), 0o700);
    for f in [
        ROOT_CERT_FILE,
        ROOT_KEY_FILE,
        BATCH_CERT_FILE,
        BATCH_KEY_FILE,
    ] {
        assert_eq!(mode_of(&dir.join(f)), 0o600, "{f}");
    }
    assert!(!tmp.path().join("ca.tmp").exists());
    let b = Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();
    assert_eq!(a.batch_cert_der(), b.batch_cert_der());
    assert_eq!(a.root_cert_pem(), b.root_cert_pem());
    assert_eq!(a.batch_private_key(), b.batch_private_key());
    assert!(a.root_cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    // Never print keys in Debug output.
    let dbg = format!("{a:?}");
    assert!(!dbg.contains("key:"), "{dbg}");
}

#[test]
fn country_is_configurable() {
    let tmp = tempfile::tempdir().unwrap();
    let options = CaOptions {
        country: "DE".into(),
        ..CaOptions::default()
    };
    let ca = Ca::load_or_create(tmp.path(), &options).unwrap();
    let batch = parse_strict(ca.batch_cert_der()).unwrap();
    assert_eq!(batch.subject_attribute(COUNTRY_NAME).unwrap(), vec!["DE"]);
    let chain = ca.chain().unwrap();
    let leaf = parse_strict(&chain.batch_cert_der).unwrap();
    assert_eq!(leaf.subject_attribute(COUNTRY_NAME).unwrap(), vec!["DE"]);
}

#[test]
fn interrupted_creation_is_redone() {
    let tmp = tempfile::tempdir().unwrap();
    let stale = tmp.path().join("ca.tmp");
    fs::create_dir(&stale).unwrap();
    fs::write(stale.join(ROOT_KEY_FILE), b"partial").unwrap();
    Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();
    assert!(!stale.exists());
}

#[test]
fn damaged_or_mismatched_files_are_refused_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();
    let dir = tmp.path().join(CA_DIR);

    // A batch key from another CA does not match the certificate.
    let other = tempfile::tempdir().unwrap();
    Ca::load_or_create(other.path(), &CaOptions::default()).unwrap();
    let original = fs::read(dir.join(BATCH_KEY_FILE)).unwrap();
    let foreign = fs::read(other.path().join(CA_DIR).join(BATCH_KEY_FILE)).unwrap();
    fs::write(dir.join(BATCH_KEY_FILE), &foreign).unwrap();
    let err = Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap_err();
    assert!(err.to_string().contains("batch-key.pem"), "{err}");
    assert_eq!(fs::read(dir.join(BATCH_KEY_FILE)).unwrap(), foreign);
    fs::write(dir.join(BATCH_KEY_FILE), &original).unwrap();

    // Garbage in a certificate file.
    let cert = fs::read(dir.join(ROOT_CERT_FILE)).unwrap();
    fs::write(dir.join(ROOT_CERT_FILE), b"garbage").unwrap();
    let err = Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap_err();
    assert!(err.to_string().contains("root-cert.pem"), "{err}");
    assert_eq!(fs::read(dir.join(ROOT_CERT_FILE)).unwrap(), b"garbage");
    fs::write(dir.join(ROOT_CERT_FILE), &cert).unwrap();

    // A different expected AAGUID.
    let options = CaOptions {
        aaguid: [7; 16],
        ..CaOptions::default()
    };
    let err = Ca::load_or_create(tmp.path(), &options).unwrap_err();
    assert!(err.to_string().contains("AAGUID"), "{err}");

    Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();
}

#[test]
fn aaguid_extension_encoding() {
    let v = aaguid_extension_value(&[0xAA; 16]);
    assert_eq!(v[0], 0x04);
    assert_eq!(v[1], 16);
    assert_eq!(&v[2..], &[0xAA; 16]);
}

/// `testdata/ca-before-strict-der/`: the `ca/` directory `ferrokey ca` made
/// before this check (commit 96f7afd), private keys included (test-only keys).
/// Its root's keyUsage and its batch certificate's keyUsage and
/// basicConstraints are not DER.
fn copy_old_ca(state: &Path) {
    let from =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/attestation/testdata/ca-before-strict-der");
    let to = state.join(CA_DIR);
    fs::create_dir_all(&to).unwrap();
    for f in [
        ROOT_CERT_FILE,
        ROOT_KEY_FILE,
        BATCH_CERT_FILE,
        BATCH_KEY_FILE,
    ] {
        fs::copy(from.join(f), to.join(f)).unwrap();
        fs::set_permissions(to.join(f), fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[test]
fn a_ca_made_by_the_previous_version_keeps_its_root_and_gets_a_der_batch_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    copy_old_ca(tmp.path());
    let dir = tmp.path().join(CA_DIR);
    let old_root_pem = fs::read_to_string(dir.join(ROOT_CERT_FILE)).unwrap();
    let old_batch = pem_der(&dir.join(BATCH_CERT_FILE));
    let old_key = fs::read(dir.join(BATCH_KEY_FILE)).unwrap();
    // What a strict verifier sees in the old files.
    let err = parse_strict(&old_batch).unwrap_err();
    assert!(err.0.contains("not canonical DER"), "{err}");
    let old_bc = [0x04, 0x05, 0x30, 0x03, 0x01, 0x01, 0x00];
    assert!(old_batch.windows(7).any(|w| w == old_bc));
    assert!(parse_strict(&pem_der(&dir.join(ROOT_CERT_FILE))).is_err());

    let ca = Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();
    // The root, what relying parties trust, is unchanged; the batch key too.
    assert_eq!(ca.root_cert_pem(), old_root_pem);
    assert_eq!(
        fs::read_to_string(dir.join(ROOT_CERT_FILE)).unwrap(),
        old_root_pem
    );
    assert_eq!(fs::read(dir.join(BATCH_KEY_FILE)).unwrap(), old_key);
    // The batch certificate is new, strict DER, §8.2.1, issued by the old root.
    assert_ne!(ca.batch_cert_der(), old_batch.as_slice());
    assert_eq!(pem_der(&dir.join(BATCH_CERT_FILE)), ca.batch_cert_der());
    assert!(!ca.batch_cert_der().windows(7).any(|w| w == old_bc));
    let batch = parse_strict(ca.batch_cert_der()).unwrap();
    check_packed_attestation(&batch, Some(&crate::identity::FERROKEY_AAGUID)).unwrap();
    let root = super::check::parse_allowing_noncanonical(ca.root_cert_der()).unwrap();
    check_issued_by(&batch, &root).unwrap();
    // Loading again changes nothing more.
    let again = Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();
    assert_eq!(again.batch_cert_der(), ca.batch_cert_der());
    // Its root has pathLenConstraint 0: chain mode is refused with a clear message.
    let err = ca.chain().unwrap_err();
    assert!(err.to_string().contains("pathLenConstraint 0"), "{err}");
}

#[test]
fn each_mode_gives_the_core_what_it_needs() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(tmp.path(), &CaOptions::default()).unwrap();
    let config = |mode| {
        let mut config = ferrokey::authenticator::Config::default();
        let key = KeyAttestation::new(&ca, mode).unwrap();
        assert_eq!(key.mode(), mode);
        key.apply(&mut config);
        config
    };
    let none = config(AttestationMode::None);
    assert!(none.none_attestation && none.attestation.is_none());
    let self_ = config(AttestationMode::SelfAttestation);
    assert!(!self_.none_attestation && self_.attestation.is_none());
    let batch = config(AttestationMode::Batch);
    let att = batch.attestation.unwrap();
    assert!(!batch.none_attestation);
    assert_eq!(att.certificate.as_slice(), ca.batch_cert_der());
    assert!(att.intermediate.is_none());
    assert_eq!(att.private_key, ca.batch_private_key());
    let chain = config(AttestationMode::Chain).attestation.unwrap();
    let certs = ca.chain().unwrap();
    assert_eq!(
        chain.certificate.as_slice(),
        certs.batch_cert_der.as_slice()
    );
    assert_eq!(
        chain.intermediate.as_ref().unwrap().as_slice(),
        certs.intermediate_cert_der.as_slice()
    );
    assert_eq!(chain.private_key, ca.batch_private_key());
}
