//! Integration tests: the real gateway, real TLS, real HTTP, the embedded identity provider or a
//! scripted upstream, all on loopback. One binary, split by topic.

mod support;

#[path = "gateway/admin.rs"]
mod admin;
#[path = "gateway/architecture.rs"]
mod architecture;
#[path = "gateway/assertion.rs"]
mod assertion;
#[path = "gateway/binding.rs"]
mod binding;
#[path = "gateway/check.rs"]
mod check;
#[path = "gateway/cli.rs"]
mod cli;
#[path = "gateway/config.rs"]
mod config;
#[path = "gateway/deploy.rs"]
mod deploy;
#[path = "gateway/examples.rs"]
mod examples;
#[path = "gateway/federated.rs"]
mod federated;
#[path = "gateway/front_proxy.rs"]
mod front_proxy;
#[path = "gateway/fuzzing.rs"]
mod fuzzing;
#[path = "gateway/hostage.rs"]
mod hostage;
#[path = "gateway/idp.rs"]
mod idp;
#[path = "gateway/keyvault.rs"]
mod keyvault;
#[path = "gateway/limits.rs"]
mod limits;
#[path = "gateway/logs.rs"]
mod logs;
#[path = "gateway/manifests.rs"]
mod manifests;
#[path = "gateway/matching.rs"]
mod matching;
#[path = "gateway/metadata.rs"]
mod metadata;
#[path = "gateway/nginx.rs"]
mod nginx;
#[path = "gateway/observability.rs"]
mod observability;
#[path = "gateway/operations.rs"]
mod operations;
#[path = "gateway/pkcs11.rs"]
mod pkcs11;
#[path = "gateway/profiles.rs"]
mod profiles;
#[path = "gateway/redis.rs"]
mod redis;
#[path = "gateway/reuse_and_cache.rs"]
mod reuse_and_cache;
#[path = "gateway/state.rs"]
mod state;
#[path = "gateway/tls.rs"]
mod tls;
#[path = "gateway/token.rs"]
mod token;
#[path = "gateway/trust.rs"]
mod trust;
#[path = "gateway/upstream.rs"]
mod upstream;
