//! The shipped Kubernetes manifests: every document parses, every pod meets the Pod Security
//! "restricted" profile (and the stricter rules docs/deployment.md promises: numeric user and
//! group, fsGroup, read-only root, group-readable secrets, probes on the admin port, resource
//! requests), everything a manifest refers to (Service, Secret, ConfigMap) is defined in the
//! examples, and every embedded `gateway.toml` uses only keys the gateway accepts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

fn manifests() -> Vec<(PathBuf, Value)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = ["examples/deploy/kubernetes", "examples/observability"]
        .iter()
        .flat_map(|d| std::fs::read_dir(root.join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()));
            if value.is_null() {
                continue;
            }
            assert!(
                value["apiVersion"].is_string() && value["kind"].is_string(),
                "{}: a document without apiVersion/kind: {value:?}",
                file.display()
            );
            assert!(value["metadata"]["name"].is_string(), "{}", file.display());
            docs.push((file.clone(), value));
        }
    }
    docs
}

fn kind(v: &Value) -> &str {
    v["kind"].as_str().unwrap_or_default()
}

fn name(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or_default()
}

fn defined(docs: &[(PathBuf, Value)], k: &str) -> BTreeSet<String> {
    docs.iter()
        .filter(|(_, v)| kind(v) == k)
        .map(|(_, v)| name(v).to_string())
        .collect()
}

fn seq(v: &Value) -> Vec<Value> {
    v.as_sequence().cloned().unwrap_or_default()
}

/// The pod spec of a workload, if it is one.
fn pod_spec(v: &Value) -> Option<&Value> {
    match kind(v) {
        "Pod" => Some(&v["spec"]),
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
            Some(&v["spec"]["template"]["spec"])
        }
        "CronJob" => Some(&v["spec"]["jobTemplate"]["spec"]["template"]["spec"]),
        _ => None,
    }
}

/// A container's effective setting: its own securityContext, else the pod's.
fn effective<'a>(pod: &'a Value, container: &'a Value, key: &str) -> &'a Value {
    let own = &container["securityContext"][key];
    if own.is_null() {
        &pod["securityContext"][key]
    } else {
        own
    }
}

