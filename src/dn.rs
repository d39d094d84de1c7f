//! Distinguished names as RFC 8705 §2.1.2 asks: parsed from their RFC 4514 string form and
//! compared as RDN sequences (attribute types by OID, values case-insensitive with
//! insignificant spaces folded, in the spirit of RFC 4517 distinguishedNameMatch).

use std::fmt::Write as _;

/// Short names of RFC 4514 §3 and a few more that appear in client certificates.
const KEYWORDS: &[(&str, &str)] = &[
    ("CN", "2.5.4.3"),
    ("SN", "2.5.4.4"),
    ("SERIALNUMBER", "2.5.4.5"),
    ("C", "2.5.4.6"),
    ("L", "2.5.4.7"),
    ("ST", "2.5.4.8"),
    ("STREET", "2.5.4.9"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("TITLE", "2.5.4.12"),
    ("POSTALCODE", "2.5.4.17"),
    ("GN", "2.5.4.42"),
    ("GIVENNAME", "2.5.4.42"),
    ("INITIALS", "2.5.4.43"),
    ("GENERATIONQUALIFIER", "2.5.4.44"),
    ("DNQUALIFIER", "2.5.4.46"),
    ("PSEUDONYM", "2.5.4.65"),
    ("ORGANIZATIONIDENTIFIER", "2.5.4.97"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("EMAILADDRESS", "1.2.840.113549.1.9.1"),
    ("E", "1.2.840.113549.1.9.1"),
];

/// The OID of an attribute keyword (case-insensitive), if known.
fn oid_of(keyword: &str) -> Option<&'static str> {
    KEYWORDS
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(keyword))
        .map(|(_, oid)| *oid)
}

/// The short name to print for an OID, if it has one.
pub fn keyword_of(oid: &str) -> Option<&'static str> {
    KEYWORDS.iter().find(|(_, o)| *o == oid).map(|(k, _)| *k)
}

/// One attribute type and value, normalised for comparison.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ava {
    /// Dotted OID of the attribute type.
    pub oid: String,
    /// The value, normalised: trimmed, inner space runs folded, lower-cased; for an opaque
    /// value, the lower-case hex of its DER.
    pub value: String,
    /// A certificate value of a string type that is not decoded as text (SPEC §5): it never
    /// equals a configured value, which is always text.
    pub opaque: bool,
}

/// An attribute value as a certificate holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrValue<'a> {
    /// A string type decoded as its tag says.
    Text(&'a str),
    /// Anything else: the value's whole DER (tag, length, content), shown as `#hex`.
    Opaque(&'a [u8]),
}

impl<'a> From<&'a str> for AttrValue<'a> {
    fn from(s: &'a str) -> Self {
        Self::Text(s)
    }
}

/// A distinguished name in DER order (most general RDN first); each RDN's AVAs sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistinguishedName(pub Vec<Vec<Ava>>);

/// Why a configured DN string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnError {
    /// The string holds no RDN.
    #[error("the distinguished name is empty")]
    Empty,
    /// An AVA has no `=`.
    #[error("\"{0}\" is not of the form type=value")]
    MissingEquals(String),
    /// The attribute type is neither a known keyword nor a dotted OID.
    #[error(
        "unknown attribute type \"{0}\" (use a short name such as CN, O, OU, C, or a dotted OID)"
    )]
    UnknownType(String),
    /// A backslash escape is malformed.
    #[error("bad escape sequence in \"{0}\"")]
    BadEscape(String),
    /// A `#` hex value is not a DER-encoded string.
    #[error("bad #hex value in \"{0}\"")]
    BadHex(String),
    /// The value is not valid UTF-8 after unescaping.
    #[error("value is not valid UTF-8 after unescaping")]
    NotUtf8,
    /// The string looks like OpenSSL's `/C=US/O=…/CN=…` form.
    #[error("\"{0}\" looks like OpenSSL's /C=../CN=.. form; write it as RFC 4514, most specific first: e.g. CN=app,O=Contoso,C=US")]
    SlashForm(String),
}

