//! Gateway errors: each knows its origin, which decides the status, the OAuth error code
//! (RFC 6749 §5.2), the metric outcome and the log level.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::Full;

/// Where an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The client sent something wrong or is not allowed.
    Client,
    /// The upstream identity provider failed.
    Upstream,
    /// The gateway itself (shutting down, overloaded, a bug).
    Internal,
}

/// What went wrong, as the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// 400 `invalid_request`.
    InvalidRequest,
    /// 401 `invalid_client`.
    InvalidClient,
    /// 400 `unauthorized_client`.
    UnauthorizedClient,
    /// 400 `invalid_scope`.
    InvalidScope,
    /// 400 `unsupported_grant_type`.
    UnsupportedGrantType,
    /// 404 `not_found`.
    NotFound,
    /// 405 `invalid_request` with `Allow: POST`.
    MethodNotAllowed,
    /// 413 `invalid_request`.
    PayloadTooLarge,
    /// 408 `invalid_request`: the body did not arrive within `request_timeout`.
    RequestTimeout,
    /// 403 `access_denied`: the peer may not use this listener.
    Forbidden,
    /// 429 `temporarily_unavailable`.
    RateLimited,
    /// 502 `temporarily_unavailable`.
    UpstreamUnavailable,
    /// 504 `temporarily_unavailable`.
    UpstreamTimeout,
    /// 503 `temporarily_unavailable`.
    Unavailable,
}

impl ErrorKind {
    /// HTTP status for this kind.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest
            | Self::UnauthorizedClient
            | Self::InvalidScope
            | Self::UnsupportedGrantType => StatusCode::BAD_REQUEST,
            Self::InvalidClient => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `error` member of the JSON body.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest
            | Self::MethodNotAllowed
            | Self::PayloadTooLarge
            | Self::RequestTimeout => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::InvalidScope => "invalid_scope",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::NotFound => "not_found",
            Self::Forbidden => "access_denied",
            Self::RateLimited
            | Self::UpstreamUnavailable
            | Self::UpstreamTimeout
            | Self::Unavailable => "temporarily_unavailable",
        }
    }

    /// The `outcome` label of `requests_total`.
    pub fn outcome(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamTimeout => "upstream_timeout",
            other => other.code(),
        }
    }

    /// Where errors of this kind come from.
    pub fn origin(self) -> Origin {
        match self {
            Self::UpstreamUnavailable | Self::UpstreamTimeout => Origin::Upstream,
            Self::Unavailable => Origin::Internal,
            _ => Origin::Client,
        }
    }
}

/// An error answered by the gateway itself (not passed through from the upstream).
#[derive(Debug, Clone)]
pub struct GatewayError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// `error_description`: what to fix; never a secret, token or the expected value.
    pub description: Cow<'static, str>,
    /// Detail for the log only (may name configured values, never secrets).
    pub reason: Option<String>,
    /// `WWW-Authenticate` scheme to answer with (RFC 6749 §5.2).
    pub www_authenticate: Option<String>,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

impl GatewayError {
    /// A new error of `kind` with a description for the client.
    pub fn new(kind: ErrorKind, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            description: description.into(),
            reason: None,
            www_authenticate: None,
            retry_after: None,
        }
    }

    /// Adds log-only detail.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// A failure inside the gateway: 503 `temporarily_unavailable` to the client ("internal
    /// error"), `reason` to the log only.
    pub fn internal(reason: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, "internal error").with_reason(reason)
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidRequest, description)
    }

    /// 401 `invalid_client`.
    pub fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::InvalidClient, description)
    }

    /// The JSON body: `{"error": ..., "error_description": ...}`.
    pub fn body(&self) -> Vec<u8> {
        serde_json::json!({
            "error": self.kind.code(),
            "error_description": self.description,
        })
        .to_string()
        .into_bytes()
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.description)?;
        if let Some(reason) = &self.reason {
            write!(f, " ({reason})")?;
        }
        Ok(())
    }
}

impl std::error::Error for GatewayError {}

/// Renders a gateway error as RFC 6749 §5.2 JSON.
pub fn error_response(err: &GatewayError, allow: &'static str) -> Response<Full<Bytes>> {
    let mut builder = Response::builder()
        .status(err.kind.status())
        .header(CONTENT_TYPE, "application/json");
    if err.kind == ErrorKind::MethodNotAllowed {
        builder = builder.header(http::header::ALLOW, allow);
    }
    if err.kind == ErrorKind::PayloadTooLarge {
        builder = builder.header(http::header::CONNECTION, "close");
    }
    if let Some(scheme) = &err.www_authenticate {
        if let Ok(v) = HeaderValue::from_str(scheme) {
            builder = builder.header(http::header::WWW_AUTHENTICATE, v);
        }
    }
    if let Some(secs) = err.retry_after {
        builder = builder.header(http::header::RETRY_AFTER, secs);
    }
    builder
        .body(Full::new(Bytes::from(err.body())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
