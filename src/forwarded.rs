//! Client certificates forwarded by a trusted front proxy (SPEC §3 `[front_proxy]`): the header
//! formats, each parsed strictly, and the trusted-peer ranges.

use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::HeaderMap;
use rustls_pki_types::CertificateDer;

/// Largest forwarded-certificate header accepted (a chain of a few certificates, PEM-escaped).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// The header formats of SPEC §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderFormat {
    /// RFC 9440 `Client-Cert` (+ `Client-Cert-Chain`).
    ClientCert,
    /// Envoy `x-forwarded-client-cert` (`Cert=`, `Chain=`).
    Xfcc,
    /// nginx `$ssl_client_escaped_cert` in `x-ssl-client-cert`.
    NginxEscaped,
    /// Traefik `X-Forwarded-Tls-Client-Cert`.
    Traefik,
    /// ingress-nginx `ssl-client-cert` (`auth-tls-pass-certificate-to-upstream`): the same
    /// URL-encoded PEM as [`Self::NginxEscaped`] under the controller's header name.
    IngressNginx,
}

impl HeaderFormat {
    /// Parses the config value (the header name).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "client-cert" => Some(Self::ClientCert),
            "x-forwarded-client-cert" => Some(Self::Xfcc),
            "x-ssl-client-cert" => Some(Self::NginxEscaped),
            "x-forwarded-tls-client-cert" => Some(Self::Traefik),
            "ssl-client-cert" => Some(Self::IngressNginx),
            _ => None,
        }
    }

    /// The accepted config values, for the message that refuses another.
    pub const EXPECTED: &'static str = "\"client-cert\", \"x-forwarded-client-cert\", \"x-ssl-client-cert\", \"x-forwarded-tls-client-cert\" or \"ssl-client-cert\"";

    /// The header that carries the certificate.
    pub fn header(self) -> &'static str {
        match self {
            Self::ClientCert => "client-cert",
            Self::Xfcc => "x-forwarded-client-cert",
            Self::NginxEscaped => "x-ssl-client-cert",
            Self::Traefik => "x-forwarded-tls-client-cert",
            Self::IngressNginx => "ssl-client-cert",
        }
    }
}

/// Why a forwarded-certificate header was refused. `Display` is what the client is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardedError {
    /// The header occurs more than once.
    #[error("the {0} header occurs more than once")]
    Duplicated(&'static str),
    /// The header holds a list where one certificate is expected.
    #[error("the {0} header holds several values; exactly one certificate is expected")]
    MultiValued(&'static str),
    /// Longer than [`MAX_HEADER_BYTES`].
    #[error("the {0} header is too large")]
    TooLarge(&'static str),
    /// Not of the header's format.
    #[error("the {0} header is malformed: {1}")]
    Malformed(&'static str, &'static str),
}

/// A forwarded chain, leaf first.
pub type Chain = Vec<CertificateDer<'static>>;

/// Reads the forwarded certificate chain in `format` from `headers`: `Ok(None)` when the proxy
/// forwarded none.
pub fn read(format: HeaderFormat, headers: &HeaderMap) -> Result<Option<Chain>, ForwardedError> {
    let name = format.header();
    let Some(value) = single(headers, name)? else {
        return Ok(None);
    };
    let chain = match format {
        HeaderFormat::ClientCert => {
            let leaf = sf_binary(value).ok_or(ForwardedError::Malformed(
                name,
                "expected one :base64: byte sequence",
            ))?;
            let mut chain = vec![leaf];
            let mut total = value.len();
            for v in headers.get_all("client-cert-chain") {
                total += v.len();
                if total > MAX_HEADER_BYTES {
                    return Err(ForwardedError::TooLarge("client-cert-chain"));
                }
                let text = v
                    .to_str()
                    .map_err(|_| ForwardedError::Malformed("client-cert-chain", "not ASCII"))?;
                for item in text.split(',') {
                    chain.push(sf_binary(item).ok_or(ForwardedError::Malformed(
                        "client-cert-chain",
                        "expected a list of :base64: byte sequences",
                    ))?);
                }
            }
            chain
        }
        HeaderFormat::Xfcc => xfcc(value)?,
        HeaderFormat::NginxEscaped | HeaderFormat::IngressNginx => {
            let pem =
                url_decode(value).ok_or(ForwardedError::Malformed(name, "bad URL encoding"))?;
            let chain = pem_chain(&pem).ok_or(ForwardedError::Malformed(
                name,
                "expected a URL-encoded PEM certificate",
            ))?;
            if chain.len() != 1 {
                return Err(ForwardedError::MultiValued(name));
            }
            chain
        }
        HeaderFormat::Traefik => {
            let text =
                url_decode(value).ok_or(ForwardedError::Malformed(name, "bad URL encoding"))?;
            let mut chain = Vec::new();
            for part in text.split(',') {
                let b64: String = part.chars().filter(|c| !c.is_whitespace()).collect();
                let der = STANDARD.decode(b64).map_err(|_| {
                    ForwardedError::Malformed(
                        name,
                        "expected base64 certificates separated by commas",
                    )
                })?;
                chain.push(CertificateDer::from(der));
            }
            chain
        }
    };
    // The leaf is read (and refused with its reason) by the token endpoint; every element
    // after it must be a certificate, or the header is malformed (SPEC §3).
    let chain_header = match format {
        HeaderFormat::ClientCert => "client-cert-chain",
        _ => name,
    };
    if chain.iter().skip(1).any(|c| !is_certificate(c)) {
        return Err(ForwardedError::Malformed(
            chain_header,
            "a chain element is not a DER X.509 certificate",
        ));
    }
    Ok(Some(chain))
}

fn is_certificate(der: &CertificateDer<'_>) -> bool {
    matches!(x509_parser::parse_x509_certificate(der.as_ref()), Ok((rest, _)) if rest.is_empty())
}

/// The one value of `name`, refusing duplicates and oversized values; an empty value counts
/// as absent (nginx sends an empty variable when there is no certificate).
fn single<'h>(
    headers: &'h HeaderMap,
    name: &'static str,
) -> Result<Option<&'h str>, ForwardedError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ForwardedError::Duplicated(name));
    }
    if first.len() > MAX_HEADER_BYTES {
        return Err(ForwardedError::TooLarge(name));
    }
    // Header values hold no control characters (http checks that); a quick UTF-8 check here,
    // and anything that is not ASCII fails the format's own decoding below.
    let text = std::str::from_utf8(first.as_bytes())
        .map_err(|_| ForwardedError::Malformed(name, "not ASCII"))?
        .trim();
    if !text.is_ascii() {
        return Err(ForwardedError::Malformed(name, "not ASCII"));
    }
    if text.is_empty() {
        return Ok(None);
    }
    if name == "client-cert" && text.contains(',') {
        return Err(ForwardedError::MultiValued(name));
    }
    Ok(Some(text))
}

