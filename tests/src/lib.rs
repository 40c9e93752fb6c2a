//! Support for the end-to-end suites in `tests/tests/`: the real routing component in the real
//! harness, compiled once per test process, and the local CRM from `callroute_host::crm`.

#![deny(missing_docs)]

pub mod client;

use callroute_host::crm::ServerThread;
use callroute_host::{Call, PreparedScheme, RouteReport, Router, RouterConfig};
use std::sync::OnceLock;

pub use callroute_host::crm::{CrmReply, CrmRequest, TestCrm, refused_url};
pub use callroute_plugin::destination::Target;
pub use callroute_plugin::error::ErrorKind;

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

/// The embedded routing component under the policy tests need for a CRM on 127.0.0.1.
/// Compiled once per process: Cranelift is the slow part of a test run.
pub fn router() -> Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER
        .get_or_init(|| {
            Router::embedded(RouterConfig {
                allow_private_network: true,
                ..RouterConfig::default()
            })
            .expect("the embedded component loads")
        })
        .clone()
}

/// The same component under the default policy: private and loopback addresses refused.
pub fn strict_router() -> Router {
    router().with_config(RouterConfig::default())
}

/// The hostile test guest (`tests/hostile-guest`), allowed onto loopback.
pub fn hostile_router() -> Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER
        .get_or_init(|| {
            let wasm = std::fs::read(HOSTILE_GUEST_WASM).expect("the hostile guest was built");
            Router::new(
                &wasm,
                RouterConfig {
                    allow_private_network: true,
                    ..RouterConfig::default()
                },
            )
            .expect("the hostile guest loads")
        })
        .clone()
}

