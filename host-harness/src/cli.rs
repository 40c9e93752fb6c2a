//! The `callroute` command line.
//!
//! ```text
//! callroute route --scheme FILE [--scheme-name NAME] --call FILE|- [--crm-answer FILE] [--trace] [--plugin FILE] [--allow-private-network]
//! callroute report --scheme FILE [--scheme-name NAME] --outcome FILE|- [--trace] [--plugin FILE] [--allow-private-network]
//! callroute serve --schemes FILE --listen ADDR [--max-connections N] [--read-timeout-secs N] [--max-concurrent-calls N] [--exchange-log-size N] [--show-numbers] [--memory-store URL] [--outbox DIR | --no-outbox] [--outbox-max-reports N] [--outbox-max-backoff-secs N] [--plugin FILE] [--allow-private-network]
//!
//! sandbox options of all three: [--ca-cert PEM]... [--memory-limit-mb N] [--cpu-limit-ms N] [--cache-dir DIR]
//! callroute check FILE
//! callroute demo
//! ```
//!
//! `route` prints one JSON object ([`crate::report`]) and exits 0 when the call was routed,
//! 1 when it failed (including an invalid scheme: kind `config`), and 2 when the scheme or
//! call file cannot be read or parsed, the plugin cannot be loaded, or the usage is wrong.
//! `report` sends one outcome report once, the same way, and exits 0 when the CRM took it.
//! `check` prints one line per problem of a schemes file and exits 1 if there is any, else
//! 0. `serve` reads its schemes file again on SIGHUP.

use crate::Call;
use crate::router::{Router, RouterConfig};
use crate::scheme_file::{SchemeEntry, SchemeFile};
use clap::{Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status: the call was routed.
pub const EXIT_ROUTED: u8 = 0;
/// Exit status: the call could not be routed (the JSON says why).
pub const EXIT_FAILED: u8 = 1;
/// Exit status: bad usage, or an input that cannot be read or parsed.
pub const EXIT_USAGE: u8 = 2;

/// Route phone calls by asking a CRM webhook, in a WebAssembly sandbox.
#[derive(Debug, Parser)]
#[command(name = "callroute", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Route one call through a scheme and print the outcome as JSON.
    Route(RouteArgs),
    /// Tell a scheme's CRM how a call ended, once (no outbox: `serve` keeps and retries
    /// reports), and print whether it took it as JSON.
    Report(ReportArgs),
    /// Serve routing over HTTP for call platforms: `POST` or `GET /v1/route/{scheme}`,
    /// `/healthz`, `/metrics`. SIGHUP reloads the schemes file.
    Serve(ServeArgs),
    /// Check a schemes file offline: every scheme as `route` and `serve` would read it, and
    /// the environment variables it refers to. One line per problem; exit status 1 if any.
    Check(CheckArgs),
    /// Start a local CRM and route a sample call through every submission × import type.
    Demo,
}

