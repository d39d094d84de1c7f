//! examples/observability/ (the Grafana dashboard and the PrometheusRule) and the alerts in
//! docs/operations.md query only metrics the gateway exposes, each with the suffix its type
//! gives it (`_total` for counters, `_bucket`/`_sum`/`_count` for histograms, none for gauges).

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::*;

struct Env;

impl mtls_gateway::config::Env for Env {
    fn var(&self, name: &str) -> Option<String> {
        (name == "OBSERVABILITY_TEST_STATE_KEY")
            .then(|| "b2JzZXJ2YWJpbGl0eS10ZXN0LWtleS0zMi1ieXRlcyE=".to_string())
    }
}

/// Family name → type, from a running gateway configured with every optional part, so that
/// every family is exposed.
async fn exposed() -> BTreeMap<String, String> {
    let mut setup = Setup::new();
    let resource = mtls_gateway::identity::x5t_s256(pki().cert_der("other").as_ref());
    setup.clients.push_str(&format!(
        "\n[front_proxy]\nheader = \"x-ssl-client-cert\"\ntrusted_peers = [\"127.0.0.1/32\"]\n\
         [binding]\n[authz]\nlisten = \"127.0.0.1:0\"\n[introspection]\nclients = [\"{resource}\"]\n\
         [state]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:1/0\"\n\
         encryption_key_env = \"OBSERVABILITY_TEST_STATE_KEY\"\n"
    ));
    let path = setup.write();
    let config = mtls_gateway::config::load_with(&path, &Env).unwrap_or_else(|e| panic!("{e}"));
    let running = mtls_gateway::listener::start(config).await.unwrap();
    let (_, text) = http_get(&format!("http://{}/metrics", running.admin_addr.unwrap())).await;
    running.shutdown().await;
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

/// Every metric name in a PromQL expression (identifiers of the gateway's or the process'
/// families outside quoted label values; label names and functions never start so).
fn names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Label values (quoted) are not names.
        if bytes[i] == b'"' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            continue;
        }
        let at_word_start =
            i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if at_word_start
            && (expr[i..].starts_with("mtls_gateway_") || expr[i..].starts_with("process_"))
        {
            let end = expr[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(expr.len(), |e| i + e);
            out.push(expr[i..end].to_string());
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// Why `name` is not a series of the exposed families, if it is not.
fn problem(name: &str, families: &BTreeMap<String, String>) -> Option<String> {
    if families.get(name).is_some_and(|t| t == "gauge") {
        return None;
    }
    for (suffix, kind) in [
        ("_total", "counter"),
        ("_bucket", "histogram"),
        ("_sum", "histogram"),
        ("_count", "histogram"),
    ] {
        if let Some(family) = name.strip_suffix(suffix) {
            if families.get(family).is_some_and(|t| t == kind) {
                return None;
            }
        }
    }
    Some(match families.get(name) {
        Some(t) => format!("{name} is a {t}: query it with its suffix"),
        None => format!("{name} is not exposed"),
    })
}

fn expressions() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    let rule: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("examples/observability/prometheus-rule.yaml")).unwrap(),
    )
    .unwrap();
    for group in rule["spec"]["groups"].as_sequence().unwrap() {
        for r in group["rules"].as_sequence().unwrap() {
            out.push((
                format!("rule {}", r["alert"].as_str().unwrap()),
                r["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("examples/observability/grafana-dashboard.json"))
            .unwrap(),
    )
    .unwrap();
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            out.push((
                format!("panel {}", panel["title"]),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    for v in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"].as_str() {
            out.push(("variable".into(), q.to_string()));
        }
    }
    // The alerts docs/operations.md shows.
    let ops = std::fs::read_to_string(root.join("docs/operations.md")).unwrap();
    for line in ops.lines() {
        if let Some(expr) = line.trim().strip_prefix("expr: ") {
            out.push(("docs/operations.md".into(), expr.to_string()));
        }
    }
    out
}

#[tokio::test]
async fn every_metric_the_dashboard_and_the_alerts_query_is_exposed() {
    let families = exposed().await;
    assert!(families.len() > 25, "{families:?}");
    let exprs = expressions();
    assert!(exprs.len() > 30, "{}", exprs.len());
    let mut checked = 0;
    let mut problems = Vec::new();
    for (place, expr) in &exprs {
        for name in names(expr) {
            checked += 1;
            if let Some(p) = problem(&name, &families) {
                problems.push(format!("{place}: {p}"));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(checked > 40, "{checked}");
    // The check finds what it looks for.
    assert!(problem("mtls_gateway_requests", &families).is_some());
    assert!(problem("mtls_gateway_no_such_thing_total", &families).is_some());
    assert!(problem("mtls_gateway_open_connections_total", &families).is_some());
    assert_eq!(
        names("rate(mtls_gateway_requests_total{x=\"process_y\"}[5m]) / process_max_fds"),
        ["mtls_gateway_requests_total", "process_max_fds"]
    );
}
