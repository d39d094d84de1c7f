//! Prometheus metrics (SPEC §7), in an explicit registry shared by every configuration
//! generation.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::borrow::Cow;

use crate::config::Config;
use crate::identity::ClientIdentity;

/// `requests_total` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// token, metadata, other.
    pub route: &'static str,
    /// success, an OAuth error code, upstream_error, upstream_unavailable, upstream_timeout, rate_limited.
    pub outcome: &'static str,
}

/// `upstream_requests_total` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// Upstream name.
    pub upstream: String,
    /// HTTP status, or `error` / `timeout`.
    pub status: Cow<'static, str>,
}

/// `upstream_duration_seconds` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamNameLabels {
    /// Upstream name.
    pub upstream: String,
}

/// `build_info` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    /// The crate version.
    pub version: &'static str,
    /// The rustls version.
    pub rustls: &'static str,
    /// The commit.
    pub commit: &'static str,
}

/// `result` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// Outcome.
    pub result: &'static str,
}

/// `connections_refused_total` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// per_peer (max_connections_per_peer), admin_cap (the admin listener's 64).
    pub reason: &'static str,
}

/// `client_auth_total` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientAuthLabels {
    /// The registered client_id, or `unknown`.
    pub client_id: String,
    /// success, no_certificate, bad_certificate, untrusted, mismatch.
    pub result: &'static str,
}

/// `certificate_expiry_timestamp_seconds` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExpiryLabels {
    /// server, client_ca, credential.
    pub kind: &'static str,
    /// Which one: the server certificate's subject, the CA's subject, the credential's name.
    pub name: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~16 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric of the gateway.
pub struct Metrics {
    registry: Registry,
    /// The unprefixed `process_*` families.
    process: Registry,
    /// `requests_total{route,outcome}`.
    pub requests: Family<RequestLabels, Counter>,
    /// `request_duration_seconds`.
    pub request_duration: Histogram,
    /// `upstream_requests_total{upstream,status}`.
    pub upstream_requests: Family<UpstreamLabels, Counter>,
    /// `upstream_duration_seconds{upstream}`.
    pub upstream_duration: HistogramFamily<UpstreamNameLabels>,
    /// `tls_handshakes_total{result}`.
    pub tls_handshakes: Family<ResultLabels, Counter>,
    /// `client_auth_total{client_id,result}`.
    pub client_auth: Family<ClientAuthLabels, Counter>,
    /// `certificate_expiry_timestamp_seconds{kind,name}`.
    pub certificate_expiry: Family<ExpiryLabels, Gauge>,
    /// `config_reloads_total{result}`.
    pub config_reloads: Family<ResultLabels, Counter>,
    /// `config_last_reload_success`.
    pub config_last_reload_success: Gauge,
    /// `open_connections`.
    pub open_connections: Gauge,
    /// `forwarded_certificates_total{result}`.
    pub forwarded_certificates: Family<ResultLabels, Counter>,
    /// `connections_refused_total{reason}`.
    pub connections_refused: Family<ReasonLabels, Counter>,
    /// `upstream_answers_dropped_total`: answers that arrived after the client went away.
    pub upstream_answers_dropped: Counter,
    /// `token_cache_hits_total`.
    pub token_cache_hits: Counter,
    /// `token_cache_misses_total`.
    pub token_cache_misses: Counter,
    /// `token_cache_evictions_total`.
    pub token_cache_evictions: Counter,
    /// `binding_records_written_total{result}` (success, failure).
    pub binding_records_written: Family<ResultLabels, Counter>,
    /// `binding_records_evicted_total`: records dropped to stay within `max_records`.
    pub binding_records_evicted: Counter,
    /// `binding_records`: records held by the memory store.
    pub binding_records: Gauge,
    /// `binding_checks_total{result}`.
    pub binding_checks: Family<ResultLabels, Counter>,
    /// `introspection_requests_total{result}`.
    pub introspection_requests: Family<ResultLabels, Counter>,
    /// `signatures_total{credential,backend,result}`.
    pub signatures: Family<SignatureLabels, Counter>,
    /// `signature_duration_seconds{backend}`.
    pub signature_duration: HistogramFamily<BackendLabels>,
    /// `state_store_up`: 1 when the shared store answers (always 1 with the memory store).
    pub state_store_up: Gauge,
    /// `state_store_errors_total{op}`.
    pub state_store_errors: Family<OpLabels, Counter>,
    /// `state_store_duration_seconds{op}`.
    pub state_store_duration: HistogramFamily<OpLabels>,
}