/// Folds a value the way distinguishedNameMatch does, in spirit: trim, fold inner
/// white-space runs to one space, compare case-insensitively.
pub fn normalize_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.to_lowercase()
}

impl DistinguishedName {
    /// Parses an RFC 4514 string (most specific RDN first, e.g. `CN=app,O=Contoso,C=US`).
    pub fn parse_rfc4514(input: &str) -> Result<Self, DnError> {
        let trimmed = trim_unescaped(input);
        if trimmed.is_empty() {
            return Err(DnError::Empty);
        }
        if trimmed.starts_with('/') && trimmed.contains('=') {
            return Err(DnError::SlashForm(trimmed.to_string()));
        }
        let mut rdns = Vec::new();
        for rdn in split_unescaped(trimmed, ',') {
            let mut avas = Vec::new();
            for ava in split_unescaped(rdn, '+') {
                avas.push(parse_ava(ava)?);
            }
            avas.sort();
            rdns.push(avas);
        }
        // RFC 4514 writes the last RDN of the DER sequence first.
        rdns.reverse();
        Ok(Self(rdns))
    }

    /// Parses OpenSSL's `/C=US/O=Contoso/CN=app` form (DER order, most general RDN first;
    /// `+` joins the AVAs of one RDN). Returns the DN and its RFC 4514 spelling, for the
    /// warning that asks the operator to write that instead.
    pub fn parse_openssl_slash(input: &str) -> Result<(Self, String), DnError> {
        let trimmed = trim_unescaped(input);
        let body = trimmed
            .strip_prefix('/')
            .filter(|b| b.contains('='))
            .ok_or_else(|| DnError::MissingEquals(trimmed.to_string()))?;
        let mut raw: Vec<Vec<(String, String)>> = Vec::new();
        for rdn in split_unescaped(body, '/') {
            let mut avas = Vec::new();
            for ava in split_unescaped(rdn, '+') {
                avas.push(parse_ava_parts(ava)?);
            }
            raw.push(avas);
        }
        let dn = Self::from_der_order(
            raw.iter()
                .map(|rdn| rdn.iter().map(|(o, v)| (o.as_str(), v.as_str()))),
        );
        let rfc4514 = to_rfc4514(
            raw.iter()
                .map(|rdn| rdn.iter().map(|(o, v)| (o.as_str(), v.as_str()))),
        );
        Ok((dn, rfc4514))
    }