/// `callroute route`'s arguments.
#[derive(Debug, clap::Args)]
pub struct RouteArgs {
    /// The scheme file (TOML): one scheme, or several as [[scheme]] tables.
    #[arg(long, value_name = "FILE")]
    pub scheme: PathBuf,
    /// Which scheme of the file to use, by its `name`.
    #[arg(long, value_name = "NAME")]
    pub scheme_name: Option<String>,
    /// The call (JSON), or `-` to read it from stdin.
    #[arg(long, value_name = "FILE|-")]
    pub call: String,
    /// Do not call the CRM: answer its webhook with this file's contents (status 200), to see
    /// what the scheme makes of a sample answer. The URL must still pass the outbound guard.
    #[arg(long, value_name = "FILE")]
    pub crm_answer: Option<PathBuf>,
    /// Also print the call's exchange on stderr, as JSON: each request to the CRM (method, URL
    /// without its query, body as sent) and what came back (status, the first 4 KiB of the
    /// answer, or why nothing did), secrets masked.
    #[arg(long)]
    pub trace: bool,
    /// The sandbox.
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// `callroute report`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The scheme file (TOML): one scheme, or several as [[scheme]] tables.
    #[arg(long, value_name = "FILE")]
    pub scheme: PathBuf,
    /// Which scheme of the file to use, by its `name`.
    #[arg(long, value_name = "NAME")]
    pub scheme_name: Option<String>,
    /// The outcome (JSON, as `POST /v1/outcome/{scheme}` takes it), or `-` for stdin.
    #[arg(long, value_name = "FILE|-")]
    pub outcome: String,
    /// Also print the report's exchange on stderr, as JSON (as `route --trace` does).
    #[arg(long)]
    pub trace: bool,
    /// The sandbox.
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// `callroute check`'s arguments.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The schemes file (TOML).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// `callroute serve`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The schemes file (TOML): every [[scheme]] needs a `name`, its path segment.
    #[arg(long, value_name = "FILE")]
    pub schemes: PathBuf,
    /// The address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// Most client connections at once; more wait for one to close (kept within the
    /// file-descriptor limit).
    #[arg(long, value_name = "N", default_value_t = crate::serve::ServeLimits::default().max_connections as u32,
          value_parser = clap::value_parser!(u32).range(1..=crate::serve::MAX_CONNECTIONS as i64))]
    pub max_connections: u32,
    /// Most seconds a request's head, and then its body, may take to arrive (an idle
    /// keep-alive connection is closed after as long).
    #[arg(long, value_name = "SECS", default_value_t = crate::serve::ServeLimits::default().read_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub read_timeout_secs: u64,
    /// Most calls routed at once, all schemes together (each call holds a sandbox slot of
    /// the pool this sizes; see the README for what a slot costs). A call beyond it, or
    /// beyond its scheme's share, is answered at once as `overloaded`.
    #[arg(long, value_name = "N", default_value_t = crate::router::DEFAULT_MAX_CONCURRENT_CALLS,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_concurrent_calls: u32,
    /// How many recent exchanges each scheme keeps for the admin API (`/v1/schemes/…`).
    #[arg(long, value_name = "N", default_value_t = crate::serve::exchanges::DEFAULT_CAPACITY as u32,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub exchange_log_size: u32,
    /// Show callers' and callees' numbers whole in the exchanges (masked by default:
    /// `+38050•••2233`).
    #[arg(long)]
    pub show_numbers: bool,
    /// Where to remember each caller's last routing for schemes with `remember_secs`: a
    /// Redis or Valkey URL (`redis://127.0.0.1:6379/0`), shared by every instance behind a
    /// load balancer; in this process's memory when not given. A store that is down never
    /// fails a call.
    #[arg(long, value_name = "URL")]
    pub memory_store: Option<String>,
    /// Where outcome reports (`POST /v1/outcome/{scheme}`) wait until their CRM takes them: a
    /// directory, created if needed, holding one database file. A report is written there
    /// before it is acknowledged, and survives a crash and a restart.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "callroute-outbox",
        conflicts_with = "no_outbox"
    )]
    pub outbox: PathBuf,
    /// Keep no outbox: outcome reports are refused (503).
    #[arg(long)]
    pub no_outbox: bool,
    /// Most outcome reports one scheme may have waiting; past it, reports are refused (503)
    /// until its CRM takes some.
    #[arg(long, value_name = "N", default_value_t = crate::outbox::OutboxSettings::default().max_reports_per_scheme as u32,
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub outbox_max_reports: u32,
    /// Longest wait between two attempts to deliver a report, in seconds (the waits double
    /// from 1 s up to this, with jitter).
    #[arg(long, value_name = "SECS", default_value_t = crate::outbox::OutboxSettings::default().max_backoff.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub outbox_max_backoff_secs: u64,
    /// The sandbox.
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// The component and its sandbox, shared by `route` and `serve`.
#[derive(Debug, clap::Args)]
pub struct SandboxArgs {
    /// Route with this component instead of the embedded one.
    #[arg(long, value_name = "FILE")]
    pub plugin: Option<PathBuf>,
    /// Let the component reach loopback, private and link-local addresses.
    #[arg(long)]
    pub allow_private_network: bool,
    /// Also trust the CA certificates in this PEM file for https CRMs (repeatable).
    #[arg(long, value_name = "PEM")]
    pub ca_cert: Vec<PathBuf>,
    /// Cap on each call's memory, in MiB.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub memory_limit_mb: u32,
    /// Most CPU time a call's component may use, in milliseconds (waiting on the CRM is free).
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u64).range(5..=60_000))]
    pub cpu_limit_ms: u64,
    /// Keep precompiled components here so a restart does not recompile (writable only by
    /// this user).
    #[arg(long, value_name = "DIR", env = "CALLROUTE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

impl SandboxArgs {
    /// Load the component under this sandbox policy.
    pub fn router(&self) -> Result<Router, String> {
        load_router(self.plugin.as_ref(), self.config()?)
    }

    /// The sandbox policy these options describe.
    pub fn config(&self) -> Result<RouterConfig, String> {
        let mut extra_roots = Vec::new();
        for path in &self.ca_cert {
            extra_roots.extend(crate::outbound::load_ca_certs(path)?);
        }
        Ok(RouterConfig {
            allow_private_network: self.allow_private_network,
            memory_limit: self.memory_limit_mb as usize * 1024 * 1024,
            cpu_limit: std::time::Duration::from_millis(self.cpu_limit_ms),
            extra_roots,
            cache_dir: self.cache_dir.clone(),
            ..RouterConfig::default()
        })
    }
}

