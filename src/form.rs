//! `application/x-www-form-urlencoded` bodies, parsed strictly and in linear time (SPEC §4
//! step 2): the token endpoint's and the embedded identity provider's.

use crate::error::GatewayError;

/// A parsed `application/x-www-form-urlencoded` body.
#[derive(Debug)]
pub struct Form<'a> {
    /// (decoded name, decoded value, raw `name=value` segment as sent), in order.
    pub pairs: Vec<(String, String, &'a [u8])>,
}

impl Form<'_> {
    /// The value of `name`, treating an empty value as omitted (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, v, _)| n == name && !v.is_empty())
            .map(|(_, v, _)| v.as_str())
    }
}

/// The most parameters a token request may have (SPEC §4 step 2).
pub const MAX_PARAMETERS: usize = 64;

/// The parameter names the gateway reads or adds. Entra reads names case-insensitively, so a
/// case variant of one of these (`Scope`, `CLIENT_ID`) could mean something to Entra that
/// the gateway did not check: it is refused.
const KNOWN_NAMES: [&str; 7] = [
    "grant_type",
    "client_id",
    "scope",
    "resource",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
];

/// Parses a form body strictly, in one pass: UTF-8 after decoding, valid percent escapes, at
/// most [`MAX_PARAMETERS`] parameters, no parameter name twice (RFC 6749 §3.2) whatever the
/// values, and no name that differs only in ASCII case from another name of the request or
/// from one the gateway reads or adds.
pub fn parse_form(body: &[u8]) -> Result<Form<'_>, GatewayError> {
    let mut pairs: Vec<(String, String, &[u8])> = Vec::new();
    let mut rest = body;
    loop {
        // Empty segments (`&&`) are skipped a byte at a time, others found with memchr.
        while let [b'&', tail @ ..] = rest {
            rest = tail;
        }
        if rest.is_empty() {
            break;
        }
        let end = memchr::memchr(b'&', rest).unwrap_or(rest.len());
        let segment = &rest[..end];
        rest = &rest[end..];
        if pairs.len() == MAX_PARAMETERS {
            return Err(GatewayError::invalid_request(format!(
                "the request has more than {MAX_PARAMETERS} parameters"
            )));
        }
        let (name, value) = match segment.iter().position(|b| *b == b'=') {
            Some(i) => (&segment[..i], &segment[i + 1..]),
            None => (segment, &segment[..0]),
        };
        let name = decode_component(name)?;
        if name.is_empty() {
            return Err(GatewayError::invalid_request(
                "the form has a parameter without a name",
            ));
        }
        // At most MAX_PARAMETERS names are held, so this scan is bounded by a constant.
        if let Some((seen, _, _)) = pairs.iter().find(|(n, _, _)| n.eq_ignore_ascii_case(&name)) {
            return Err(GatewayError::invalid_request(if *seen == name {
                format!(
                    "parameter '{}' is included more than once",
                    printable(&name)
                )
            } else {
                format!(
                    "parameters '{}' and '{}' differ only in case; parameter names are case-sensitive",
                    printable(seen),
                    printable(&name)
                )
            }));
        }
        if let Some(known) = KNOWN_NAMES
            .iter()
            .find(|k| k.eq_ignore_ascii_case(&name) && **k != name)
        {
            return Err(GatewayError::invalid_request(format!(
                "parameter '{}' is not '{known}': parameter names are case-sensitive",
                printable(&name)
            )));
        }
        let value = decode_component(value)?;
        pairs.push((name, value, segment));
    }
    Ok(Form { pairs })
}

/// Decodes `+` and `%XX`, then checks UTF-8.
fn decode_component(raw: &[u8]) -> Result<String, GatewayError> {
    let decoded = crate::encoding::percent_decode(raw, true).ok_or_else(|| {
        GatewayError::invalid_request("the form body has a malformed percent-escape")
    })?;
    String::from_utf8(decoded)
        .map_err(|_| GatewayError::invalid_request("the form body is not valid UTF-8"))
}

/// A parameter name safe to put in a description: printable ASCII, at most 64 characters.
pub fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_and_percent() {
        let form =
            parse_form(b"grant_type=client_credentials&scope=api%3A%2F%2Fx%2F.default+b").unwrap();
        assert_eq!(form.get("grant_type"), Some("client_credentials"));
        assert_eq!(form.get("scope"), Some("api://x/.default b"));
    }

    #[test]
    fn repeated_names_are_refused_whatever_the_values() {
        assert!(parse_form(b"a=1&a=1").is_err());
        assert!(parse_form(b"a=&a=").is_err());
        assert!(parse_form(b"a=1&%61=2").is_err());
    }

    #[test]
    fn case_variants_of_names_are_refused() {
        assert!(parse_form(b"scope=a&Scope=b").is_err());
        assert!(parse_form(b"Client_Assertion=x").is_err());
        assert!(parse_form(b"CLIENT_ID=x").is_err());
        assert!(parse_form(b"foo=1&FOO=2").is_err());
        assert!(parse_form(b"foo=1&bar=2").is_ok());
    }

    #[test]
    fn at_most_64_parameters() {
        let body: Vec<u8> = (0..64)
            .map(|i| format!("p{i}=v"))
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes();
        assert_eq!(parse_form(&body).unwrap().pairs.len(), 64);
        let mut more = body.clone();
        more.extend_from_slice(b"&p64=v");
        assert!(parse_form(&more).is_err());
    }

    #[test]
    fn empty_values_count_as_omitted() {
        let form = parse_form(b"client_secret=&client_id=x").unwrap();
        assert_eq!(form.get("client_secret"), None);
        assert_eq!(form.get("client_id"), Some("x"));
    }

    #[test]
    fn malformed_escapes_and_bad_utf8_are_refused() {
        assert!(parse_form(b"a=%zz").is_err());
        assert!(parse_form(b"a=%4").is_err());
        assert!(parse_form(b"a=%ff").is_err());
        assert!(parse_form(b"=x").is_err());
    }
}