/// Kubernetes reads YAML 1.1, where `0440` is octal; serde_yaml (YAML 1.2) keeps a number
/// with a leading zero as a string. Both spellings are read as Kubernetes reads them.
fn k8s_mode(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if s.starts_with('0') => u64::from_str_radix(s, 8).ok(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Every violation of the restricted profile (and of the stricter house rules) in one pod.
fn restricted_problems(pod: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for key in ["hostNetwork", "hostPID", "hostIPC"] {
        if pod[key].as_bool() == Some(true) {
            problems.push(format!("{key} is set"));
        }
    }
    for key in ["runAsUser", "runAsGroup", "fsGroup"] {
        match pod["securityContext"][key].as_u64() {
            Some(0) | None => problems.push(format!(
                "pod securityContext.{key} is not a non-zero number"
            )),
            Some(_) => {}
        }
    }
    for volume in seq(&pod["volumes"]) {
        let allowed = [
            "configMap",
            "csi",
            "downwardAPI",
            "emptyDir",
            "ephemeral",
            "persistentVolumeClaim",
            "projected",
            "secret",
        ];
        let types: Vec<&str> = volume
            .as_mapping()
            .into_iter()
            .flatten()
            .filter_map(|(k, _)| k.as_str())
            .filter(|k| *k != "name")
            .collect();
        if types.iter().any(|t| !allowed.contains(t)) {
            problems.push(format!("volume type {types:?} is not allowed"));
        }
        // Secret files must be readable by the (non-root) user through fsGroup.
        if let Some(mode) = k8s_mode(&volume["secret"]["defaultMode"]) {
            if mode & 0o040 == 0 {
                problems.push(format!(
                    "secret volume {:?} mode {mode:o} is unreadable for the group",
                    volume["name"]
                ));
            }
        }
    }
    let containers: Vec<Value> = seq(&pod["containers"])
        .into_iter()
        .chain(seq(&pod["initContainers"]))
        .collect();
    assert!(!containers.is_empty());
    for c in &containers {
        let cname = c["name"].as_str().unwrap_or("?");
        let mut bad = |what: &str| problems.push(format!("container {cname}: {what}"));
        if c["securityContext"]["privileged"].as_bool() == Some(true) {
            bad("privileged");
        }
        if c["securityContext"]["allowPrivilegeEscalation"].as_bool() != Some(false) {
            bad("allowPrivilegeEscalation is not false");
        }
        if c["securityContext"]["readOnlyRootFilesystem"].as_bool() != Some(true) {
            bad("readOnlyRootFilesystem is not true");
        }
        let drop: Vec<Value> = seq(&c["securityContext"]["capabilities"]["drop"]);
        if !drop.iter().any(|d| d.as_str() == Some("ALL")) {
            bad("capabilities do not drop ALL");
        }
        let add = seq(&c["securityContext"]["capabilities"]["add"]);
        if add.iter().any(|a| a.as_str() != Some("NET_BIND_SERVICE")) {
            bad("adds a capability other than NET_BIND_SERVICE");
        }
        if effective(pod, c, "runAsNonRoot").as_bool() != Some(true) {
            bad("runAsNonRoot is not true");
        }
        if effective(pod, c, "runAsUser").as_u64() == Some(0) {
            bad("runs as user 0");
        }
        let seccomp = effective(pod, c, "seccompProfile")["type"].as_str();
        if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
            bad("seccompProfile is not RuntimeDefault or Localhost");
        }
        if seq(&c["ports"]).iter().any(|p| !p["hostPort"].is_null()) {
            bad("uses a hostPort");
        }
        if c["resources"]["requests"]["cpu"].is_null()
            || c["resources"]["requests"]["memory"].is_null()
        {
            bad("no cpu and memory requests");
        }
        let image = c["image"].as_str().unwrap_or_default();
        if image.contains("mtls-gateway") {
            for probe in ["readinessProbe", "livenessProbe"] {
                if c[probe]["httpGet"]["port"].as_str() != Some("admin") {
                    bad(&format!("{probe} is not an httpGet on the admin port"));
                }
            }
            let path = |p: &str| c[p]["httpGet"]["path"].as_str().map(str::to_string);
            if path("readinessProbe").as_deref() != Some("/readyz")
                || path("livenessProbe").as_deref() != Some("/healthz")
            {
                bad("probes are not /readyz (readiness) and /healthz (liveness)");
            }
        }
    }
    problems
}

#[test]
fn every_pod_meets_the_restricted_profile() {
    let docs = manifests();
    let mut pods = 0;
    for (file, doc) in &docs {
        let Some(pod) = pod_spec(doc) else { continue };
        pods += 1;
        let problems = restricted_problems(pod);
        assert!(
            problems.is_empty(),
            "{} {} {}: {problems:#?}",
            file.display(),
            kind(doc),
            name(doc)
        );
    }
    assert!(pods >= 4, "{pods} workloads");
}

#[test]
fn the_restricted_check_finds_what_it_looks_for() {
    // The checker itself: a pod as an older example had it must be refused on each point.
    let pod: Value = serde_yaml::from_str(
        r#"
containers:
  - name: gateway
    image: ghcr.io/contoso/mtls-gateway:0.1.0
    securityContext: { runAsNonRoot: true }
volumes:
  - { name: tls, secret: { secretName: x, defaultMode: 0400 } }
  - { name: host, hostPath: { path: /etc } }
"#,
    )
    .unwrap();
    let problems = restricted_problems(&pod).join("\n");
    for expected in [
        "pod securityContext.runAsUser",
        "pod securityContext.fsGroup",
        "mode 400 is unreadable",
        "hostPath",
        "allowPrivilegeEscalation",
        "readOnlyRootFilesystem",
        "drop ALL",
        "seccompProfile",
        "requests",
        "readinessProbe",
    ] {
        assert!(problems.contains(expected), "{expected} in {problems}");
    }
}

#[test]
fn everything_a_manifest_refers_to_is_defined_in_the_examples() {
    let docs = manifests();
    let services = defined(&docs, "Service");
    let secrets = defined(&docs, "Secret");
    let configmaps = defined(&docs, "ConfigMap");
    let mut checked = 0;
    let mut want = |what: &str, set: &BTreeSet<String>, wanted: &str, file: &Path| {
        // "namespace/name" (ingress-nginx annotations) names the same object.
        let wanted = wanted.rsplit('/').next().unwrap_or(wanted);
        assert!(
            set.contains(wanted),
            "{}: {what} {wanted} is not defined in the examples ({set:?})",
            file.display()
        );
        checked += 1;
    };
    for (file, doc) in &docs {
        if let Some(pod) = pod_spec(doc) {
            // Labels the selector needs.
            let selector = &doc["spec"]["selector"]["matchLabels"];
            let labels = &doc["spec"]["template"]["metadata"]["labels"];
            for (k, v) in selector.as_mapping().into_iter().flatten() {
                assert_eq!(&labels[k], v, "{}: selector {k:?}", file.display());
            }
            for volume in seq(&pod["volumes"]) {
                if let Some(s) = volume["secret"]["secretName"].as_str() {
                    want("Secret", &secrets, s, file);
                }
                if let Some(c) = volume["configMap"]["name"].as_str() {
                    want("ConfigMap", &configmaps, c, file);
                }
            }
            for c in seq(&pod["containers"]) {
                for env in seq(&c["env"]) {
                    if let Some(s) = env["valueFrom"]["secretKeyRef"]["name"].as_str() {
                        want("Secret", &secrets, s, file);
                    }
                    if let Some(m) = env["valueFrom"]["configMapKeyRef"]["name"].as_str() {
                        want("ConfigMap", &configmaps, m, file);
                    }
                }
                // Probes name ports the container declares.
                let ports: Vec<Value> = seq(&c["ports"]);
                for probe in ["readinessProbe", "livenessProbe"] {
                    let p = &c[probe];
                    let port = p["httpGet"]["port"]
                        .as_str()
                        .or(p["tcpSocket"]["port"].as_str());
                    if let Some(port) = port {
                        assert!(
                            ports.iter().any(|d| d["name"].as_str() == Some(port)),
                            "{}: {probe} port {port} is not declared",
                            file.display()
                        );
                    }
                }
            }
        }
        match kind(doc) {
            "Ingress" => {
                for tls in seq(&doc["spec"]["tls"]) {
                    if let Some(s) = tls["secretName"].as_str() {
                        want("Secret", &secrets, s, file);
                    }
                }
                for rule in seq(&doc["spec"]["rules"]) {
                    for path in seq(&rule["http"]["paths"]) {
                        let svc = &path["backend"]["service"];
                        let name = svc["name"].as_str().unwrap_or_default();
                        want("Service", &services, name, file);
                        // The named port exists on that Service.
                        let port = svc["port"]["name"].as_str().unwrap_or_default();
                        let service = docs
                            .iter()
                            .find(|(_, d)| kind(d) == "Service" && self::name(d) == name)
                            .map(|(_, d)| d.clone())
                            .unwrap_or_default();
                        assert!(
                            seq(&service["spec"]["ports"])
                                .iter()
                                .any(|p| p["name"].as_str() == Some(port)),
                            "{}: Service {name} has no port {port}",
                            file.display()
                        );
                    }
                }
                for (k, v) in doc["metadata"]["annotations"]
                    .as_mapping()
                    .into_iter()
                    .flatten()
                {
                    if k.as_str().is_some_and(|k| k.ends_with("auth-tls-secret")) {
                        want("Secret", &secrets, v.as_str().unwrap_or_default(), file);
                    }
                }
            }
            "Service" | "PodDisruptionBudget" | "NetworkPolicy" => {
                // A selector that selects some workload of the examples.
                let selector = if kind(doc) == "Service" {
                    doc["spec"]["selector"].clone()
                } else if kind(doc) == "PodDisruptionBudget" {
                    doc["spec"]["selector"]["matchLabels"].clone()
                } else {
                    doc["spec"]["podSelector"]["matchLabels"].clone()
                };
                let selects = docs.iter().any(|(_, d)| {
                    pod_spec(d).is_some()
                        && selector
                            .as_mapping()
                            .into_iter()
                            .flatten()
                            .all(|(k, v)| &d["spec"]["template"]["metadata"]["labels"][k] == v)
                });
                assert!(
                    selects,
                    "{}: {} {} selects no workload",
                    file.display(),
                    kind(doc),
                    name(doc)
                );
            }
            _ => {}
        }
    }
    assert!(checked >= 12, "{checked} references");
}

/// Secrets the embedded configurations read from the environment; present so that only the
/// files (which live in the cluster) are missing.
struct Env;

impl mtls_gateway::config::Env for Env {
    fn var(&self, name: &str) -> Option<String> {
        match name {
            "MTLS_GATEWAY_STATE_KEY" => Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()),
            _ => Some("secret".into()),
        }
    }
}