/// An RFC 8941 Byte Sequence: `:base64:` (padding as RFC 8941 writes it).
fn sf_binary(item: &str) -> Option<CertificateDer<'static>> {
    let inner = item.trim().strip_prefix(':')?.strip_suffix(':')?;
    STANDARD.decode(inner).ok().map(CertificateDer::from)
}

/// Percent-decoding (no `+` for space: these are PEM bodies, where `+` is base64).
fn url_decode(s: &str) -> Option<String> {
    String::from_utf8(crate::encoding::percent_decode(s.as_bytes(), false)?).ok()
}

fn pem_chain(pem: &str) -> Option<Chain> {
    // The CERTIFICATE blocks, other text ignored (RFC 7468 §2), decoded with the base64
    // crate: rustls-pki-types' decoder is constant-time, meant for keys, and several times
    // slower on the hot path of every forwarded certificate and binding decision.
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    use memchr::memmem::Finder;
    static FINDERS: std::sync::LazyLock<(Finder<'static>, Finder<'static>)> =
        std::sync::LazyLock::new(|| (Finder::new(BEGIN), Finder::new(END)));
    let (begin, finish) = &*FINDERS;
    let mut rest = pem.as_bytes();
    let mut certs = Vec::new();
    while let Some(start) = begin.find(rest) {
        let body = &rest[start + BEGIN.len()..];
        let end = finish.find(body)?;
        let mut b64 = Vec::with_capacity(end);
        let mut line_start = 0;
        // Lines trimmed and joined; white space inside a line fails the decoding.
        for nl in memchr::memchr_iter(b'\n', &body[..end]).chain([end]) {
            b64.extend_from_slice(body[line_start..nl].trim_ascii());
            line_start = nl + 1;
        }
        certs.push(CertificateDer::from(STANDARD.decode(b64).ok()?));
        rest = &body[end + END.len()..];
    }
    (!certs.is_empty()).then_some(certs)
}

