//! The side-by-side benchmark: the same calls against the same local CRM, routed four ways.
//!
//! - **native**: the plugin's own request building and answer parsing (`callroute_plugin`
//!   compiled natively) over a pooled keep-alive hyper client: no sandbox at all;
//! - **harness**: the `callroute` library, a fresh sandboxed instance per call;
//! - **callroute serve**: the same over HTTP, as a PBX calls it (the server as its own process),
//!   and again with every per-call feature on (a bearer token, the exchange log and breakers,
//!   `remember_secs` in process, a signing secret, an allowlist);
//! - **wasmtime serve**: the release artifact under `wasmtime serve`, when `wasmtime` is on
//!   PATH (skipped with a note otherwise);
//! - **the sandbox alone**: one call at a time with the CRM's answer already in hand (the host
//!   answers the webhook itself, after the guard): instantiating and running the component,
//!   next to the same plugin logic natively.
//!
//! Each mode runs `--calls` calls at `--concurrency` after a warm-up, and the table gives
//! calls/s, p50 and p99 latency, and the ratios the targets in BENCHMARKS.md are stated in.
//! `--remember-secs N` gives the scheme `remember_secs`, so every routed call is remembered
//! (in process): run with and without it to see what the memory costs. `--at-least R` makes the
//! run fail when `callroute serve` / `wasmtime serve` is below R. `--only sandbox --seconds N`
//! runs the sandbox alone, from the compile cache, for N seconds and nothing else: for a
//! profiler; with `--plugin PATH`, another build of the component (to compare guest builds).