    /// Builds a DN from a certificate's attributes, given as (OID, value) in DER order.
    pub fn from_der_order<'a, R, A, V>(rdns: R) -> Self
    where
        R: IntoIterator<Item = A>,
        A: IntoIterator<Item = (&'a str, V)>,
        V: Into<AttrValue<'a>>,
    {
        Self(
            rdns.into_iter()
                .map(|rdn| {
                    let mut avas: Vec<Ava> = rdn
                        .into_iter()
                        .map(|(oid, value)| match value.into() {
                            AttrValue::Text(text) => Ava {
                                oid: oid.to_string(),
                                value: normalize_value(text),
                                opaque: false,
                            },
                            AttrValue::Opaque(der) => Ava {
                                oid: oid.to_string(),
                                value: crate::encoding::hex_lower(der),
                                opaque: true,
                            },
                        })
                        .collect();
                    avas.sort();
                    avas
                })
                .collect(),
        )
    }

    /// This DN as it is compared (values case-folded and space-folded; opaque values as
    /// `#hex`), RFC 4514 most specific RDN first: how `/config` shows a configured DN.
    pub fn to_rfc4514_string(&self) -> String {
        let mut out = String::new();
        for (i, rdn) in self.0.iter().rev().enumerate() {
            if i > 0 {
                out.push(',');
            }
            for (j, ava) in rdn.iter().enumerate() {
                if j > 0 {
                    out.push('+');
                }
                out.push_str(keyword_of(&ava.oid).unwrap_or(&ava.oid));
                out.push('=');
                if ava.opaque {
                    out.push('#');
                    out.push_str(&ava.value);
                } else {
                    escape_into(&mut out, &ava.value);
                }
            }
        }
        out
    }

    /// True when this DN, read in the opposite RDN order, equals `other`: the usual mistake
    /// of writing a DN in OpenSSL's default (DER) order. `check` warns about it.
    pub fn is_reverse_of(&self, other: &Self) -> bool {
        self.0.len() > 1 && self.0.iter().rev().eq(other.0.iter())
    }

    /// Heuristic for `check`: a DN written most general RDN first (OpenSSL's DER order, as
    /// `openssl x509 -subject` prints it: `C = US, O = Contoso, CN = app`, or just `O = x, CN =
    /// y`). True when the first written RDN is of a more general kind than the last one, by
    /// the ranks of [`generality`].
    pub fn looks_reversed(&self) -> bool {
        let (Some(first_written), Some(last_written)) = (self.0.last(), self.0.first()) else {
            return false;
        };
        let rank = |rdn: &[Ava]| rdn.iter().filter_map(|a| generality(&a.oid)).max();
        match (rank(first_written), rank(last_written)) {
            (Some(first), Some(last)) => self.0.len() > 1 && first < last,
            _ => false,
        }
    }

    /// `written` (an RFC 4514 string) with its RDNs in the opposite order and the spaces
    /// around `=` and `,` that OpenSSL prints dropped: the spelling to suggest for a DN that
    /// [`Self::looks_reversed`].
    pub fn reversed_spelling(written: &str) -> String {
        let mut rdns: Vec<String> = split_unescaped(trim_unescaped(written), ',')
            .into_iter()
            .map(|rdn| {
                split_unescaped(rdn, '+')
                    .into_iter()
                    .map(|ava| match ava.split_once('=') {
                        Some((t, v)) => format!("{}={}", t.trim(), trim_unescaped(v)),
                        None => ava.trim().to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("+")
            })
            .collect();
        rdns.reverse();
        rdns.join(",")
    }
}

/// How general an attribute type is, for [`DistinguishedName::looks_reversed`]: country and
/// domain components 0, state and locality 1, organisation 2, unit 3, names of one subject
/// (CN, UID, email, serial number) 4. Other types have no rank.
fn generality(oid: &str) -> Option<u8> {
    Some(match oid {
        "2.5.4.6" | "0.9.2342.19200300.100.1.25" => 0,
        "2.5.4.8" | "2.5.4.7" => 1,
        "2.5.4.10" | "2.5.4.97" => 2,
        "2.5.4.11" => 3,
        "2.5.4.3" | "0.9.2342.19200300.100.1.1" | "1.2.840.113549.1.9.1" | "2.5.4.5" => 4,
        _ => return None,
    })
}

/// Trims surrounding ASCII spaces, keeping a trailing space that a backslash escapes
/// (`CN=a\\ ` ends with an escaped space, RFC 4514 §2.4). Only U+0020 is trimmed here: any
/// other white space is part of what the string says, and is folded (or not) only when values
/// are compared ([`normalize_value`]), never before deciding whether a value is `#hex`.
fn trim_unescaped(s: &str) -> &str {
    let s = s.trim_start_matches(' ');
    let mut end = s.len();
    while s[..end].ends_with(' ') {
        let backslashes = s[..end - 1]
            .bytes()
            .rev()
            .take_while(|b| *b == b'\\')
            .count();
        if backslashes % 2 == 1 {
            break;
        }
        end -= 1;
    }
    &s[..end]
}

/// Splits at `sep` where it is not escaped by a backslash.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_ava(ava: &str) -> Result<Ava, DnError> {
    let (oid, raw) = parse_ava_parts(ava)?;
    Ok(Ava {
        oid,
        value: normalize_value(&raw),
        opaque: false,
    })
}

/// An AVA's OID and its value, unescaped but not normalized.
fn parse_ava_parts(ava: &str) -> Result<(String, String), DnError> {
    let (ty, value) = ava
        .split_once('=')
        .ok_or_else(|| DnError::MissingEquals(ava.trim().to_string()))?;
    let ty = ty.trim_matches(' ');
    let oid = parse_type(ty)?;
    // RFC 4514 §2.4: only an unescaped '#' as the very first character (after the ASCII
    // spaces a lenient reader skips) starts a hex value.
    let value = value.trim_start_matches(' ');
    let raw = if let Some(hex) = value.strip_prefix('#') {
        decode_hex_value(trim_unescaped(hex))
            .ok_or_else(|| DnError::BadHex(ava.trim().to_string()))?
    } else {
        unescape(value).map_err(|e| match e {
            Unescape::Bad => DnError::BadEscape(ava.trim().to_string()),
            Unescape::Utf8 => DnError::NotUtf8,
        })?
    };
    Ok((oid, raw))
}

fn parse_type(ty: &str) -> Result<String, DnError> {
    let numeric = ty
        .strip_prefix("OID.")
        .or_else(|| ty.strip_prefix("oid."))
        .unwrap_or(ty);
    let is_oid = !numeric.is_empty()
        && numeric.split('.').count() >= 2
        && numeric
            .split('.')
            .all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()));
    if is_oid {
        return Ok(numeric.to_string());
    }
    oid_of(ty)
        .map(str::to_string)
        .ok_or_else(|| DnError::UnknownType(ty.to_string()))
}

