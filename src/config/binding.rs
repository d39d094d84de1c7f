//! `[binding]`, `[authz]` and `[introspection]` (SPEC §10): certificate-bound access tokens.

use super::raw::{RawAuthz, RawBinding, RawIntrospection};
use super::validate::Cx;
use super::*;

/// `binding.max_records` when not set.
pub const DEFAULT_MAX_RECORDS: usize = 200_000;

/// Which certificates a bound token may be used with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingMode {
    /// Only the certificate that obtained the token (a record written at issuance).
    Certificate,
    /// Any certificate matching the token's client registration (stateless: the token is a
    /// JWT verified against the upstream's keys).
    Registration,
}

/// What a decision does with a well-formed token that has no record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownToken {
    /// Refuse it.
    Deny,
    /// Decide as registration mode does.
    Registration,
}

/// `[binding]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// `mode`.
    pub mode: BindingMode,
    /// `max_records`: the memory store's bound.
    pub max_records: usize,
    /// `on_unknown_token`.
    pub on_unknown_token: UnknownToken,
}

impl Binding {
    /// Whether records are written at issuance (certificate mode).
    pub fn writes_records(&self) -> bool {
        self.mode == BindingMode::Certificate
    }

    /// Whether some decisions verify the token as a JWT of a registered client.
    pub fn uses_registration(&self) -> bool {
        self.mode == BindingMode::Registration
            || self.on_unknown_token == UnknownToken::Registration
    }
}

/// `[authz]`: the decision listener.
#[derive(Debug, Clone)]
pub struct Authz {
    /// Where it binds (plain HTTP).
    pub listen: SocketAddr,
    /// Peers it serves; others get 403.
    pub trusted_peers: Vec<Cidr>,
    /// How the proxy passes the caller's certificate.
    pub format: HeaderFormat,
}

impl Authz {
    /// Whether `ip` may ask for decisions.
    pub fn trusts_peer(&self, ip: IpAddr) -> bool {
        self.trusted_peers.iter().any(|c| c.contains(ip))
    }
}

/// `[introspection]`: callers of `POST /introspect`, by SHA-256 of their certificate.
#[derive(Debug, Clone)]
pub struct Introspection {
    /// Allowed callers' certificate digests.
    pub clients: HashSet<[u8; 32]>,
}

impl Cx {
    pub(super) fn binding(&mut self, b: RawBinding) -> Option<Binding> {
        let mode = match b.mode.as_deref().unwrap_or("certificate") {
            "certificate" => Some(BindingMode::Certificate),
            "registration" => Some(BindingMode::Registration),
            other => {
                self.problem(
                    "binding.mode",
                    format!("\"{other}\" is not \"certificate\" or \"registration\""),
                );
                None
            }
        };
        let on_unknown_token = match b.on_unknown_token.as_deref().unwrap_or("deny") {
            "deny" => Some(UnknownToken::Deny),
            "registration" => Some(UnknownToken::Registration),
            other => {
                self.problem(
                    "binding.on_unknown_token",
                    format!("\"{other}\" is not \"deny\" or \"registration\""),
                );
                None
            }
        };
        let max_records = b.max_records.unwrap_or(DEFAULT_MAX_RECORDS);
        if max_records == 0 {
            self.problem(
                "binding.max_records",
                "must be at least 1: every token handed out needs its record",
            );
        }
        Some(Binding {
            mode: mode?,
            max_records,
            on_unknown_token: on_unknown_token?,
        })
    }

    pub(super) fn authz(&mut self, a: RawAuthz) -> Option<Authz> {
        let listen = self.socket_addr("authz.listen", &a.listen);
        let name = a.header.unwrap_or_else(|| "x-ssl-client-cert".to_string());
        let format = HeaderFormat::parse(&name);
        if format.is_none() {
            self.problem(
                "authz.header",
                format!("\"{name}\" is not {}", HeaderFormat::EXPECTED),
            );
        }
        let peers = a
            .trusted_peers
            .unwrap_or_else(|| vec!["127.0.0.1/32".into(), "::1/128".into()]);
        if peers.is_empty() {
            self.problem(
                "authz.trusted_peers",
                "empty: nobody could ask for a decision; list the proxies' addresses (CIDR)",
            );
        }
        let mut trusted_peers = Vec::new();
        for (i, p) in peers.iter().enumerate() {
            match Cidr::parse(p) {
                Some(c) => trusted_peers.push(c),
                None => self.problem(
                    &format!("authz.trusted_peers[{i}]"),
                    format!("\"{p}\" is not an address or CIDR range such as \"10.0.0.0/8\""),
                ),
            }
        }
        Some(Authz {
            listen: listen?,
            trusted_peers,
            format: format?,
        })
    }

    pub(super) fn introspection(&mut self, i: RawIntrospection) -> Introspection {
        if i.clients.is_empty() {
            self.problem(
                "introspection.clients",
                "empty: list the x5t#S256 of each resource server's certificate allowed to introspect",
            );
        }
        let mut clients = HashSet::new();
        for (n, t) in i.clients.iter().enumerate() {
            match parse_thumbprint(t) {
                Some(d) => {
                    clients.insert(d);
                }
                None => self.problem(
                    &format!("introspection.clients[{n}]"),
                    thumbprint_problem(t),
                ),
            }
        }
        Introspection { clients }
    }

    /// The sections together: `[authz]` and `[introspection]` decide from `[binding]`.
    pub(super) fn bound_tokens(
        &mut self,
        binding: Option<RawBinding>,
        authz: Option<RawAuthz>,
        introspection: Option<RawIntrospection>,
        upstreams: &BTreeMap<String, UpstreamSpec>,
    ) -> (Option<Binding>, Option<Authz>, Option<Introspection>) {
        let needs_binding = |cx: &mut Self, key: &str, present: bool, binding: bool| {
            if present && !binding {
                cx.problem(
                    key,
                    "needs a [binding] section: decisions are made from the tokens it binds",
                );
            }
        };
        let has_binding = binding.is_some();
        needs_binding(self, "authz", authz.is_some(), has_binding);
        needs_binding(self, "introspection", introspection.is_some(), has_binding);
        let binding = binding.and_then(|b| self.binding(b));
        let authz = authz.and_then(|a| self.authz(a));
        let introspection = introspection.map(|i| self.introspection(i));
        if let Some(b) = &binding {
            if introspection.is_some() && !b.writes_records() {
                self.problem(
                    "introspection",
                    "introspection answers from binding records, which binding.mode = \"registration\" does not write",
                );
            }
            if b.uses_registration() {
                for (name, spec) in upstreams {
                    if let UpstreamKind::Generic {
                        metadata_url: None, ..
                    } = spec.kind
                    {
                        self.problem(
                            &format!("upstreams.{name}.metadata_url"),
                            "required with binding registration decisions: the upstream's keys (jwks_uri) and issuer come from its metadata",
                        );
                    }
                }
            }
        }
        (binding, authz, introspection)
    }
}