#[test]
fn every_embedded_gateway_toml_uses_known_keys_and_only_misses_the_mounted_files() {
    let docs = manifests();
    let mut configs = 0;
    for (file, doc) in &docs {
        if kind(doc) != "ConfigMap" {
            continue;
        }
        let Some(text) = doc["data"]["gateway.toml"].as_str() else {
            continue;
        };
        configs += 1;
        let path = Path::new("/nonexistent/etc/mtls-gateway/config/gateway.toml");
        let errors = match mtls_gateway::config::load_str(text, path, &Env) {
            Ok(_) => panic!(
                "{}: loaded although no file is mounted here",
                file.display()
            ),
            Err(e) => e,
        };
        for p in &errors.problems {
            // A credential whose files are missing is then also unusable for its clients.
            let follows = p.message.starts_with("no usable [credentials.");
            assert!(
                p.message.contains("/etc/mtls-gateway/") || follows,
                "{} ConfigMap {}: a problem other than a file mounted in the pod: {p}",
                file.display(),
                name(doc)
            );
        }
    }
    assert!(configs >= 3, "{configs} embedded configurations");
}

/// All string values under `v` at any depth whose key is `key`.
fn find_all<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Mapping(m) => {
            for (k, val) in m {
                if k.as_str() == Some(key) {
                    out.push(val);
                }
                find_all(val, key, out);
            }
        }
        Value::Sequence(s) => s.iter().for_each(|x| find_all(x, key, out)),
        _ => {}
    }
}