/// Run the command line; the process's exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A server logs one line per call by default; the one-shot commands only warnings.
    let default_level = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    crate::logging::init(default_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return usage_error(format!("cannot start the async runtime: {e}")),
    };
    match cli.command {
        Command::Route(args) => runtime.block_on(route(args)),
        Command::Report(args) => runtime.block_on(report(args)),
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Check(args) => check(&args),
        Command::Demo => runtime.block_on(demo()),
    }
}

fn usage_error(message: String) -> ExitCode {
    eprintln!("callroute: {message}");
    ExitCode::from(EXIT_USAGE)
}

fn load_router(plugin: Option<&PathBuf>, config: RouterConfig) -> Result<Router, String> {
    match plugin {
        Some(path) => {
            let wasm = std::fs::read(path)
                .map_err(|e| format!("cannot read plugin {}: {e}", path.display()))?;
            Router::new(&wasm, config).map_err(|e| format!("plugin {}: {e}", path.display()))
        }
        None => Router::embedded(config).map_err(|e| e.to_string()),
    }
}

/// The text of `source` (a file, or `-` for stdin) and how to name it in errors; `what` says
/// what it holds (`call`).
fn read_input(source: &str, what: &str) -> Result<(String, String), String> {
    if source == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read the {what} from stdin: {e}"))?;
        Ok((text, "stdin".to_owned()))
    } else {
        let text = std::fs::read_to_string(source)
            .map_err(|e| format!("cannot read {what} file {source}: {e}"))?;
        Ok((text, source.to_owned()))
    }
}

fn read_call(source: &str) -> Result<Call, String> {
    let (text, shown) = read_input(source, "call")?;
    let call = Call::from_json(&text).map_err(|e| format!("call {shown}: {e}"))?;
    call.check_limits()
        .map_err(|e| format!("call {shown}: {e}"))?;
    Ok(call)
}

/// The scheme `name` (or the only one) of the scheme file at `path`, as `route` and `report`
/// take it.
fn scheme_entry(path: &std::path::Path, name: Option<&str>) -> Result<SchemeEntry, String> {
    SchemeFile::load(path)
        .and_then(|file| file.select(name).cloned())
        .map_err(|e| e.to_string())
}

async fn route(args: RouteArgs) -> ExitCode {
    let entry = match scheme_entry(&args.scheme, args.scheme_name.as_deref()) {
        Ok(entry) => entry,
        Err(e) => return usage_error(e),
    };
    let call = match read_call(&args.call) {
        Ok(call) => call,
        Err(e) => return usage_error(e),
    };
    let router = match route_router(&args) {
        Ok(router) => router,
        Err(e) => return usage_error(e),
    };
    let scheme = router.prepare(entry.pairs);
    let report = router.route(&scheme, &call).await;
    if args.trace {
        let record = crate::exchange::record_json(&call, &report, false);
        eprintln!("{record}");
    }
    println!("{}", report.to_json());
    ExitCode::from(if report.is_routed() {
        EXIT_ROUTED
    } else {
        EXIT_FAILED
    })
}

async fn report(args: ReportArgs) -> ExitCode {
    use callroute_plugin::report::{self, Delivery, Outcome};
    let entry = match scheme_entry(&args.scheme, args.scheme_name.as_deref()) {
        Ok(entry) => entry,
        Err(e) => return usage_error(e),
    };
    let outcome = match read_input(&args.outcome, "outcome").and_then(|(text, shown)| {
        Outcome::from_json(&text).map_err(|e| format!("outcome {shown}: {e}"))
    }) {
        Ok(outcome) => outcome,
        Err(e) => return usage_error(e),
    };
    let config = match args.sandbox.config() {
        Ok(config) => RouterConfig {
            record_exchanges: args.trace,
            ..config
        },
        Err(e) => return usage_error(e),
    };
    let router = match load_router(args.sandbox.plugin.as_ref(), config) {
        Ok(router) => router,
        Err(e) => return usage_error(e),
    };
    let scheme = router.prepare(entry.pairs);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let delivery = Delivery {
        report_id: report::report_id(&outcome, now, &std::process::id().to_be_bytes()),
        attempt: 1,
    };
    let attempt = router.report(&scheme, &outcome, &delivery).await;
    if args.trace {
        eprintln!(
            "{}",
            crate::exchange::report_json(&outcome, &delivery, &attempt)
        );
    }
    let answer = match &attempt.result {
        Ok(()) => report::delivered_answer(&delivery.report_id),
        Err(failure) => {
            callroute_plugin::outcome::http_rejection(502, failure.kind.as_str(), &failure.message)
        }
    };
    println!("{}", answer.body);
    ExitCode::from(if attempt.result.is_ok() {
        EXIT_ROUTED
    } else {
        EXIT_FAILED
    })
}

