//! A small CRM on 127.0.0.1 for the demo and the tests: a real HTTP/1.1 server that records
//! what it received and answers what its handler says.
//!
//! It ships in the library because `callroute demo` runs it (the demo needs a CRM to ask);
//! the tests, the benchmark and the load test use the same one.
//!
//! It runs on its own thread and runtime, so it works the same from synchronous tests, async
//! tests and the CLI; dropping the [`TestCrm`] stops it and waits for its thread.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// A request as the CRM received it.
#[derive(Debug, Clone)]
pub struct CrmRequest {
    /// The method (`GET`, `POST`, …).
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The request headers.
    pub headers: http::HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl CrmRequest {
    /// The query string's pairs, decoded.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        decode_pairs(self.query.as_deref().unwrap_or("").as_bytes())
    }

    /// The body's `application/x-www-form-urlencoded` pairs, decoded.
    pub fn form_pairs(&self) -> Vec<(String, String)> {
        decode_pairs(&self.body)
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `METHOD /path?query` and the body, on one line (for the demo's table).
    pub fn summary(&self) -> String {
        let query = self
            .query
            .as_deref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let body = String::from_utf8_lossy(&self.body);
        format!("{} {}{} {}", self.method, self.path, query, body)
            .trim_end()
            .to_owned()
    }
}

fn decode_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes).into_owned().collect()
}

/// `http://127.0.0.1:PORT{path}` on a port nothing listens on: a CRM that is down (connection
/// refused). The port was bound a moment ago and released again, so it is free.
pub fn refused_url(path: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    let addr = listener
        .local_addr()
        .expect("a bound socket has an address");
    format!("http://{addr}{path}")
}

/// What the CRM answers.
#[derive(Debug, Clone)]
pub struct CrmReply {
    /// The status code.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl CrmReply {
    /// An answer with this status, body and content type.
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        CrmReply {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// `200` with a JSON body.
    pub fn json(value: serde_json::Value) -> Self {
        CrmReply::new(200, "application/json", value.to_string())
    }

    /// `200` with a plain-text body sent as `text/html`, as a PHP script answers.
    pub fn html(text: &str) -> Self {
        CrmReply::new(200, "text/html; charset=UTF-8", text)
    }

    /// A status with an empty body.
    pub fn status(status: u16) -> Self {
        CrmReply::new(status, "text/plain", "")
    }

    /// The same answer after `delay`.
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// The body as text (for the demo's table).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

type Handler = dyn Fn(&CrmRequest) -> CrmReply + Send + Sync;

/// A running local CRM; stops when dropped.
pub struct TestCrm {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<CrmRequest>>>,
    _server: ServerThread,
}

/// A local server on its own thread and runtime, running until this is dropped: the drop tells
/// it to stop and waits for its thread. The CRM here and the tests' servers are each one.
pub struct ServerThread {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    /// Run `serve(stop)` on `runtime` on a thread called `name`; `stop` resolves when the
    /// returned handle is dropped, and the server should then finish.
    pub fn spawn<F, Fut>(
        name: &str,
        runtime: tokio::runtime::Runtime,
        serve: F,
    ) -> std::io::Result<ServerThread>
    where
        F: FnOnce(oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let (shutdown, stop) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || runtime.block_on(serve(stop)))?;
        Ok(ServerThread {
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl TestCrm {
    /// Start a CRM on a free port of 127.0.0.1 that answers every request with `handler`.
    pub fn start(
        handler: impl Fn(&CrmRequest) -> CrmReply + Send + Sync + 'static,
    ) -> std::io::Result<TestCrm> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = requests.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let server = ServerThread::spawn(
            &format!("test-crm-{}", addr.port()),
            runtime,
            move |stopped| serve(listener, handler, log, stopped),
        )?;
        Ok(TestCrm {
            addr,
            requests,
            _server: server,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<CrmRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The one request received; panics (a test failure) when there was not exactly one.
    pub fn single_request(&self) -> CrmRequest {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "expected one request, got {requests:#?}");
        requests.into_iter().next().unwrap()
    }
}

async fn serve(
    listener: std::net::TcpListener,
    handler: Arc<Handler>,
    log: Arc<Mutex<Vec<CrmRequest>>>,
    mut stopped: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let handler = handler.clone();
                let log = log.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| {
                        let handler = handler.clone();
                        let log = log.clone();
                        async move { Ok::<_, Infallible>(answer(req, &*handler, &log).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
    // Dropping the set aborts connections still open (a CRM that "never answers").
    connections.abort_all();
}

async fn answer(
    req: http::Request<hyper::body::Incoming>,
    handler: &Handler,
    log: &Mutex<Vec<CrmRequest>>,
) -> http::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let request = CrmRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    let reply = handler(&request);
    log.lock().unwrap_or_else(|e| e.into_inner()).push(request);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = http::Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(name, value);
    }
    response
        .body(Full::new(Bytes::from(reply.body)))
        .unwrap_or_else(|_| http::Response::new(Full::new(Bytes::new())))
}