/// `signatures_total` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignatureLabels {
    /// The `[credentials.NAME]`.
    pub credential: String,
    /// local, pkcs11, key_vault, federated.
    pub backend: &'static str,
    /// success, failure, throttled.
    pub result: &'static str,
}

/// `signature_duration_seconds` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    /// local, pkcs11, key_vault, federated.
    pub backend: &'static str,
}

/// `op` label of the state store metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// binding_put, binding_get, cache_get, cache_set, lock, unlock, rate_limit, ping.
    pub op: &'static str,
}

/// The state store operations.
pub const STATE_STORE_OPS: [&str; 8] = [
    "binding_put",
    "binding_get",
    "cache_get",
    "cache_set",
    "lock",
    "unlock",
    "rate_limit",
    "ping",
];

/// `binding_checks_total` result labels (SPEC §10).
pub const BINDING_CHECK_RESULTS: [&str; 7] = [
    "allow",
    "no_token",
    "no_certificate",
    "unknown_token",
    "expired",
    "mismatch",
    "store_error",
];

/// `introspection_requests_total` result labels.
pub const INTROSPECTION_RESULTS: [&str; 4] =
    ["active", "inactive", "unauthorized", "invalid_request"];

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered under `mtls_gateway_`.
    pub fn new() -> Self {
        let mut metrics = Self {
            registry: Registry::with_prefix("mtls_gateway"),
            process: Registry::default(),
            upstream_duration: Family::new_with_constructor(latency_histogram),
            requests: Family::<RequestLabels, Counter>::default(),
            request_duration: latency_histogram(),
            upstream_requests: Family::<UpstreamLabels, Counter>::default(),
            tls_handshakes: Family::<ResultLabels, Counter>::default(),
            client_auth: Family::<ClientAuthLabels, Counter>::default(),
            certificate_expiry: Family::<ExpiryLabels, Gauge>::default(),
            config_reloads: Family::<ResultLabels, Counter>::default(),
            config_last_reload_success: Gauge::default(),
            open_connections: Gauge::default(),
            forwarded_certificates: Family::<ResultLabels, Counter>::default(),
            token_cache_hits: Counter::default(),
            connections_refused: Family::<ReasonLabels, Counter>::default(),
            upstream_answers_dropped: Counter::default(),
            token_cache_misses: Counter::default(),
            token_cache_evictions: Counter::default(),
            binding_records_written: Family::<ResultLabels, Counter>::default(),
            binding_records_evicted: Counter::default(),
            binding_records: Gauge::default(),
            binding_checks: Family::<ResultLabels, Counter>::default(),
            introspection_requests: Family::<ResultLabels, Counter>::default(),
            signatures: Family::<SignatureLabels, Counter>::default(),
            signature_duration: Family::new_with_constructor(latency_histogram),
            state_store_up: Gauge::default(),
            state_store_errors: Family::<OpLabels, Counter>::default(),
            state_store_duration: Family::new_with_constructor(latency_histogram),
        };
        metrics.state_store_up.set(1);
        metrics
            .process
            .register_collector(Box::new(crate::process::ProcessCollector));
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: crate::version::VERSION,
                rustls: crate::version::RUSTLS,
                commit: crate::version::COMMIT,
            })
            .set(1);
        metrics.registry.register(
            "build_info",
            "1, labelled with the version, the rustls version and the commit of this binary",
            build_info,
        );
        metrics.register();
        metrics.register_binding_and_state();
        metrics.config_last_reload_success.set(1);
        metrics
    }

    /// Registers every metric under its exposition name and help text.
    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "connections_refused",
            "Connections accepted and closed at once, by reason (per_peer, admin_cap)",
            self.connections_refused.clone(),
        );
        r.register("upstream_answers_dropped", "Upstream answers that arrived after their client reset or disconnected (the exchange was completed, not cancelled)", self.upstream_answers_dropped.clone());
        r.register(
            "token_cache_hits",
            "Token requests answered from a client's token cache",
            self.token_cache_hits.clone(),
        );
        r.register(
            "token_cache_misses",
            "Token requests of cache_tokens clients forwarded to the upstream",
            self.token_cache_misses.clone(),
        );
        r.register(
            "token_cache_evictions",
            "Token cache entries dropped to stay within the per-client bound",
            self.token_cache_evictions.clone(),
        );
        r.register(
            "requests",
            "Requests on the main listeners by route and outcome",
            self.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time to answer a request on the main listeners",
            self.request_duration.clone(),
        );
        r.register(
            "upstream_requests",
            "Exchanges with upstream identity providers by status (error/timeout when none)",
            self.upstream_requests.clone(),
        );
        r.register(
            "upstream_duration_seconds",
            "Time of one exchange with an upstream identity provider",
            self.upstream_duration.clone(),
        );
        r.register(
            "tls_handshakes",
            "TLS handshakes on the mTLS listener by result",
            self.tls_handshakes.clone(),
        );
        r.register(
            "client_auth",
            "Client authentication decisions by client_id (unknown ids folded) and result",
            self.client_auth.clone(),
        );
        r.register(
            "certificate_expiry_timestamp_seconds",
            "notAfter of the server certificate, each client CA and each signing credential",
            self.certificate_expiry.clone(),
        );
        r.register(
            "config_reloads",
            "Configuration reloads by result",
            self.config_reloads.clone(),
        );
        r.register(
            "config_last_reload_success",
            "1 when the last configuration reload succeeded, 0 when it failed",
            self.config_last_reload_success.clone(),
        );
        r.register(
            "open_connections",
            "Open connections on the main listeners",
            self.open_connections.clone(),
        );
        r.register("forwarded_certificates", "Forwarded client-certificate headers by result (accepted, absent, refused, ignored, denied_peer)", self.forwarded_certificates.clone());
    }

    /// The families of bound tokens (SPEC §10) and the state store (SPEC §11).
    fn register_binding_and_state(&mut self) {
        let r = &mut self.registry;
        r.register(
            "binding_records_written",
            "Binding records written at token issuance, by result (failure: the client got 503 and no token)",
            self.binding_records_written.clone(),
        );
        r.register(
            "binding_records_evicted",
            "Binding records dropped, least recently issued first, to stay within binding.max_records",
            self.binding_records_evicted.clone(),
        );
        r.register(
            "binding_records",
            "Binding records held by the memory store",
            self.binding_records.clone(),
        );
        r.register(
            "binding_checks",
            "Decisions on bound tokens ([authz]) by result",
            self.binding_checks.clone(),
        );
        r.register(
            "introspection_requests",
            "POST /introspect requests by result",
            self.introspection_requests.clone(),
        );
        r.register(
            "signatures",
            "Client assertions made (signed, or a federated token read), by credential, backend and result",
            self.signatures.clone(),
        );
        r.register(
            "signature_duration_seconds",
            "Time to make one client assertion, by backend",
            self.signature_duration.clone(),
        );
        r.register(
            "state_store_up",
            "1 when the state store answers (Redis), 0 when it does not",
            self.state_store_up.clone(),
        );
        r.register(
            "state_store_errors",
            "State store operations that failed or timed out, by operation",
            self.state_store_errors.clone(),
        );
        r.register(
            "state_store_duration_seconds",
            "Time of one state store operation",
            self.state_store_duration.clone(),
        );
    }

    /// Prometheus text exposition: the gateway's families, then the standard `process_*` ones.
    pub fn encode(&self) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &self.process);
        let _ = encode_eof(&mut out);
        out
    }

    /// Counts one request.
    pub fn request(&self, route: &'static str, outcome: &'static str, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { route, outcome })
            .inc();
        self.request_duration.observe(seconds);
    }

    /// Counts a connection closed at accept.
    pub fn connection_refused(&self, reason: &'static str) {
        self.connections_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Counts one binding decision.
    pub fn binding_check(&self, result: &'static str) {
        self.binding_checks
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Counts one binding record write.
    pub fn binding_written(&self, result: &'static str) {
        self.binding_records_written
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Counts and times one assertion made.
    pub fn signature(
        &self,
        credential: &str,
        backend: &'static str,
        result: &'static str,
        took: std::time::Duration,
    ) {
        self.signatures
            .get_or_create(&SignatureLabels {
                credential: credential.to_string(),
                backend,
                result,
            })
            .inc();
        self.signature_duration
            .get_or_create(&BackendLabels { backend })
            .observe(took.as_secs_f64());
    }

    /// Times one state store operation.
    pub fn state_store_duration(&self, op: &'static str, seconds: f64) {
        self.state_store_duration
            .get_or_create(&OpLabels { op })
            .observe(seconds);
    }

    /// Counts one failed state store operation.
    pub fn state_store_error(&self, op: &'static str) {
        self.state_store_errors
            .get_or_create(&OpLabels { op })
            .inc();
    }

    /// Counts one introspection request.
    pub fn introspection(&self, result: &'static str) {
        self.introspection_requests
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Counts one client authentication decision.
    pub fn client_auth(&self, client_id: Option<&str>, result: &'static str) {
        let client_id = client_id.unwrap_or("unknown").to_string();
        self.client_auth
            .get_or_create(&ClientAuthLabels { client_id, result })
            .inc();
    }

    /// Creates, at zero, the series whose label values the configuration already tells, so
    /// that every family is exposed from start-up and `rate()` and absence alerts work before
    /// the first event (SPEC §7).
    pub fn prime(&self, config: &Config) {
        for result in ["success", "failure"] {
            let _ = self.config_reloads.get_or_create(&ResultLabels { result });
        }
        for result in ["success", "failure", "timeout"] {
            let _ = self.tls_handshakes.get_or_create(&ResultLabels { result });
        }
        for reason in ["per_peer", "admin_cap"] {
            let _ = self
                .connections_refused
                .get_or_create(&ReasonLabels { reason });
        }
        for result in ["success", "failure"] {
            let _ = self
                .binding_records_written
                .get_or_create(&ResultLabels { result });
        }
        if let crate::config::StateStore::Redis(_) = config.state {
            for op in STATE_STORE_OPS {
                let _ = self.state_store_errors.get_or_create(&OpLabels { op });
                let _ = self.state_store_duration.get_or_create(&OpLabels { op });
            }
        }
        for (name, signer) in &config.credentials {
            let _ = self.signatures.get_or_create(&SignatureLabels {
                credential: name.clone(),
                backend: signer.backend_name(),
                result: "success",
            });
            let _ = self.signature_duration.get_or_create(&BackendLabels {
                backend: signer.backend_name(),
            });
        }
        for result in BINDING_CHECK_RESULTS {
            let _ = self.binding_checks.get_or_create(&ResultLabels { result });
        }
        for result in INTROSPECTION_RESULTS {
            let _ = self
                .introspection_requests
                .get_or_create(&ResultLabels { result });
        }
        let _ = self.requests.get_or_create(&RequestLabels {
            route: "token",
            outcome: "success",
        });
        for name in config.upstreams.keys() {
            for status in ["error", "timeout"] {
                let _ = self.upstream_requests.get_or_create(&UpstreamLabels {
                    upstream: name.clone(),
                    status: Cow::Borrowed(status),
                });
            }
            let _ = self.upstream_duration.get_or_create(&UpstreamNameLabels {
                upstream: name.clone(),
            });
        }
        for reg in config.registry.iter() {
            let _ = self.client_auth.get_or_create(&ClientAuthLabels {
                client_id: reg.client_id.clone(),
                result: "success",
            });
        }
        if config.front_proxy.is_some() {
            let _ = self
                .forwarded_certificates
                .get_or_create(&ResultLabels { result: "accepted" });
        }
    }

    /// Sets the expiry gauges from `config`, dropping those of removed certificates.
    pub fn set_expiry(&self, config: &Config) {
        self.certificate_expiry.clear();
        let set = |kind: &'static str, name: String, not_after: i64| {
            self.certificate_expiry
                .get_or_create(&ExpiryLabels { kind, name })
                .set(not_after);
        };
        if let Some(leaf) = config.server.cert_chain.first() {
            if let Ok(id) = ClientIdentity::from_der(leaf.clone()) {
                set("server", id.subject_display, id.not_after);
            }
        }
        for ca in &config.server.client_trust.anchors.certs {
            if let Ok(id) = ClientIdentity::from_der(ca.clone()) {
                set("client_ca", id.subject_display, id.not_after);
            }
        }
        for (name, signer) in &config.credentials {
            if signer.federated_token().is_none() {
                set("credential", name.clone(), signer.not_after);
            }
        }
    }
}

/// Keeps `open_connections` right however a connection task ends.
pub struct ConnectionGuard<'a>(&'a Gauge);

impl<'a> ConnectionGuard<'a> {
    /// Counts a connection open until the guard drops.
    pub fn new(gauge: &'a Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