enum Unescape {
    Bad,
    Utf8,
}

/// Decodes RFC 4514 §2.4 escapes: `\` followed by a special character or two hex digits.
fn unescape(value: &str) -> Result<String, Unescape> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let next = *bytes.get(i + 1).ok_or(Unescape::Bad)?;
        if next.is_ascii_hexdigit() {
            let low = *bytes.get(i + 2).ok_or(Unescape::Bad)?;
            out.push(crate::encoding::hex_pair(next, low).ok_or(Unescape::Bad)?);
            i += 3;
        } else if b" \"#+,;<=>\\/".contains(&next) {
            out.push(next);
            i += 2;
        } else {
            return Err(Unescape::Bad);
        }
    }
    String::from_utf8(out).map_err(|_| Unescape::Utf8)
}

/// Decodes a `#hex` value: the BER (here DER) encoding of a directory string.
fn decode_hex_value(hex: &str) -> Option<String> {
    let bytes = crate::encoding::hex_decode(hex.as_bytes())?;
    let (&tag, rest) = bytes.split_first()?;
    let (&len, content) = rest.split_first()?;
    // Short-form lengths only: a DN value longer than 127 bytes as #hex is not worth the code.
    if len >= 0x80 || content.len() != usize::from(len) {
        return None;
    }
    decode_directory_string(tag, content)
}

/// The text of a string value with universal tag `tag`, decoded exactly as SPEC §5 says:
/// UTF8String, PrintableString, IA5String, BMPString (UCS-2 big-endian), UniversalString
/// (UCS-4 big-endian), and a TeletexString only when every byte is printable ASCII. `None`
/// for any other tag or for content that breaks its type's rules: such a value is never text.
pub fn decode_directory_string(tag: u8, content: &[u8]) -> Option<String> {
    const UTF8: u8 = 0x0c;
    const PRINTABLE: u8 = 0x13;
    const TELETEX: u8 = 0x14;
    const IA5: u8 = 0x16;
    const UNIVERSAL: u8 = 0x1c;
    const BMP: u8 = 0x1e;
    let printable = |b: &u8| b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(b);
    match tag {
        UTF8 => String::from_utf8(content.to_vec()).ok(),
        PRINTABLE if content.iter().all(printable) => ascii(content),
        IA5 if content.is_ascii() => ascii(content),
        TELETEX if content.iter().all(|b| (0x20..=0x7e).contains(b)) => ascii(content),
        // UCS-2: one code point per unit, so surrogates are not characters here.
        BMP if content.len() % 2 == 0 => content
            .chunks_exact(2)
            .map(|c| char::from_u32(u32::from(u16::from_be_bytes([c[0], c[1]]))))
            .collect(),
        UNIVERSAL if content.len() % 4 == 0 => content
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => None,
    }
}

fn ascii(content: &[u8]) -> Option<String> {
    std::str::from_utf8(content).ok().map(str::to_string)
}

