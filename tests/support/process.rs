//! External processes a test starts (the gateway binary, nginx, …), stopped the way each
//! program's documentation says, so that a run leaves nothing behind.
//!
//! Each process starts in a process group of its own. Stopping sends the program's graceful
//! signal to its main process (nginx: SIGQUIT, which also stops its workers; the gateway:
//! SIGTERM), waits a bounded time for it, and as the last step sends SIGKILL to the whole
//! group, which reaches children a killed parent would have orphaned.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a graceful stop may take before the group is killed.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// A running external process, stopped (gracefully, then by force) when dropped.
pub struct Supervised {
    child: Child,
    graceful: &'static str,
    name: String,
}

impl Supervised {
    /// Starts `cmd` in a new process group; `graceful` is the signal that stops it cleanly
    /// (`"QUIT"` for nginx, `"TERM"` for most daemons).
    pub fn spawn(cmd: &mut Command, graceful: &'static str) -> Self {
        let name = format!("{:?}", cmd.get_program());
        let child = cmd
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            child,
            graceful,
            name,
        }
    }

    /// The process id (also its process group id).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child, for its pipes.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Sends `signal` (a name such as `"HUP"`) to the main process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill(1) is part of procps/util-linux");
        assert!(status.success(), "kill -{signal} {} failed", self.name);
    }

    /// Waits up to `within` for the main process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill_group(&self) {
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg("--")
            .arg(format!("-{}", self.child.id()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .arg(format!("-{}", self.graceful))
                .arg(self.child.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if self.wait_exit(STOP_WAIT).is_none() {
                eprintln!(
                    "{} did not stop on SIG{}; killing its group",
                    self.name, self.graceful
                );
            }
        }
        // Whatever the main process left (an nginx worker whose master died) goes with the group.
        self.kill_group();
        let _ = self.child.wait();
    }
}

/// The gateway binary under test with JSON logs on a channel, stopped by SIGTERM.
pub struct Served {
    process: Supervised,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    /// While true, nothing more is read from the gateway's standard error (its pipe fills).
    paused: Arc<(Mutex<bool>, Condvar)>,
}

impl Served {
    /// `mtls-gateway --log-format json serve -c CONFIG`.
    pub fn start(config: &std::path::Path) -> Self {
        Self::command(
            Command::new(env!("CARGO_BIN_EXE_mtls-gateway"))
                .args(["--log-format", "json", "serve", "-c"])
                .arg(config),
        )
    }

    /// Any gateway command whose JSON log goes to standard error.
    pub fn command(cmd: &mut Command) -> Self {
        let mut process =
            Supervised::spawn(cmd.stdout(Stdio::null()).stderr(Stdio::piped()), "TERM");
        let stderr = process
            .child_mut()
            .stderr
            .take()
            .expect("standard error is piped");
        let (tx, lines) = mpsc::channel();
        let paused = Arc::new((Mutex::new(false), Condvar::new()));
        std::thread::spawn({
            let paused = paused.clone();
            move || {
                let mut stderr = BufReader::new(stderr);
                loop {
                    {
                        let (lock, cv) = &*paused;
                        let mut p = lock.lock().unwrap_or_else(|e| e.into_inner());
                        while *p {
                            p = cv.wait(p).unwrap_or_else(|e| e.into_inner());
                        }
                    }
                    let mut line = String::new();
                    match stderr.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {
                            let _ = tx.send(line.trim_end_matches('\n').to_string());
                        }
                    }
                }
            }
        });
        Self {
            process,
            lines,
            seen: Vec::new(),
            paused,
        }
    }

    /// Stops reading the gateway's standard error (as a stalled log shipper would), or
    /// starts again.
    pub fn pause_reading(&self, paused: bool) {
        let (lock, cv) = &*self.paused;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = paused;
        cv.notify_all();
    }

    /// Waits for a log event with `message`; returns it.
    pub fn event(&mut self, message: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = self
                .seen
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|v| v["message"] == message)
            {
                return v;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no log event {message:?}; saw:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// The `addr` field of the log event `message` (a listener reporting its bound address).
    pub fn addr(&mut self, message: &str) -> std::net::SocketAddr {
        self.event(message)["addr"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{message:?} carries no addr"))
    }

    /// Sends `signal` to the gateway.
    pub fn signal(&self, signal: &str) {
        self.process.signal(signal);
    }

    /// Waits for the gateway to exit, then collects the rest of its log.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let status = self
            .process
            .wait_exit(Duration::from_secs(20))
            .expect("the gateway did not exit");
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(line);
        }
        status
    }

    /// Every log line read so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }
}

/// An external tool a test needs: with `CI` set, missing is a failure naming the package;
/// otherwise the test is skipped with that message (returns false).
pub fn tool_available(tool: &str, package: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} || test -x /usr/sbin/{tool}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    let message = format!("{tool} is not installed: apt-get install {package} (bash .ci/run does)");
    if std::env::var_os("CI").is_some() {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
    false
}

/// A free loopback port, for programs that cannot bind port 0 and report it (nginx). Another
/// process may take it before the program binds it: callers retry (see [`start_nginx`]).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("loopback has free ports")
}

