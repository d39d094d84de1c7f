//! Hex and percent-encoding, written and read in one place (thumbprints, request ids, opaque
//! DN values, form bodies, forwarded PEM headers).

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

/// Hex digit values; 0xff for bytes that are not hex digits.
const HEX: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// The byte two hex digits spell, or `None`.
pub fn hex_pair(high: u8, low: u8) -> Option<u8> {
    let (h, l) = (HEX[usize::from(high)], HEX[usize::from(low)]);
    ((h | l) & 0xf0 == 0).then_some(h << 4 | l)
}

/// Decodes an even-length hex string (either case).
pub fn hex_decode(hex: &[u8]) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    hex.chunks_exact(2).map(|p| hex_pair(p[0], p[1])).collect()
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_as_space`, as forms write it) in one
/// pass: runs without either are copied whole. `None` for a `%` not followed by two hex
/// digits.
pub fn percent_decode(raw: &[u8], plus_as_space: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    let next = |from: usize| {
        if plus_as_space {
            memchr::memchr2(b'%', b'+', &raw[from..])
        } else {
            memchr::memchr(b'%', &raw[from..])
        }
    };
    while let Some(at) = next(i) {
        out.extend_from_slice(&raw[i..i + at]);
        i += at;
        // Escapes often come in runs: decode them without searching again.
        while i < raw.len() {
            match raw[i] {
                b'+' if plus_as_space => {
                    out.push(b' ');
                    i += 1;
                }
                b'%' => {
                    out.push(hex_pair(*raw.get(i + 1)?, *raw.get(i + 2)?)?);
                    i += 3;
                }
                _ => break,
            }
        }
    }
    out.extend_from_slice(&raw[i..]);
    Some(out)
}

/// Seconds since the epoch: the one clock of the gateway (0 before 1970, saturating far ahead).
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `YYYY-MM-DD HH:MM:SSZ`, as Entra writes `timestamp`.
pub fn timestamp(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_matches_the_format_macro() {
        let bytes: Vec<u8> = (0..=255).collect();
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(super::hex_lower(&bytes), expected);
        assert_eq!(super::hex_upper(&bytes), expected.to_uppercase());
        assert_eq!(super::hex_decode(expected.as_bytes()), Some(bytes.clone()));
        assert_eq!(
            super::hex_decode(expected.to_uppercase().as_bytes()),
            Some(bytes)
        );
        assert_eq!(super::hex_decode(b"0g"), None);
        assert_eq!(super::hex_decode(b"abc"), None);
    }

    #[test]
    fn percent_decoding_refuses_broken_escapes() {
        assert_eq!(
            super::percent_decode(b"a%41+b", true),
            Some(b"aA b".to_vec())
        );
        assert_eq!(
            super::percent_decode(b"a%41+b", false),
            Some(b"aA+b".to_vec())
        );
        assert_eq!(super::percent_decode(b"%4", false), None);
        assert_eq!(super::percent_decode(b"%zz", false), None);
        assert_eq!(super::percent_decode(b"%", true), None);
    }
}
