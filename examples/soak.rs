//! Bounded soak: the gateway binary in its own process, on a fresh dev PKI and the embedded
//! IdP; a few thousand mixed good and bad token requests over concurrent connections. Every
//! good request must get 200, every bad one its exact status and error code, and the gateway's
//! RSS must level off. Run with `scripts/soak.sh`.
//!
//! Usage: soak GATEWAY_BINARY [REQUESTS] [CONCURRENCY]

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use mtls_gateway::client::{load_identity, MtlsClient};

const PKI_CLIENT: &str = "11111111-2222-3333-4444-555555555555";
const SELF_SIGNED: &str = "11111111-2222-3333-4444-666666666666";

#[derive(Clone, Copy, Debug)]
enum Kind {
    Good,
    GoodSelfSigned,
    UnknownClient,
    NoCertificate,
    OtherClientsCert,
    RepeatedParameter,
    WrongContentType,
    Oversized,
    SecretInBody,
    UnknownPath,
}

const KINDS: [Kind; 10] = [
    Kind::Good,
    Kind::GoodSelfSigned,
    Kind::UnknownClient,
    Kind::NoCertificate,
    Kind::OtherClientsCert,
    Kind::RepeatedParameter,
    Kind::WrongContentType,
    Kind::Oversized,
    Kind::SecretInBody,
    Kind::UnknownPath,
];