/// Writes (OID, raw value) RDNs given in DER order as an RFC 4514 string, most specific first.
pub fn to_rfc4514<'a, R, A, V>(rdns_der_order: R) -> String
where
    R: IntoIterator<Item = A>,
    R::IntoIter: DoubleEndedIterator,
    A: IntoIterator<Item = (&'a str, V)>,
    V: Into<AttrValue<'a>>,
{
    let mut out = String::new();
    for (i, rdn) in rdns_der_order.into_iter().rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        for (j, (oid, value)) in rdn.into_iter().enumerate() {
            if j > 0 {
                out.push('+');
            }
            match keyword_of(oid) {
                Some(k) => out.push_str(k),
                None => out.push_str(oid),
            }
            out.push('=');
            match value.into() {
                AttrValue::Text(text) => escape_into(&mut out, text),
                // RFC 4514 §2.4: the hex form of the value's BER (here DER) encoding.
                AttrValue::Opaque(der) => {
                    out.push('#');
                    out.push_str(&crate::encoding::hex_lower(der));
                }
            }
        }
    }
    out
}

fn escape_into(out: &mut String, value: &str) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' | ' ' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            ' ' if i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\{b:02x}");
                }
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dn(s: &str) -> DistinguishedName {
        DistinguishedName::parse_rfc4514(s).unwrap()
    }

    fn cert_dn(rdns: &[&[(&str, &str)]]) -> DistinguishedName {
        DistinguishedName::from_der_order(rdns.iter().map(|r| r.iter().copied()))
    }

    #[test]
    fn rfc4514_order_is_reverse_of_der_order() {
        let parsed = dn("CN=app,O=Contoso,C=US");
        let der = cert_dn(&[
            &[("2.5.4.6", "US")],
            &[("2.5.4.10", "Contoso")],
            &[("2.5.4.3", "app")],
        ]);
        assert_eq!(parsed, der);
    }

    #[test]
    fn attribute_types_compare_by_oid() {
        assert_eq!(dn("cn=app,o=Contoso"), dn("CN=app,O=Contoso"));
        assert_eq!(
            dn("2.5.4.3=app,OID.2.5.4.10=Contoso"),
            dn("CN=app,O=Contoso")
        );
    }

    #[test]
    fn values_compare_case_insensitively_with_spaces_folded() {
        assert_eq!(dn("CN= My   App ,O=CONTOSO"), dn("CN=my app,O=contoso"));
        assert_ne!(dn("CN=myapp,O=contoso"), dn("CN=my app,O=contoso"));
    }

    #[test]
    fn escapes_are_decoded() {
        let parsed = dn(r"CN=Smith\, John,O=A\+B,OU=\23hash");
        let der = cert_dn(&[
            &[("2.5.4.11", "#hash")],
            &[("2.5.4.10", "A+B")],
            &[("2.5.4.3", "Smith, John")],
        ]);
        assert_eq!(parsed, der);
        assert_eq!(dn(r"CN=caf\C3\A9"), dn("CN=café"));
    }

    #[test]
    fn hex_values_decode_der_strings() {
        // 0c 03 "app" as UTF8String
        assert_eq!(dn("CN=#0c03617070"), dn("CN=app"));
        assert!(DistinguishedName::parse_rfc4514("CN=#zz").is_err());
    }

    #[test]
    fn multi_valued_rdns_ignore_ava_order() {
        assert_eq!(dn("CN=a+UID=b,O=x"), dn("UID=b+CN=a,O=x"));
    }

    #[test]
    fn reversed_order_is_a_different_dn() {
        let written = dn("C=US,O=Contoso,CN=app");
        let right = dn("CN=app,O=Contoso,C=US");
        assert_ne!(written, right);
        assert!(written.is_reverse_of(&right));
        assert!(written.looks_reversed());
        assert!(!right.looks_reversed());
    }

    #[test]
    fn any_order_that_puts_the_most_general_rdn_first_looks_reversed() {
        // OpenSSL 3's `-subject` spelling, with spaces around '=', and shorter DNs.
        for written in [
            "C = US, O = Contoso, CN = app",
            "O = Contoso, CN = app",
            "O=Contoso,OU=Billing",
            "DC=com,DC=contoso,CN=app",
            "L=Paris,CN=app",
        ] {
            assert!(dn(written).looks_reversed(), "{written}");
        }
        for written in [
            "CN=app,O=Contoso,C=US",
            "CN=app,O=Contoso",
            "OU=Billing,O=Contoso",
            "CN=app",
            "CN=a,CN=b",
            "CN=app,1.2.3.4=x",
        ] {
            assert!(!dn(written).looks_reversed(), "{written}");
        }
        assert_eq!(
            DistinguishedName::reversed_spelling("C = US, O = Contoso\\, Inc., CN = app"),
            "CN=app,O=Contoso\\, Inc.,C=US"
        );
        assert_eq!(
            dn(&DistinguishedName::reversed_spelling("O = x, CN = y")),
            dn("CN=y,O=x")
        );
    }

    #[test]
    fn openssl_slash_form_is_read_in_der_order_with_its_rfc4514_spelling() {
        let (parsed, rfc4514) =
            DistinguishedName::parse_openssl_slash("/C=US/O=Contoso, Inc./CN=app").unwrap();
        assert_eq!(rfc4514, r"CN=app,O=Contoso\, Inc.,C=US");
        assert_eq!(parsed, dn(&rfc4514));
        let (multi, _) = DistinguishedName::parse_openssl_slash(r"/O=a\/b/CN=x+UID=y").unwrap();
        assert_eq!(multi, dn(r"CN=x+UID=y,O=a/b"));
        assert!(DistinguishedName::parse_openssl_slash("CN=x").is_err());
        assert!(DistinguishedName::parse_openssl_slash("/FOO=x").is_err());
    }

    #[test]
    fn an_escaped_trailing_space_survives_trimming() {
        // Found by the dn fuzz target: printing "E " gives `CN=E\ `, which must parse back.
        let printed = to_rfc4514(vec![vec![("2.5.4.3", "E ")]]);
        assert_eq!(printed, r"CN=E\ ");
        assert_eq!(dn(&printed), dn("CN=E"));
        assert_eq!(dn("  CN=E\\ \t "), dn("CN=E"));
        assert!(DistinguishedName::parse_rfc4514(r"CN=E\\ ").is_ok());
    }

    #[test]
    fn bad_inputs_are_precise_errors() {
        assert_eq!(DistinguishedName::parse_rfc4514("  "), Err(DnError::Empty));
        assert!(matches!(
            DistinguishedName::parse_rfc4514("/C=US/O=Contoso/CN=app"),
            Err(DnError::SlashForm(_))
        ));
        assert!(matches!(
            DistinguishedName::parse_rfc4514("FOO=bar"),
            Err(DnError::UnknownType(_))
        ));
        assert!(matches!(
            DistinguishedName::parse_rfc4514("CN"),
            Err(DnError::MissingEquals(_))
        ));
        assert!(matches!(
            DistinguishedName::parse_rfc4514(r"CN=a\q"),
            Err(DnError::BadEscape(_))
        ));
        assert!(matches!(
            DistinguishedName::parse_rfc4514(r"CN=a\"),
            Err(DnError::BadEscape(_))
        ));
        assert_eq!(
            DistinguishedName::parse_rfc4514(r"CN=\ff"),
            Err(DnError::NotUtf8)
        );
    }

    #[test]
    fn printing_is_rfc4514_most_specific_first_and_escaped() {
        let printed = to_rfc4514(vec![
            vec![("2.5.4.6", "US")],
            vec![("2.5.4.10", "A,B")],
            vec![("2.5.4.3", " lead"), ("1.2.3.4", "x")],
        ]);
        assert_eq!(printed, r"CN=\ lead+1.2.3.4=x,O=A\,B,C=US");
        // What is printed parses back to the same DN.
        assert_eq!(
            dn(&printed),
            cert_dn(&[
                &[("2.5.4.6", "US")],
                &[("2.5.4.10", "A,B")],
                &[("2.5.4.3", " lead"), ("1.2.3.4", "x")],
            ])
        );
    }
}