/// Flat scheme pairs from string literals.
pub fn scheme(pairs: &[(&str, &str)]) -> PreparedScheme {
    PreparedScheme::new(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// The call from Ringostat's example request.
pub fn seed_call() -> Call {
    callroute_host::demo::sample_call()
}

/// Route `call` with `pairs` through the embedded component (private network allowed).
pub async fn route(pairs: &[(&str, &str)], call: &Call) -> RouteReport {
    router().route(&scheme(pairs), call).await
}

/// The destination of a call the CRM routed; fails the test otherwise.
pub fn routed(report: &RouteReport) -> (Target, u32) {
    match &report.result {
        Ok(r) if r.fallback_cause.is_none() => {
            (r.first().target.clone(), r.first().ring_timeout_secs)
        }
        Ok(r) => panic!(
            "expected a routed call, got the fallback because {:?}",
            r.fallback_cause
        ),
        Err(e) => panic!("expected a routed call, got {e}"),
    }
}

/// The routing of a call that got the scheme's fallback; fails the test otherwise.
pub fn fell_back(report: &RouteReport) -> &callroute_plugin::routing::Routing {
    match &report.result {
        Ok(r) if r.fallback_cause.is_some() => r,
        Ok(r) => panic!("expected the fallback, got {:?}", r.destinations),
        Err(e) => panic!("expected the fallback, got {e}"),
    }
}

/// Assert that a call was answered within `max` (its deadline plus what the test allows).
pub fn assert_within(report: &RouteReport, max: std::time::Duration) {
    assert!(
        report.elapsed <= max,
        "the call took {:?}, more than {max:?}",
        report.elapsed
    );
}

/// The error of a failed call; fails the test if the call was routed.
pub fn failed(report: &RouteReport) -> &callroute_host::RouteFailure {
    match &report.result {
        Ok(d) => panic!("expected a failure, got {d:?}"),
        Err(e) => e,
    }
}

/// `callroute serve`'s service running in-process on a free port of 127.0.0.1, on its own
/// thread and runtime; dropping it shuts the server down and waits for it.
pub struct Served {
    addr: std::net::SocketAddr,
    _server: ServerThread,
}

impl Served {
    /// Serve the schemes of `toml` with `router`.
    pub fn start(router: Router, toml: &str) -> Served {
        Served::start_with(router, toml, callroute_host::serve::ServeLimits::default())
    }

    /// Serve the schemes of `toml` with `router`, under `limits`.
    pub fn start_with(
        router: Router,
        toml: &str,
        limits: callroute_host::serve::ServeLimits,
    ) -> Served {
        let file = callroute_host::scheme_file::SchemeFile::parse(toml, "test.toml").unwrap();
        let service = callroute_host::serve::Service::new(router, &file)
            .unwrap()
            .with_limits(limits);
        Served::start_service(service)
    }

    /// Serve the schemes of `toml` with `router`, taking outcome reports into an outbox in
    /// `dir` ([`quick_outbox`]).
    pub fn start_with_outbox(router: Router, toml: &str, dir: &std::path::Path) -> Served {
        let file = callroute_host::scheme_file::SchemeFile::parse(toml, "test.toml").unwrap();
        let service = callroute_host::serve::Service::new(router, &file)
            .unwrap()
            .with_outbox(quick_outbox(dir));
        Served::start_service(service)
    }

    /// Serve `service`.
    pub fn start_service(service: callroute_host::serve::Service) -> Served {
        Served::start_shared(std::sync::Arc::new(service))
    }

    /// Serve `service`, which the test keeps too (to reload it).
    pub fn start_shared(service: std::sync::Arc<callroute_host::serve::Service>) -> Served {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let server = ServerThread::spawn("served", runtime, move |stop| {
            callroute_host::serve::run(listener, service, async {
                let _ = stop.await;
            })
        })
        .unwrap();
        Served {
            addr,
            _server: server,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// One request to the server.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> crate::client::Response {
        crate::client::request(self.addr, method, path, headers, body.as_bytes())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }
}

/// An outbox in `dir` that retries soon: after 50 ms, then at most every 200 ms.
pub fn quick_outbox(dir: &std::path::Path) -> callroute_host::outbox::Outbox {
    let settings = callroute_host::outbox::OutboxSettings {
        min_backoff: std::time::Duration::from_millis(50),
        max_backoff: std::time::Duration::from_millis(200),
        ..Default::default()
    };
    callroute_host::outbox::Outbox::open(dir, settings).unwrap()
}

/// Wait until `done`, failing the test, naming `what`, after `limit`.
pub fn until(what: &str, limit: std::time::Duration, done: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "never happened: {what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A directory of its own under the system's temporary one, removed on drop.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// A new, empty directory; `name` says whose it is.
    pub fn new(name: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("callroute-test-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A misbehaving CRM at the TCP level: every connection is handed to `behaviour` on its own
/// thread, which may say anything, stall, trickle or reset. Stops accepting on drop.
pub struct RawCrm {
    addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RawCrm {
    /// Start on a free port of 127.0.0.1.
    pub fn start(behaviour: fn(std::net::TcpStream)) -> RawCrm {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    std::thread::spawn(move || behaviour(stream));
                }
            }
        });
        RawCrm {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Read the request head (up to the blank line), so the answer comes after it.
    pub fn read_request(stream: &mut std::net::TcpStream) {
        use std::io::Read;
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while !seen.ends_with(b"\r\n\r\n") && seen.len() < 65536 {
            match stream.read(&mut byte) {
                Ok(1) => seen.push(byte[0]),
                _ => return,
            }
        }
    }

    /// Read one whole request, its head and the body its `Content-Length` announces, so that
    /// the next request on a kept-alive connection can be read after it. Returns the head as
    /// text (request line first), or `None` when the connection ends or fails first.
    pub fn read_full_request(stream: &mut std::net::TcpStream) -> Option<String> {
        use std::io::Read;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() >= 65536 {
                return None;
            }
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return None,
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let length = head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if length > 1024 * 1024 {
            return None;
        }
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).ok()?;
        Some(head)
    }
}

impl Drop for RawCrm {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An HTTPS CRM on 127.0.0.1 with the test certificate in `tests/fixtures/tls/` (for
/// `localhost` and `127.0.0.1`, signed by the test CA `ca.pem`), or another one of those
/// fixtures ([`TlsCrm::start_with`]). It answers every request with `body` as plain text;
/// stops on drop.
pub struct TlsCrm {
    addr: std::net::SocketAddr,
    _server: ServerThread,
}

/// The test CA's certificate, as `--ca-cert` would load it.
pub fn test_ca() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    callroute_host::outbound::load_ca_certs(&fixture("ca.pem")).unwrap()
}

/// The second test CA (`ca2.pem`), which signs the fixtures that fail verification for one
/// reason each: `wrong-name.pem` (for `other.example` only) and `expired.pem` (for
/// `localhost` and `127.0.0.1`, valid only during 2020).
pub fn second_test_ca() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    callroute_host::outbound::load_ca_certs(&fixture("ca2.pem")).unwrap()
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/tls")
        .join(name)
}

impl TlsCrm {
    /// Start it.
    pub fn start(body: &'static str) -> TlsCrm {
        TlsCrm::start_with("crm.pem", "crm.key", body)
    }

    /// Start it with another certificate and key of `tests/fixtures/tls/` (file names).
    pub fn start_with(cert: &str, key: &str, body: &'static str) -> TlsCrm {
        TlsCrm::serve(cert, key, body, false)
    }

    /// Start one that keeps each connection alive after its first answer, and closes it
    /// (TLS close_notify, then FIN) without answering when a second request comes: every
    /// kept-alive connection fails its next request before any byte of an answer.
    pub fn start_closing_when_reused(body: &'static str) -> TlsCrm {
        TlsCrm::serve("crm.pem", "crm.key", body, true)
    }

    fn serve(cert: &str, key: &str, body: &'static str, close_when_reused: bool) -> TlsCrm {
        use rustls::pki_types::pem::PemObject;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(fixture(cert))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(fixture(key)).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let server = ServerThread::spawn("tls-crm", runtime, move |mut stop| {
            async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut stop => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let acceptor = acceptor.clone();
                            tokio::spawn(async move {
                                // A failed handshake (an unknown CA on the client side) just ends.
                                let Ok(mut tls) = acceptor.accept(stream).await else { return };
                                let mut head = Vec::new();
                                let mut byte = [0u8; 1];
                                while !head.ends_with(b"\r\n\r\n") {
                                    if tls.read(&mut byte).await.unwrap_or(0) == 0 { return; }
                                    head.push(byte[0]);
                                }
                                let answer = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                                let _ = tls.write_all(answer.as_bytes()).await;
                                if close_when_reused {
                                    // Wait for the next request on this connection, then hang up.
                                    let _ = tls.read(&mut byte).await;
                                }
                                let _ = tls.shutdown().await;
                            });
                        }
                    }
                }
            }
        })
        .unwrap();
        TlsCrm {
            addr,
            _server: server,
        }
    }

    /// `https://{host}:PORT/`.
    pub fn url(&self, host: &str) -> String {
        format!("https://{host}:{}/", self.addr.port())
    }
}

/// A Redis server (Debian's `redis-server`) on a free port of 127.0.0.1, persisting nothing;
/// killed on drop. `.ci/run` installs it when missing; without it the test fails, saying so.
pub struct RedisServer {
    child: Option<std::process::Child>,
    port: u16,
}

impl RedisServer {
    /// Start one and wait until it accepts connections.
    pub fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = RedisServer { child: None, port };
        server.restart();
        server
    }

    /// Its URL, for `--memory-store`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Stop it (and wait until it is gone): the store is down.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): install Debian's redis-server \
                     (apt-get install redis-server); .ci/run does"
                )
            });
        self.child = Some(child);
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "redis-server did not listen on {} within 10 s",
                self.port
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