impl Kind {
    fn expected(self) -> (u16, &'static str) {
        match self {
            Kind::Good | Kind::GoodSelfSigned => (200, ""),
            Kind::UnknownClient | Kind::NoCertificate | Kind::OtherClientsCert => {
                (401, "invalid_client")
            }
            Kind::RepeatedParameter | Kind::WrongContentType | Kind::SecretInBody => {
                (400, "invalid_request")
            }
            Kind::Oversized => (413, "invalid_request"),
            Kind::UnknownPath => (404, "not_found"),
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let binary = args
        .get(1)
        .ok_or("usage: soak GATEWAY_BINARY [REQUESTS] [CONCURRENCY]")?
        .clone();
    let total: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5000);
    let concurrency: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(16);
    let dir = std::env::temp_dir().join(format!("mtls-gateway-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    mtls_gateway::pki::write_dev_pki(&dir.join("pki"))?;
    let other = mtls_gateway::pki::self_signed_client("someone-else").map_err(|e| e.to_string())?;
    std::fs::write(dir.join("pki/other.pem"), &other.cert).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("pki/other-key.pem"), &other.key).map_err(|e| e.to_string())?;
    let config = mtls_gateway::commands::demo_config(PKI_CLIENT, SELF_SIGNED)
        + "\n[limits]\nmax_body_bytes = 4096\n";
    std::fs::write(dir.join("gateway.toml"), config).map_err(|e| e.to_string())?;

    let mut child = Command::new(&binary)
        .args([
            "--log-format",
            "json",
            "--log-level",
            "warn,mtls_gateway::listener=info",
            "serve",
            "-c",
        ])
        .arg(dir.join("gateway.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{binary}: {e}"))?;
    let pid = child.id();
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let addr = {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(stderr).lines();
        let mut found = None;
        for line in lines.by_ref() {
            let line = line.map_err(|e| e.to_string())?;
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["message"] == "mTLS listener ready" {
                found = v["addr"].as_str().map(str::to_string);
                break;
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        found.ok_or("the gateway did not start")?
    };
    let port = addr.rsplit(':').next().unwrap_or_default().to_string();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let result = runtime.block_on(async {
        let ca = mtls_gateway::config::parse_certs(&std::fs::read(dir.join("pki/ca.pem")).map_err(|e| e.to_string())?)?;
        let with = |cert: &str, key: &str| -> Result<MtlsClient, String> {
            MtlsClient::new(&ca, Some(load_identity(&dir.join(cert), &dir.join(key))?), false)
        };
        let clients = Arc::new([
            with("pki/client.pem", "pki/client-key.pem")?,
            with("pki/client-selfsigned.pem", "pki/client-selfsigned-key.pem")?,
            with("pki/other.pem", "pki/other-key.pem")?,
            MtlsClient::new(&ca, None, false)?,
        ]);
        let base = format!("https://localhost:{port}");
        let next = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let counts = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<String, usize>::new()));
        let mut samples = vec![(0usize, rss_kib(pid))];
        let started = Instant::now();
        // SOAK_RATE=N paces the whole run at N requests per second (for long, steady soaks).
        let rate: Option<f64> = std::env::var("SOAK_RATE").ok().and_then(|r| r.parse().ok()).filter(|r: &f64| *r > 0.0);
        let mut workers = Vec::new();
        for _ in 0..concurrency {
            let (clients, base, next, failures, counts) = (clients.clone(), base.clone(), next.clone(), failures.clone(), counts.clone());
            workers.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= total {
                        break;
                    }
                    if let Some(rate) = rate {
                        let due = started + Duration::from_secs_f64(i as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let kind = KINDS[i % KINDS.len()];
                    let good = format!("grant_type=client_credentials&client_id={PKI_CLIENT}&scope=api%3A%2F%2Fsoak%2F.default");
                    let (client, path, content_type, body) = match kind {
                        Kind::Good => (0, "/token", "application/x-www-form-urlencoded", good),
                        Kind::GoodSelfSigned => (1, "/token", "application/x-www-form-urlencoded", good.replace(PKI_CLIENT, SELF_SIGNED)),
                        Kind::UnknownClient => (0, "/token", "application/x-www-form-urlencoded", good.replace(PKI_CLIENT, "nobody")),
                        Kind::NoCertificate => (3, "/token", "application/x-www-form-urlencoded", good),
                        Kind::OtherClientsCert => (2, "/token", "application/x-www-form-urlencoded", good),
                        Kind::RepeatedParameter => (0, "/token", "application/x-www-form-urlencoded", format!("{good}&grant_type=client_credentials")),
                        Kind::WrongContentType => (0, "/token", "application/json", good),
                        Kind::Oversized => (0, "/token", "application/x-www-form-urlencoded", format!("{good}&pad={}", "x".repeat(8000))),
                        Kind::SecretInBody => (0, "/token", "application/x-www-form-urlencoded", format!("{good}&client_secret=s")),
                        Kind::UnknownPath => (0, "/nope", "application/x-www-form-urlencoded", good),
                    };
                    let request = http::Request::post(format!("{base}{path}"))
                        .header("content-type", content_type)
                        .body(Full::new(Bytes::from(body)))
                        .map_err(|e| e.to_string());
                    let outcome = match request {
                        Ok(r) => clients[client].send(r).await,
                        Err(e) => Err(e),
                    };
                    let (status, error) = kind.expected();
                    let ok = match &outcome {
                        Ok(a) => a.status.as_u16() == status && (status == 200 || a.json()["error"] == error),
                        Err(_) => false,
                    };
                    *counts.lock().unwrap().entry(format!("{kind:?}")).or_default() += 1;
                    if !ok {
                        failures.lock().unwrap().push(format!("{kind:?}: {:?}", outcome.map(|a| (a.status, a.body))));
                    }
                }
            }));
        }
        // RSS after every tenth of the run.
        let quarter = total / 10;
        while !workers.iter().all(|w| w.is_finished()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let done = next.load(Ordering::SeqCst).min(total);
            if done >= samples.len() * quarter.max(1) {
                samples.push((done, rss_kib(pid)));
            }
        }
        for w in workers {
            w.await.map_err(|e| e.to_string())?;
        }
        samples.push((total, rss_kib(pid)));
        let elapsed = started.elapsed();
        let failures = failures.lock().unwrap().clone();
        let counts = counts.lock().unwrap().clone();
        Ok::<_, String>((elapsed, failures, counts, samples))
    });
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let exit = child.wait().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    let (elapsed, failures, counts, samples) = result?;

    println!(
        "soak: {total} requests, concurrency {concurrency}, {:.1} s, {:.0} req/s",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    for (kind, n) in &counts {
        println!("  {kind:<18} {n}");
    }
    println!("  gateway RSS (KiB) after N requests:");
    for (n, kib) in &samples {
        println!("    {n:>7}  {kib}");
    }
    println!("  gateway exit after SIGTERM: {exit}");
    if !failures.is_empty() {
        for f in failures.iter().take(10) {
            eprintln!("  wrong answer: {f}");
        }
        return Err(format!(
            "{} of {total} requests got a wrong answer",
            failures.len()
        ));
    }
    // Level off: the last sample within 25 % (+ 4 MiB) of the one after the first tenth.
    let warm = samples.get(1).map(|s| s.1).unwrap_or(0);
    let last = samples.last().map(|s| s.1).unwrap_or(0);
    if last > warm + warm / 4 + 4096 {
        return Err(format!(
            "RSS kept growing: {warm} KiB after warm-up, {last} KiB at the end"
        ));
    }
    if !exit.success() {
        return Err(format!("the gateway exited with {exit}"));
    }
    println!("soak passed: every good request succeeded, every bad one failed with its exact status and code, RSS levelled off");
    Ok(())
}