use callroute_host::crm::{CrmReply, TestCrm};
use callroute_host::outbound::CannedAnswer;
use callroute_host::{Call, PreparedScheme, Router, RouterConfig};
use callroute_plugin::answer::RawAnswer;
use callroute_plugin::error::RouteError;
use callroute_plugin::routing::{InHand, Transport};
use callroute_plugin::scheme::Endpoint;
use http_body_util::{BodyExt, Full};
use std::path::PathBuf;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One mode's figures.
struct Figures {
    name: String,
    calls_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn summarise(name: &str, mut latencies: Vec<Duration>, wall: Duration) -> Figures {
    latencies.sort_unstable();
    let at = |p: f64| {
        latencies[((latencies.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0
    };
    Figures {
        name: name.to_owned(),
        calls_per_sec: latencies.len() as f64 / wall.as_secs_f64(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    }
}

/// A routed-or-not answer to come.
type Routed = Pin<Box<dyn Future<Output = bool> + Send>>;

/// How a mode routes call `n` (saying whether it was routed), and how it is driven.
#[derive(Clone)]
enum Mode {
    /// A blocking API: one OS thread per concurrent call (the plugin's native `Transport`,
    /// HTTP clients).
    Threads(Arc<dyn Fn(usize) -> bool + Send + Sync>),
    /// An async API: one task per concurrent call on `runtime` (the harness library, as
    /// `callroute serve` drives it).
    Tasks(
        Arc<dyn Fn(usize) -> Routed + Send + Sync>,
        Arc<tokio::runtime::Runtime>,
    ),
}

/// Hands out call numbers to the workers of one run and counts what was not routed.
struct Calls {
    next: AtomicUsize,
    total: usize,
    failures: AtomicUsize,
}

impl Calls {
    fn take(&self) -> Option<usize> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (n < self.total).then_some(n)
    }

    fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// Run `total` calls with `concurrency` workers: each call's latency, and the wall time.
fn drive(
    total: usize,
    concurrency: usize,
    mode: &Mode,
) -> Result<(Vec<Duration>, Duration), String> {
    let calls = Arc::new(Calls {
        next: AtomicUsize::new(0),
        total,
        failures: AtomicUsize::new(0),
    });
    let start = Instant::now();
    let latencies: Vec<Duration> = match mode {
        Mode::Threads(one) => {
            let workers: Vec<_> = (0..concurrency)
                .map(|_| {
                    let (calls, one) = (calls.clone(), one.clone());
                    std::thread::spawn(move || {
                        let mut latencies = Vec::new();
                        while let Some(n) = calls.take() {
                            let t = Instant::now();
                            if !one(n) {
                                calls.failed();
                            }
                            latencies.push(t.elapsed());
                        }
                        latencies
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_default())
                .collect()
        }
        Mode::Tasks(one, runtime) => runtime.block_on(async {
            let workers: Vec<_> = (0..concurrency)
                .map(|_| {
                    let (calls, one) = (calls.clone(), one.clone());
                    tokio::spawn(async move {
                        let mut latencies = Vec::new();
                        while let Some(n) = calls.take() {
                            let t = Instant::now();
                            if !one(n).await {
                                calls.failed();
                            }
                            latencies.push(t.elapsed());
                        }
                        latencies
                    })
                })
                .collect();
            let mut latencies = Vec::new();
            for worker in workers {
                latencies.extend(worker.await.unwrap_or_default());
            }
            latencies
        }),
    };
    let wall = start.elapsed();
    match calls.failures.load(Ordering::Relaxed) {
        0 => Ok((latencies, wall)),
        n => Err(format!("{n} calls were not routed")),
    }
}

fn measure(name: &str, calls: usize, concurrency: usize, mode: Mode) -> Result<Figures, String> {
    drive((calls / 10).max(concurrency), concurrency, &mode)?; // warm-up
    let (latencies, wall) = drive(calls, concurrency, &mode)?;
    Ok(summarise(name, latencies, wall))
}

/// Two modes measured in turn, A B B A, each half the calls a time: neither gets the later
/// slot (a local CRM and the VM drift over a run), so their ratio is theirs.
fn measure_side_by_side(
    (a_name, a): (&str, Mode),
    (b_name, b): (&str, Mode),
    calls: usize,
    concurrency: usize,
) -> Result<(Figures, Figures), String> {
    let half = (calls / 2).max(concurrency);
    drive((calls / 10).max(concurrency), concurrency, &a)?; // warm-up
    drive((calls / 10).max(concurrency), concurrency, &b)?;
    // Latencies and wall time of A (0) and B (1).
    let mut runs = [(Vec::new(), Duration::ZERO), (Vec::new(), Duration::ZERO)];
    for which in [0, 1, 1, 0] {
        let (these, took) = drive(half, concurrency, if which == 0 { &a } else { &b })?;
        runs[which].0.extend(these);
        runs[which].1 += took;
    }
    let [(a_latencies, a_wall), (b_latencies, b_wall)] = runs;
    Ok((
        summarise(a_name, a_latencies, a_wall),
        summarise(b_name, b_latencies, b_wall),
    ))
}

/// Route each call with `router` as a task.
fn harness_mode(
    router: Router,
    scheme: PreparedScheme,
    runtime: Arc<tokio::runtime::Runtime>,
) -> Mode {
    Mode::Tasks(
        Arc::new(move |n| {
            let (router, scheme) = (router.clone(), scheme.clone());
            Box::pin(async move { router.route(&scheme, &call(n)).await.is_routed() })
        }),
        runtime,
    )
}

/// The plugin's routing loop natively, over a pooled hyper client.
struct Native {
    client: NativeClient,
    runtime: tokio::runtime::Handle,
}

impl Transport for Native {
    fn now(&mut self) -> Duration {
        static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed()
    }
    fn unix_time(&mut self) -> Duration {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
    }
    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }
    fn send(
        &mut self,
        endpoint: &Endpoint,
        request: callroute_plugin::request::Request,
        time: callroute_plugin::routing::AttemptTime,
    ) -> Result<RawAnswer, RouteError> {
        let timeout = time.timeout;
        let mut builder = http::Request::builder()
            .method(request.method.as_str())
            .uri(request.url(endpoint));
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        let request = builder
            .body(Full::new(bytes::Bytes::from(request.body)))
            .map_err(|e| RouteError::Config(e.to_string()))?;
        let client = self.client.clone();
        self.runtime.block_on(async move {
            let exchange = async {
                let response = client
                    .request(request)
                    .await
                    .map_err(|e| RouteError::Transport(e.to_string()))?;
                let status = response.status().as_u16();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| RouteError::Transport(e.to_string()))?;
                Ok(RawAnswer {
                    status,
                    body: body.to_bytes().to_vec(),
                })
            };
            tokio::time::timeout(timeout, exchange)
                .await
                .map_err(|_| RouteError::Timeout("slow".into()))?
        })
    }
}

type NativeClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<bytes::Bytes>,
>;

/// What the benchmark's CRM answers.
const ANSWER: &[u8] = b"380123456789";

/// The bearer token of the "every per-call feature on" row.
const BENCH_TOKEN: &str = "bench-token-0123456789abcdef";

/// A mode routing calls with the plugin's logic compiled natively, over `client`.
fn native_mode(
    pairs: Vec<(String, String)>,
    client: NativeClient,
    runtime: tokio::runtime::Handle,
) -> Mode {
    Mode::Threads(Arc::new(move |n| {
        let mut transport = Native {
            client: client.clone(),
            runtime: runtime.clone(),
        };
        callroute_plugin::route(pairs.iter().map(|(k, v)| (k, v)), &call(n), &mut transport).is_ok()
    }))
}

fn call(n: usize) -> Call {
    Call {
        call_id: n.to_string(),
        // A caller per call, as in real traffic (each one remembered with `--remember-secs`).
        caller: format!("+38050{:07}", n % 10_000_000),
        callee: "380441234567".into(),
        vars: vec![("uuid".into(), "842d921d-5334-4eca-812d-9a478dc8c884".into())],
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Route over HTTP as a call platform does: `GET` with `Accept: text/plain`, over keep-alive
/// connections (Kamailio's `http_client` and FreeSWITCH's `curl` reuse theirs).
fn over_http(
    addr: std::net::SocketAddr,
    path_of: fn(usize) -> String,
    runtime: Arc<tokio::runtime::Runtime>,
) -> Mode {
    over_http_with(addr, path_of, None, runtime)
}

/// [`over_http`], each request presenting `token` as a bearer token.
fn over_http_with(
    addr: std::net::SocketAddr,
    path_of: fn(usize) -> String,
    token: Option<&'static str>,
    runtime: Arc<tokio::runtime::Runtime>,
) -> Mode {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    Mode::Tasks(
        Arc::new(move |n| {
            let client = client.clone();
            let mut request = http::Request::get(format!("http://{addr}{}", path_of(n)))
                .header(http::header::ACCEPT, "text/plain");
            if let Some(token) = token {
                request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let request = request.body(Full::default());
            Box::pin(async move {
                let Ok(request) = request else { return false };
                let Ok(response) = client.request(request).await else {
                    return false;
                };
                let ok = response.status() == http::StatusCode::OK;
                let body = response.into_body().collect().await;
                ok && body.is_ok_and(|b| b.to_bytes() == ANSWER)
            })
        }),
        runtime,
    )
}

fn wait_for_port(addr: std::net::SocketAddr) -> bool {
    (0..200).any(|_| {
        let up = std::net::TcpStream::connect(addr).is_ok();
        if !up {
            std::thread::sleep(Duration::from_millis(50));
        }
        up
    })
}

/// Run the benchmark.
pub fn run(args: Vec<String>) -> Result<(), String> {
    let mut calls = 5000;
    let mut concurrency = 64;
    // With `--remember-secs N`, every routed call is remembered (the cost of `remember_secs`).
    let mut remember_secs = None;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut callroute = root.join("target/release/callroute");
    // `--only sandbox --seconds N`: the sandbox alone, for N seconds, nothing else (a profile of
    // it is not drowned by Cranelift compiling or by the other modes).
    let mut only = None;
    let mut seconds = 10;
    // `--at-least R`: fail when `callroute serve` / `wasmtime serve` falls below R.
    let mut at_least = None;
    // `--plugin PATH` (with `--only sandbox`): another build of the component, to compare
    // builds of the guest (its optimisation level, its allocator) without rebuilding the host.
    let mut plugin = None;
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--calls" => calls = value.parse().map_err(|_| format!("--calls {value}"))?,
            "--concurrency" => {
                concurrency = value
                    .parse()
                    .map_err(|_| format!("--concurrency {value}"))?
            }
            "--callroute" => callroute = value.into(),
            "--only" if value == "sandbox" => only = Some(value),
            "--plugin" => plugin = Some(PathBuf::from(value)),
            "--seconds" => seconds = value.parse().map_err(|_| format!("--seconds {value}"))?,
            "--at-least" => {
                at_least = Some(
                    value
                        .parse::<f64>()
                        .map_err(|_| format!("--at-least {value}"))?,
                )
            }
            "--remember-secs" => {
                remember_secs = Some(
                    value
                        .parse::<u32>()
                        .map_err(|_| format!("--remember-secs {value}"))?,
                )
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if only.is_some() {
        return sandbox_only(&root, plugin.as_deref(), Duration::from_secs(seconds));
    }
    let crm = TestCrm::start(|_| CrmReply::html(std::str::from_utf8(ANSWER).unwrap()))
        .map_err(|e| e.to_string())?;
    let url = crm.url("/route");
    let mut pairs: Vec<(String, String)> = vec![
        ("url".into(), url.clone()),
        ("method".into(), "GET".into()),
        ("params.call_id".into(), "{call_id}".into()),
        ("params.caller".into(), "{caller}".into()),
    ];
    if let Some(secs) = remember_secs {
        pairs.push(("remember_secs".into(), secs.to_string()));
    }
    println!(
        "bench: {calls} calls at concurrency {concurrency} per mode, one local CRM on {}",
        crm.addr()
    );
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?,
    );
    let mut rows = Vec::new();

    // (a) native, and (a') the same without connection reuse, as reference hosts send
    // (`wasmtime serve`'s default sender opens a connection per request): together they split
    // the harness's cost into connection handling and the sandbox itself.
    let pooled = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<bytes::Bytes>>();
    let fresh = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http::<Full<bytes::Bytes>>();
    for (name, client) in [
        ("native (plugin logic, pooled client)", pooled),
        ("native, new connection per call", fresh),
    ] {
        let mode = native_mode(pairs.clone(), client, runtime.handle().clone());
        rows.push(measure(name, calls, concurrency, mode)?);
    }

    // (b) harness library
    let router = Router::embedded(RouterConfig {
        allow_private_network: true,
        ..RouterConfig::default()
    })
    .map_err(|e| e.to_string())?;
    let scheme = router.prepare(pairs.clone());
    rows.push(measure(
        "harness (library, sandbox per call)",
        calls,
        concurrency,
        harness_mode(router, scheme, runtime.clone()),
    )?);

    // The sandbox alone, one call at a time on a single-threaded runtime (so no thread
    // hand-offs are counted), against the plugin's logic natively.
    let in_hand = pairs.clone();
    let native_alone = measure(
        "native logic alone (answer in hand)",
        calls,
        1,
        Mode::Threads(Arc::new(move |n| {
            let mut transport = InHand {
                inspect: |_: &Endpoint, _: &callroute_plugin::request::Request| {},
                answer: Ok(RawAnswer {
                    status: 200,
                    body: ANSWER.to_vec(),
                }),
            };
            callroute_plugin::route(
                in_hand.iter().map(|(k, v)| (k, v)),
                &call(n),
                &mut transport,
            )
            .is_ok()
        })),
    )?;
    let canned = Router::embedded(RouterConfig {
        allow_private_network: true,
        canned_answer: Some(CannedAnswer {
            status: 200,
            body: bytes::Bytes::from_static(ANSWER),
        }),
        ..RouterConfig::default()
    })
    .map_err(|e| e.to_string())?;
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let canned_scheme = canned.prepare(pairs.clone());
    let sandbox_alone = measure(
        "sandbox alone (answer in hand)",
        calls,
        1,
        harness_mode(canned, canned_scheme, Arc::new(single)),
    )?;

    // (b') callroute serve
    let dir = std::env::temp_dir().join(format!("callroute-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let schemes = dir.join("schemes.toml");
    let remember = remember_secs.map_or(String::new(), |secs| format!("remember_secs = {secs}\n"));
    std::fs::write(&schemes, format!("name = \"bench\"\nurl = \"{url}\"\nmethod = \"GET\"\n{remember}[params]\ncall_id = \"{{call_id}}\"\ncaller = \"{{caller}}\"\n"))
        .map_err(|e| e.to_string())?;
    if callroute.exists() {
        let (_server, addr) = crate::process::start_serve(&callroute, &schemes)?;
        // Every per-call feature on: a bearer token, the exchange log and breakers (always on),
        // the memory in process, a signing secret and an allowlist.
        let featured = dir.join("featured.toml");
        std::fs::write(
            &featured,
            format!(
                "name = \"bench\"\nurl = \"{url}\"\nmethod = \"GET\"\napi_tokens = \"{BENCH_TOKEN}\"\n\
                 remember_secs = 600\nsigning_secret = \"bench-signing-secret-0123\"\n\
                 allowed_prefixes = \"380\"\n\
                 [params]\ncall_id = \"{{call_id}}\"\ncaller = \"{{caller}}\"\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let (_featured, featured_addr) = crate::process::start_serve(&callroute, &featured)?;
        let path = |n| format!("/v1/route/bench?call_id={n}&caller=%2B380501112233");
        let (off, on) = measure_side_by_side(
            (
                "callroute serve (HTTP)",
                over_http(addr, path, runtime.clone()),
            ),
            (
                "callroute serve, every per-call feature on",
                over_http_with(featured_addr, path, Some(BENCH_TOKEN), runtime.clone()),
            ),
            calls,
            concurrency,
        )?;
        rows.push(off);
        rows.push(on);
    } else {
        println!(
            "note: {} not built; skipping callroute serve (cargo build --release -p callroute-host)",
            callroute.display()
        );
    }

    // (c) wasmtime serve
    let artifact = dir.join("router.wasm");
    std::fs::write(&artifact, callroute_host::EMBEDDED_PLUGIN).map_err(|e| e.to_string())?;
    let wasmtime = Command::new("wasmtime")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success());
    match wasmtime {
        Some(version) => {
            let addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let child = Command::new("wasmtime")
                .args(["serve", "-Scli", "-Sconfig"])
                .arg(format!("-Sconfig-var=url={url}"))
                .args([
                    "-Sconfig-var=method=GET",
                    "-Sconfig-var=params.call_id={call_id}",
                    "-Sconfig-var=params.caller={caller}",
                ])
                .arg(format!("--addr={addr}"))
                .arg(&artifact)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())?;
            let _server = crate::process::Process(child);
            if !wait_for_port(addr) {
                return Err("wasmtime serve did not start".into());
            }
            println!(
                "wasmtime: {}",
                String::from_utf8_lossy(&version.stdout).trim()
            );
            rows.push(measure(
                "wasmtime serve (HTTP)",
                calls,
                concurrency,
                over_http(
                    addr,
                    |n| format!("/?call_id={n}&caller=%2B380501112233"),
                    runtime.clone(),
                ),
            )?);
        }
        None => println!(
            "note: no `wasmtime` on PATH; skipping wasmtime serve (cargo install wasmtime-cli --version 48.0.8 --locked)"
        ),
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!();
    println!("| mode | calls/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.3} | {:.3} |",
            r.name, r.calls_per_sec, r.p50_ms, r.p99_ms
        );
    }
    println!();
    println!("one call at a time, the CRM's answer in hand:");
    println!("| mode | calls/s | p50 µs | p99 µs |");
    println!("|---|---:|---:|---:|");
    for r in [&native_alone, &sandbox_alone] {
        println!(
            "| {} | {:.0} | {:.1} | {:.1} |",
            r.name,
            r.calls_per_sec,
            r.p50_ms * 1000.0,
            r.p99_ms * 1000.0
        );
    }
    let find = |prefix: &str| rows.iter().find(|r| r.name.starts_with(prefix));
    println!();
    if let (Some(a), Some(b)) = (find("native (plugin"), find("harness")) {
        println!(
            "harness / native: throughput {:.2}x, p50 overhead {:+.2} ms",
            b.calls_per_sec / a.calls_per_sec,
            b.p50_ms - a.p50_ms
        );
    }
    println!(
        "sandbox alone: p50 {:.1} µs per call ({:.1} µs more than the plugin logic natively)",
        sandbox_alone.p50_ms * 1000.0,
        (sandbox_alone.p50_ms - native_alone.p50_ms) * 1000.0
    );
    if let (Some(b), Some(f)) = (
        find("callroute serve (HTTP)"),
        find("callroute serve, every"),
    ) {
        println!(
            "callroute serve, every per-call feature on / all off: throughput {:.2}x",
            f.calls_per_sec / b.calls_per_sec
        );
    }
    if let (Some(b), Some(c)) = (find("callroute serve (HTTP)"), find("wasmtime serve")) {
        let ratio = b.calls_per_sec / c.calls_per_sec;
        println!("callroute serve / wasmtime serve: throughput {ratio:.2}x");
        if let Some(floor) = at_least
            && ratio < floor
        {
            return Err(format!(
                "callroute serve / wasmtime serve is {ratio:.2}x, below the {floor:.2}x this \
                 build must hold (--at-least)"
            ));
        }
    }
    Ok(())
}

/// The sandbox alone for `seconds`, one call at a time on a single-threaded runtime, the CRM's
/// answer in hand: its latencies, and what the pool keeps resident. The component comes from
/// the compile cache (`target/bench-cache`), so a profile of this run (`perf record -D …`) shows
/// the calls, not Cranelift.
fn sandbox_only(
    root: &std::path::Path,
    plugin: Option<&std::path::Path>,
    seconds: Duration,
) -> Result<(), String> {
    let wasm = match plugin {
        Some(path) => std::borrow::Cow::Owned(
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        ),
        None => std::borrow::Cow::Borrowed(callroute_host::EMBEDDED_PLUGIN),
    };
    let router = Router::new(
        &wasm,
        RouterConfig {
            allow_private_network: true,
            canned_answer: Some(CannedAnswer {
                status: 200,
                body: bytes::Bytes::from_static(ANSWER),
            }),
            cache_dir: Some(root.join("target/bench-cache")),
            ..RouterConfig::default()
        },
    )
    .map_err(|e| e.to_string())?;
    // Answered by the host after the guard: nothing listens there, nothing is asked.
    let scheme = router.prepare(vec![
        ("url".into(), "http://127.0.0.1:9/route".into()),
        ("method".into(), "GET".into()),
        ("params.call_id".into(), "{call_id}".into()),
        ("params.caller".into(), "{caller}".into()),
    ]);
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mode = harness_mode(router.clone(), scheme, Arc::new(single));
    drive(2000, 1, &mode)?;
    eprintln!(
        "bench: sandbox alone, warm; {} s of calls follow (pid {})",
        seconds.as_secs(),
        std::process::id()
    );
    let start = Instant::now();
    let mut latencies = Vec::new();
    while start.elapsed() < seconds {
        latencies.extend(drive(1000, 1, &mode)?.0);
    }
    let figures = summarise("sandbox alone (answer in hand)", latencies, start.elapsed());
    println!("| mode | calls/s | p50 µs | p99 µs |");
    println!("|---|---:|---:|---:|");
    println!(
        "| {} | {:.0} | {:.1} | {:.1} |",
        figures.name,
        figures.calls_per_sec,
        figures.p50_ms * 1000.0,
        figures.p99_ms * 1000.0
    );
    Ok(())
}