/// `route`'s sandbox, answering the webhook itself with `--crm-answer`.
fn route_router(args: &RouteArgs) -> Result<Router, String> {
    let mut config = args.sandbox.config()?;
    config.record_exchanges = args.trace;
    if let Some(path) = &args.crm_answer {
        let body = std::fs::read(path)
            .map_err(|e| format!("cannot read CRM answer {}: {e}", path.display()))?;
        config.canned_answer = Some(crate::outbound::CannedAnswer {
            status: 200,
            body: body.into(),
        });
    }
    load_router(args.sandbox.plugin.as_ref(), config)
}

async fn serve(args: ServeArgs) -> ExitCode {
    let config = match args.sandbox.config() {
        Ok(config) => RouterConfig {
            max_concurrent_calls: args.max_concurrent_calls,
            ..config
        },
        Err(e) => return usage_error(e),
    };
    let router = match load_router(args.sandbox.plugin.as_ref(), config) {
        Ok(router) => router,
        Err(e) => return usage_error(e),
    };
    let router = match args
        .memory_store
        .as_deref()
        .map(crate::memory::Memory::redis)
    {
        None => router,
        Some(Ok(memory)) => router.with_memory(memory),
        Some(Err(e)) => return usage_error(e.to_string()),
    };
    let limits = crate::serve::ServeLimits {
        max_connections: args.max_connections as usize,
        read_timeout: std::time::Duration::from_secs(args.read_timeout_secs),
    };
    let service = match crate::serve::Service::load(router, &args.schemes) {
        Ok(service) => service
            .with_limits(limits)
            .with_exchange_log(args.exchange_log_size as usize, args.show_numbers),
        Err(e) => return usage_error(format!("{}: {e}", args.schemes.display())),
    };
    let service = if args.no_outbox {
        service
    } else {
        let defaults = crate::outbox::OutboxSettings::default();
        let settings = crate::outbox::OutboxSettings {
            max_reports_per_scheme: args.outbox_max_reports as usize,
            max_backoff: std::time::Duration::from_secs(args.outbox_max_backoff_secs)
                .max(defaults.min_backoff),
            ..defaults
        };
        match crate::outbox::Outbox::open(&args.outbox, settings) {
            Ok(outbox) => service.with_outbox(outbox),
            Err(e) => return usage_error(e.to_string()),
        }
    };
    let service = std::sync::Arc::new(service);
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => return usage_error(format!("cannot listen on {}: {e}", args.listen)),
    };
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    crate::serve::reload_on_hangup(service.clone());
    // The first stdout line says where to connect (the port, when 0 was asked for).
    println!(
        "callroute serve: listening on http://{addr} (schemes: {})",
        service.scheme_names().join(", ")
    );
    tracing::info!(%addr, "serving");
    let (open, metrics_open) = service.open_to_anyone();
    if !args.listen.ip().is_loopback() && !open.is_empty() {
        tracing::warn!(
            %addr,
            schemes = ?open,
            "listening beyond loopback with schemes that need no token (api_tokens): anyone who \
             reaches this address can route their calls and make callroute call their CRMs"
        );
    }
    if !args.listen.ip().is_loopback() && metrics_open {
        tracing::warn!(
            %addr,
            "listening beyond loopback with /metrics open (no [server] api_tokens): it names \
             every tenant"
        );
    }
    crate::serve::run(listener, service, crate::serve::shutdown_signal()).await;
    ExitCode::from(EXIT_ROUTED)
}

fn check(args: &CheckArgs) -> ExitCode {
    let shown = args.file.display();
    let problems = match SchemeFile::load(&args.file) {
        Ok(file) => crate::scheme_file::check(&file),
        Err(e) => vec![e.to_string()],
    };
    if problems.is_empty() {
        println!("{shown}: ok");
        return ExitCode::from(EXIT_ROUTED);
    }
    for problem in &problems {
        println!("{shown}: {problem}");
    }
    ExitCode::from(EXIT_FAILED)
}

async fn demo() -> ExitCode {
    let config = RouterConfig {
        // The demo's CRM is on loopback.
        allow_private_network: true,
        ..RouterConfig::default()
    };
    let router = match load_router(None, config) {
        Ok(router) => router,
        Err(e) => return usage_error(e),
    };
    let mut out = std::io::stdout().lock();
    match crate::demo::run(&router, &mut out).await {
        Ok(true) => ExitCode::from(EXIT_ROUTED),
        Ok(false) => ExitCode::from(EXIT_FAILED),
        Err(e) => usage_error(format!("demo failed: {e}")),
    }
}
