//! Hex, the one encoding several modules print (thumbprints, request ids, opaque DN values).

/// Upper-case hex, as the Entra portal shows a certificate thumbprint.
pub fn hex_upper(bytes: &[u8]) -> String {
    hex_with(bytes, b"0123456789ABCDEF")
}

/// Lower-case hex.
pub fn hex_lower(bytes: &[u8]) -> String {
    hex_with(bytes, b"0123456789abcdef")
}

fn hex_with(bytes: &[u8], digits: &[u8; 16]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(digits[usize::from(b >> 4)]));
        out.push(char::from(digits[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_matches_the_format_macro() {
        let bytes: Vec<u8> = (0..=255).collect();
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(super::hex_lower(&bytes), expected);
        assert_eq!(super::hex_upper(&bytes), expected.to_uppercase());
    }
}