/// The Envoy bootstraps are whole files (no Envoy here to run them): they parse, name the
/// version they target, listen on ports of their own (not the gateway's), send every route to
/// a defined cluster, and replace the caller's XFCC (SANITIZE_SET).
#[test]
fn the_envoy_bootstraps_are_whole_and_do_not_clash_with_the_gateway() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let gateway_ports = [8443, 8080, 9090, 9191];
    for file in ["envoy.yaml", "resource-ext-authz.yaml"] {
        let text = std::fs::read_to_string(root.join("examples/deploy/envoy").join(file)).unwrap();
        assert!(text.contains("Envoy v1."), "{file}: no targeted version");
        let doc: Value = serde_yaml::from_str(&text).unwrap();
        let listeners = seq(&doc["static_resources"]["listeners"]);
        assert!(!listeners.is_empty(), "{file}");
        for l in &listeners {
            let port = l["address"]["socket_address"]["port_value"]
                .as_u64()
                .unwrap();
            assert!(!gateway_ports.contains(&port), "{file}: listens on {port}");
        }
        let admin = doc["admin"]["address"]["socket_address"]["port_value"].as_u64();
        assert!(admin.is_some_and(|p| !gateway_ports.contains(&p)), "{file}");
        let clusters: BTreeSet<String> = seq(&doc["static_resources"]["clusters"])
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        let mut used = Vec::new();
        find_all(&doc, "cluster", &mut used);
        assert!(!used.is_empty(), "{file}");
        for c in used {
            let c = c.as_str().unwrap_or_default();
            assert!(clusters.contains(c), "{file}: cluster {c} is not defined");
        }
        let mut fcc = Vec::new();
        find_all(&doc, "forward_client_cert_details", &mut fcc);
        assert!(
            !fcc.is_empty() && fcc.iter().all(|v| v.as_str() == Some("SANITIZE_SET")),
            "{file}"
        );
    }
}
