//! `mtls-gateway`: clap → tracing → config → run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mtls_gateway::log_writer::{Flush, LogWriter};
use mtls_gateway::{commands, config, listener};

#[derive(Parser)]
#[command(
    name = "mtls-gateway",
    version,
    about = "RFC 8705 mutual-TLS client authentication in front of Entra ID and other identity providers"
)]
struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "MTLS_GATEWAY_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    /// Log level or filter (e.g. "info", "debug", "mtls_gateway=debug").
    #[arg(
        long,
        global = true,
        env = "MTLS_GATEWAY_LOG_LEVEL",
        default_value = "info"
    )]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

/// `-c FILE` of the commands that read a configuration.
#[derive(Args)]
struct ConfigFile {
    /// Configuration file.
    #[arg(
        short,
        long,
        env = "MTLS_GATEWAY_CONFIG",
        default_value = "gateway.toml"
    )]
    config: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[command(flatten)]
        config: ConfigFile,
    },
    /// Validate the configuration and print a summary of clients.
    Check {
        #[command(flatten)]
        config: ConfigFile,
        /// Also ask each client's upstream for a real token (client_credentials) and turn a
        /// refusal into the fix.
        #[arg(long)]
        online: bool,
    },
    /// Print a certificate's subject, SANs, validity, SHA-1 thumbprint, x5t and x5t#S256.
    Thumbprint {
        /// PEM or DER certificate, or PKCS#12 (.pfx/.p12).
        file: PathBuf,
        /// Environment variable holding the PKCS#12 password.
        #[arg(long)]
        password_env: Option<String>,
    },
    /// Print the public JWK Set of credentials (to register with Okta, Auth0, Keycloak, …).
    Jwks {
        #[command(flatten)]
        config: ConfigFile,
        /// Credential names (`[credentials.NAME]`); all when none is given.
        credentials: Vec<String>,
    },
    /// Write a development PKI (CA, server, clients, signing credential).
    DevPki {
        /// Output folder.
        #[arg(long, default_value = "dev-pki")]
        out: PathBuf,
        /// Replace an existing development CA (every certificate it issued stops verifying).
        #[arg(long)]
        force: bool,
    },
    /// Run the embedded Entra-compatible identity provider on its own.
    MockIdp {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9443")]
        listen: SocketAddr,
        /// Tenant name.
        #[arg(long, default_value = "dev")]
        tenant: String,
        /// Register a credential certificate for a client: CLIENT_ID=CERT.pem (repeatable).
        #[arg(long = "client", value_parser = parse_client)]
        clients: Vec<(String, PathBuf)>,
        /// TLS certificate to serve (default: a fresh in-memory one).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// TLS key to serve.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Where to write the CA of the in-memory TLS certificate.
        #[arg(long)]
        ca_out: Option<PathBuf>,
    },
    /// Run everything in a temp folder and fetch one token over mTLS.
    Demo {
        /// What the embedded identity provider imitates: entra, okta, auth0, keycloak, ping,
        /// forgerock or generic.
        #[arg(long, default_value = "entra")]
        profile: String,
    },
}

fn parse_client(s: &str) -> Result<(String, PathBuf), String> {
    let (id, path) = s.split_once('=').ok_or("expected CLIENT_ID=CERT.pem")?;
    Ok((id.to_string(), PathBuf::from(path)))
}

fn init_logging(format: LogFormat, level: &str) -> Result<Flush, String> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| format!("--log-level {level}: {e}"))?;
    // Lines leave from a thread of their own: a request never waits on standard error.
    let (writer, flush) = LogWriter::start(std::io::stderr())
        .map_err(|e| format!("cannot start the log writer: {e}"))?;
    // Colour only on a terminal: journald, files and log shippers get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
    Ok(flush)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = matches!(cli.log_format, LogFormat::Json);
    // Dropped last: what was logged is written before the process exits.
    let logs = match init_logging(cli.log_format, &cli.log_level) {
        Ok(flush) => flush,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // One CPU (a container limit, or taskset): a current-thread runtime schedules FIFO, which
    // keeps the latency tail short under saturation, and skips cross-thread work stealing.
    let workers = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut builder = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = match cli.command {
        Command::Serve { config } => runtime.block_on(serve(config.config)),
        Command::Check { config, online } => runtime
            .block_on(commands::check(&config.config, online))
            .map(|s| print!("{s}")),
        Command::Thumbprint { file, password_env } => {
            commands::thumbprint(&file, password_env.as_deref()).map(|s| print!("{s}"))
        }
        Command::Jwks {
            config,
            credentials,
        } => commands::jwks(&config.config, &credentials).map(|s| print!("{s}")),
        Command::DevPki { out, force } => commands::dev_pki(&out, force).map(|s| print!("{s}")),
        Command::MockIdp {
            listen,
            tenant,
            clients,
            tls_cert,
            tls_key,
            ca_out,
        } => runtime.block_on(commands::mock_idp(
            listen,
            &tenant,
            &clients,
            tls_cert.zip(tls_key),
            ca_out.as_deref(),
        )),
        Command::Demo { profile } => runtime
            .block_on(commands::demo(&profile))
            .map(|s| println!("{s}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // With JSON logs, a fatal error is one JSON event too, so that a log shipper reading
        // the container's stderr gets it whole.
        Err(e) if json => {
            tracing::error!(error = %e.trim_end(), "fatal: the command failed");
            ExitCode::from(1)
        }
        Err(e) => {
            // After the lines logged before it, in order.
            logs.flush();
            eprintln!("error: {}", e.trim_end());
            ExitCode::from(1)
        }
    }
}

async fn serve(path: PathBuf) -> Result<(), String> {
    if let Some(dir) = config::dev_pki_dir(&path) {
        if !dir.exists() {
            let written = mtls_gateway::pki::write_dev_pki(&dir)?;
            tracing::warn!(dir = %dir.display(), files = written.len(), "created the development PKI named by [dev]");
        }
    }
    let config = config::load(&path).map_err(|e| e.to_string())?;
    if config.dev_pki.is_some() {
        tracing::warn!(
            "[dev] is set: this configuration uses a development PKI; never use it in production"
        );
    }
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    // Handlers first: a SIGTERM right after "ready" must drain, not kill the process.
    let signals = Signals::install();
    let running = listener::start(config).await.map_err(|e| e.to_string())?;
    signals.wait(&running).await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

/// SIGTERM, SIGINT and SIGHUP, listened to from before the listeners are bound.
struct Signals {
    #[cfg(unix)]
    unix: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let unix = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) {
                (Ok(term), Ok(hup)) => Some((term, hup)),
                _ => None,
            };
            Self { unix }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// SIGHUP reloads; SIGTERM or SIGINT returns (to shut down).
    async fn wait(self, running: &listener::Running) {
        #[cfg(unix)]
        if let Some((mut term, mut hup)) = self.unix {
            loop {
                tokio::select! {
                    _ = term.recv() => return,
                    _ = tokio::signal::ctrl_c() => return,
                    _ = hup.recv() => {
                        tracing::info!("SIGHUP: reloading the configuration");
                        // Problems are logged and counted by reload itself. A reload takes
                        // milliseconds; running it here keeps this runtime-flavour agnostic.
                        let _ = running.reload();
                    }
                }
            }
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
