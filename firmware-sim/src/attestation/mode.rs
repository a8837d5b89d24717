//! The attestation a key gives when it makes a credential.

use std::fmt;

/// How a key attests new credentials (`ferrokey serve --attestation`, the key
/// options' `attestation`).
///
/// | mode | makeCredential | U2F REGISTER |
/// |------|----------------|--------------|
/// | `none` | fmt `none`, empty statement | self-signed certificate of the new key |
/// | `self` | `packed` signed by the credential key, no x5c | self-signed certificate of the new key |
/// | `batch` (default) | `packed`, x5c = [batch certificate] (issued by the root) | batch certificate |
/// | `chain` | `packed`, x5c = [batch certificate, intermediate CA] (root → intermediate → batch) | the batch certificate issued by the intermediate |
///
/// U2F has no way to say "no attestation": a REGISTER response always carries
/// a certificate, so `none` and `self` keys send a self-signed one there.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    clap::ValueEnum,
    serde::Deserialize,
    serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum AttestationMode {
    /// No attestation statement (fmt "none").
    None,
    /// Self attestation: packed, signed by the credential's own key.
    #[value(name = "self")]
    #[serde(rename = "self")]
    SelfAttestation,
    /// Packed with the batch certificate, issued by the root (the default).
    #[default]
    Batch,
    /// Packed with the batch certificate and the intermediate CA that issued it.
    Chain,
}

impl AttestationMode {
    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            AttestationMode::None => "none",
            AttestationMode::SelfAttestation => "self",
            AttestationMode::Batch => "batch",
            AttestationMode::Chain => "chain",
        }
    }

    /// Whether this mode uses the CA's certificates (batch or chain).
    pub fn uses_certificates(self) -> bool {
        matches!(self, AttestationMode::Batch | AttestationMode::Chain)
    }
}

impl fmt::Display for AttestationMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn names_agree_between_cli_json_and_display() {
        for mode in AttestationMode::value_variants() {
            let cli = mode.to_possible_value().unwrap();
            assert_eq!(cli.get_name(), mode.name());
            assert_eq!(mode.to_string(), mode.name());
            let json = serde_json::to_string(mode).unwrap();
            assert_eq!(json, format!("\"{}\"", mode.name()));
            let back: AttestationMode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, *mode);
        }
        assert_eq!(AttestationMode::default(), AttestationMode::Batch);
        assert!(serde_json::from_str::<AttestationMode>("\"packed\"").is_err());
    }
}