/// Envoy's `x-forwarded-client-cert`: comma-separated elements of `;`-separated `key=value`
/// pairs (keys case-insensitive, values optionally quoted). The last element is the hop
/// closest to the gateway: its `Cert` is the client's leaf, its `Chain` the full chain.
fn xfcc(value: &str) -> Result<Chain, ForwardedError> {
    const NAME: &str = "x-forwarded-client-cert";
    let elements =
        split_unquoted(value, ',').ok_or(ForwardedError::Malformed(NAME, "unbalanced quotes"))?;
    let last = elements
        .last()
        .ok_or(ForwardedError::Malformed(NAME, "empty"))?;
    let mut cert = None;
    let mut chain = None;
    let mut hash = None;
    for pair in
        split_unquoted(last, ';').ok_or(ForwardedError::Malformed(NAME, "unbalanced quotes"))?
    {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair
            .split_once('=')
            .ok_or(ForwardedError::Malformed(NAME, "expected key=value pairs"))?;
        let v = unquote(v.trim()).ok_or(ForwardedError::Malformed(NAME, "bad quoting"))?;
        let slot = match k.trim().to_ascii_lowercase().as_str() {
            "cert" => &mut cert,
            "chain" => &mut chain,
            "hash" => &mut hash,
            _ => continue,
        };
        if slot.replace(v).is_some() {
            return Err(ForwardedError::Duplicated(NAME));
        }
    }
    let leaf_pem = match (cert, &chain) {
        (Some(c), _) => c,
        (None, Some(c)) => c.clone(),
        (None, None) => {
            return Err(ForwardedError::Malformed(
                NAME,
                "the last element has no Cert= or Chain=",
            ))
        }
    };
    let leaf_pem =
        url_decode(&leaf_pem).ok_or(ForwardedError::Malformed(NAME, "bad URL encoding in Cert"))?;
    let leaf = pem_chain(&leaf_pem)
        .and_then(|c| c.into_iter().next())
        .ok_or(ForwardedError::Malformed(
            NAME,
            "Cert is not a URL-encoded PEM certificate",
        ))?;
    if let Some(h) = hash {
        let expected = crate::identity::hex_lower(&crate::identity::sha256(leaf.as_ref()));
        if !h.eq_ignore_ascii_case(&expected) {
            return Err(ForwardedError::Malformed(NAME, "Hash does not match Cert"));
        }
    }
    let mut out = vec![leaf.clone()];
    if let Some(c) = chain {
        let pem =
            url_decode(&c).ok_or(ForwardedError::Malformed(NAME, "bad URL encoding in Chain"))?;
        let certs = pem_chain(&pem).ok_or(ForwardedError::Malformed(
            NAME,
            "Chain is not URL-encoded PEM",
        ))?;
        // Chain includes the leaf; keep the rest as intermediates.
        out.extend(certs.into_iter().filter(|c| *c != leaf));
    }
    Ok(out)
}

fn split_unquoted(s: &str, sep: char) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quoted {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + 1;
        }
    }
    if quoted {
        return None;
    }
    parts.push(&s[start..]);
    Some(parts)
}

fn unquote(v: &str) -> Option<String> {
    let Some(inner) = v.strip_prefix('"') else {
        return Some(v.to_string());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(chars.next()?);
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// An address range of `trusted_peers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    /// Parses `"10.0.0.0/8"`, `"::1/128"` or a bare address.
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
            None => {
                let a = s.trim().parse::<IpAddr>().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// Whether `ip` (IPv4-mapped IPv6 treated as IPv4) is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn cidrs_contain_what_they_should() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(!Cidr::parse("::1")
            .unwrap()
            .contains("127.0.0.1".parse().unwrap()));
        assert_eq!(Cidr::parse("10.0.0.0/33"), None);
        assert_eq!(Cidr::parse("nonsense"), None);
    }

    #[test]
    fn client_cert_refuses_lists_duplicates_and_bad_encoding() {
        let h = headers(&[("client-cert", ":AAAA:, :BBBB:")]);
        assert_eq!(
            read(HeaderFormat::ClientCert, &h),
            Err(ForwardedError::MultiValued("client-cert"))
        );
        let h = headers(&[("client-cert", ":AAAA:"), ("client-cert", ":AAAA:")]);
        assert_eq!(
            read(HeaderFormat::ClientCert, &h),
            Err(ForwardedError::Duplicated("client-cert"))
        );
        let h = headers(&[("client-cert", "AAAA")]);
        assert!(matches!(
            read(HeaderFormat::ClientCert, &h),
            Err(ForwardedError::Malformed(..))
        ));
        let h = headers(&[("client-cert", ":not base64!:")]);
        assert!(matches!(
            read(HeaderFormat::ClientCert, &h),
            Err(ForwardedError::Malformed(..))
        ));
        assert_eq!(read(HeaderFormat::ClientCert, &HeaderMap::new()), Ok(None));
    }

    #[test]
    fn oversized_headers_are_refused() {
        let big = format!(":{}:", "A".repeat(MAX_HEADER_BYTES));
        let h = headers(&[("client-cert", &big)]);
        assert_eq!(
            read(HeaderFormat::ClientCert, &h),
            Err(ForwardedError::TooLarge("client-cert"))
        );
    }

    #[test]
    fn xfcc_splits_on_unquoted_separators_and_takes_the_last_element() {
        assert_eq!(
            split_unquoted(r#"a="x,y";b=1,c=2"#, ',').unwrap(),
            vec![r#"a="x,y";b=1"#, "c=2"]
        );
        assert_eq!(unquote(r#""a\"b""#).as_deref(), Some("a\"b"));
        assert!(split_unquoted(r#"a="x"#, ',').is_none());
        let h = headers(&[("x-forwarded-client-cert", "By=spiffe://x;URI=spiffe://y")]);
        assert!(matches!(
            read(HeaderFormat::Xfcc, &h),
            Err(ForwardedError::Malformed(..))
        ));
    }

    #[test]
    fn url_decoding_refuses_broken_escapes() {
        assert_eq!(url_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(url_decode("a+b").as_deref(), Some("a+b"));
        assert_eq!(url_decode("a%2"), None);
        assert_eq!(url_decode("a%zz"), None);
    }
}