/// A shipped nginx example (a whole `nginx.conf` under examples/deploy/nginx/) made to run in
/// `dir` on `port`: `replace` swaps its upstream addresses (each must be in the file, so a
/// changed example fails here rather than testing something else), and the host paths (pid,
/// logs, `/etc/nginx/tls/`) and the `listen 443` move into the test folder. Nothing else
/// changes, so the test runs what a user would install.
pub fn shipped_nginx(
    file: &str,
    dir: &std::path::Path,
    port: u16,
    replace: &[(&str, String)],
) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = std::fs::read_to_string(root.join("examples/deploy/nginx").join(file))
        .expect("the example exists");
    let d = dir.display();
    let mut conf = String::new();
    for line in shipped.lines() {
        let t = line.trim_start();
        let line = if t.starts_with("pid ") {
            format!("pid {d}/nginx.pid;")
        } else if t.starts_with("error_log ") {
            format!("error_log {d}/nginx-error.log info;")
        } else if t.starts_with("access_log ") {
            "access_log off;".to_string()
        } else if t.starts_with("worker_processes ") {
            "worker_processes 1;".to_string()
        } else if t == "http {" {
            format!(
                "http {{\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  ssl_session_cache off;"
            )
        } else {
            line.to_string()
        };
        conf.push_str(&line);
        conf.push('\n');
    }
    let mut replace: Vec<(&str, String)> = replace.to_vec();
    replace.push(("listen 443 ssl;", format!("listen 127.0.0.1:{port} ssl;")));
    for (from, to) in &replace {
        assert!(conf.contains(from), "{file} no longer has {from}");
        conf = conf.replace(from, to);
    }
    conf.replace(
        "/etc/nginx/tls/legacy-clients-ca.pem",
        &format!("{d}/ca1.pem"),
    )
    .replace("/etc/nginx/tls/clients-ca.pem", &format!("{d}/ca1.pem"))
    .replace("/etc/nginx/tls/", &format!("{d}/"))
}

/// `nginx -t` on configuration `conf` (written to `dir`): `Ok` or nginx's own words.
pub fn nginx_t(dir: &std::path::Path, conf: &str) -> Option<Result<(), String>> {
    if !tool_available("nginx", "nginx-light") {
        return None;
    }
    let path = dir.join("nginx-t.conf");
    std::fs::write(&path, conf).expect("the test folder is writable");
    let out = Command::new("nginx")
        .args(["-t", "-e", "stderr", "-g", "user root;", "-c"])
        .arg(&path)
        .output()
        .expect("nginx runs");
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

/// Starts nginx (Debian `nginx-light`) in the foreground with the configuration `conf(port)`
/// written to `dir/nginx.conf`; `conf` must write its pid file to `dir/nginx.pid`. A port
/// taken between choosing and binding makes nginx exit at once: then another port is tried.
/// Returns `None` (test skipped) when nginx is missing outside CI.
pub fn start_nginx(
    dir: &std::path::Path,
    conf: impl Fn(u16) -> String,
) -> Option<(Supervised, u16)> {
    if !tool_available("nginx", "nginx-light") {
        return None;
    }
    let pid_file = dir.join("nginx.pid");
    for _attempt in 0..5 {
        let port = free_port();
        let path = dir.join("nginx.conf");
        std::fs::write(&path, conf(port)).expect("the test folder is writable");
        let _ = std::fs::remove_file(&pid_file);
        let mut nginx = Supervised::spawn(
            Command::new("nginx")
                .args(["-e", "stderr", "-g", "daemon off; user root;", "-c"])
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "QUIT",
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if nginx.wait_exit(Duration::ZERO).is_some() {
                break; // most likely the port was taken: try another
            }
            if pid_file.exists() && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some((nginx, port));
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                std::fs::read_to_string(dir.join("nginx-error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!(
        "nginx exited five times at start: {}",
        std::fs::read_to_string(dir.join("nginx-error.log")).unwrap_or_default()
    );
}

/// Starts `redis-server` (Debian `redis-server`) on loopback, nothing persisted, in `dir`; on
/// `port` when given (a restart), else on a free one. Returns `None` (test skipped) when it is
/// missing outside CI.
pub fn start_redis(dir: &std::path::Path, port: Option<u16>) -> Option<(Supervised, u16)> {
    start_redis_with(dir, port, &[])
}

/// [`start_redis`] with extra `redis-server` arguments (TLS, a password).
pub fn start_redis_with(
    dir: &std::path::Path,
    port: Option<u16>,
    extra: &[String],
) -> Option<(Supervised, u16)> {
    if !tool_available("redis-server", "redis-server") {
        return None;
    }
    for _attempt in 0..5 {
        let port = port.unwrap_or_else(free_port);
        let mut redis = Supervised::spawn(
            Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--dir"])
                .arg(dir)
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
            "TERM",
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if redis.wait_exit(Duration::ZERO).is_some() {
                break; // the port was taken: try another (or the same again, for a restart)
            }
            if redis_ping(port) {
                return Some((redis, port));
            }
            if Instant::now() > deadline {
                panic!("redis-server did not answer on port {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("redis-server could not start");
}

/// Whether a Redis server answers PING on loopback `port` (an error such as NOAUTH counts:
/// it is up).
pub fn redis_ping(port: u16) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut tcp) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(500)));
    let mut answer = [0u8; 1];
    tcp.write_all(b"PING\r\n").is_ok()
        && tcp.read_exact(&mut answer).is_ok()
        && matches!(answer[0], b'+' | b'-')
}
