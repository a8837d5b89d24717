//! Lowercase hex, as the statement, the events and the CLI print bytes.

/// `bytes` as lowercase hex, two digits each.
pub fn lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_lowercase_digits_per_byte() {
        assert_eq!(super::lower(&[0x00, 0x0a, 0xff]), "000aff");
        assert_eq!(super::lower(&[]), "");
    }
}
