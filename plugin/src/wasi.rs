//! The WASI 0.2 glue (wasm32 only): the `router` and `wasi:http/incoming-handler` exports,
//! the scheme from `wasi:config`, and the webhook over `wasi:http`: the
//! [`Transport`](crate::routing::Transport) the routing loop runs over.
//!
//! Each attempt's deadline is enforced here with the monotonic clock: every wait polls the
//! response alongside a timer, and dropping the response future at the deadline cancels the
//! exchange on the host. Hosts enforce the call's deadline as well.
//!
//! Every call into the host costs about a microsecond (the component model's lifting and
//! lowering, the resource table), and a webhook takes a few dozen of them, so the glue makes
//! no call it can do without: no body stream for an empty body, a wait before asking whether
//! the answer is in. A request gets an option only when its time is a share of what is left (a
//! secondary CRM still to be asked): its first-byte timeout, which tells the host when this
//! component will give up on the answer, so the host's circuit breaker counts that give-up as
//! the CRM's failure (otherwise the host knows only the call's deadline).

use crate::answer::{MAX_ANSWER_BYTES, RawAnswer};
use crate::call::{Call, MAX_CALL_BODY, RequestError};
use crate::destination::{Destination, RingStrategy, Target};
use crate::error::{Failure, RouteError};
use crate::outcome::{self, HttpAnswer};
use crate::report::{self, CallStatus, Delivery, MAX_OUTCOME_BODY, Outcome};
use crate::request::Request;
use crate::routing::{AttemptTime, Routing, Transport};
use crate::scheme::{self, Endpoint};
use std::time::Duration;

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
    generate_all,
});

use exports::callroute::router::router as wit;
use wasi::clocks::monotonic_clock;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingRequest, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, RequestOptions, ResponseOutparam, Scheme as UriScheme,
};
use wasi::io::poll;
use wasi::io::streams::{OutputStream, StreamError};

struct Plugin;

export!(Plugin);

impl wit::Guest for Plugin {
    fn route(call: wit::Call) -> Result<wit::Routing, wit::RouteError> {
        let call = Call {
            call_id: call.call_id,
            caller: call.caller,
            callee: call.callee,
            vars: call.vars,
        };
        route_call(&call).map(routing_to_wit).map_err(error_to_wit)
    }

    fn report(outcome: wit::Outcome, delivery: wit::Delivery) -> Result<(), wit::RouteError> {
        let delivery = Delivery {
            report_id: delivery.report_id,
            attempt: delivery.attempt,
        };
        report_outcome(&outcome_from_wit(outcome), &delivery).map_err(error_to_wit)
    }
}

impl exports::wasi::http::incoming_handler::Guest for Plugin {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let start = monotonic_clock::now();
        let header = |name: &str| -> Vec<String> {
            request
                .headers()
                .get(name)
                .into_iter()
                .filter_map(|v| String::from_utf8(v).ok())
                .collect()
        };
        let accept = header("accept");
        let sip_domain = header(outcome::SIP_DOMAIN_HEADER);
        let format = outcome::requested_format(
            accept.iter().map(String::as_str),
            sip_domain.first().map(String::as_str),
        );
        let method = match request.method() {
            Method::Get => "GET",
            Method::Post => "POST",
            _ => "OTHER",
        };
        let path = request.path_with_query().unwrap_or_default();
        let (path, query) = match path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (path.as_str(), None),
        };
        if method == "POST" && path.ends_with("/outcome") {
            let answer = match read_request_body(request, method, MAX_OUTCOME_BODY) {
                Ok(body) => report_once(&body),
                Err(e) => outcome::http_rejection(e.status, "bad-request", &e.message),
            };
            return send_answer(answer, response_out);
        }
        let call = format.and_then(|format| {
            read_request_body(request, method, MAX_CALL_BODY)
                .and_then(|body| Call::from_http(method, query, &body))
                .map(|call| (call, format))
        });
        let answer = match call {
            Err(e) => outcome::http_rejection(e.status, "bad-request", &e.message),
            Ok((call, format)) => {
                let result = route_call(&call).map_err(Failure::from);
                let elapsed_ms = monotonic_clock::now().saturating_sub(start) / 1_000_000;
                outcome::http_answer(&result, elapsed_ms, &format)
            }
        };
        send_answer(answer, response_out);
    }
}

/// Route a call with the scheme in `wasi:config`: what both exports do.
fn route_call(call: &Call) -> Result<Routing, RouteError> {
    let pairs = wasi::config::store::get_all().map_err(|e| {
        RouteError::Config(format!("cannot read the scheme from wasi:config: {e:?}"))
    })?;
    crate::route(pairs, call, &mut Wasi)
}

/// Report an outcome with the scheme in `wasi:config`: what the `report` export and the HTTP
/// handler do.
fn report_outcome(outcome: &Outcome, delivery: &Delivery) -> Result<(), RouteError> {
    let pairs = wasi::config::store::get_all().map_err(|e| {
        RouteError::Config(format!("cannot read the scheme from wasi:config: {e:?}"))
    })?;
    report::report(pairs, outcome, delivery, &mut Wasi)
}

/// The HTTP handler's outcome report (`POST …/outcome`): sent once, with an id of its own, as
/// a host without an outbox can (the answer says `delivered`, or why not).
fn report_once(body: &[u8]) -> HttpAnswer {
    let outcome = match std::str::from_utf8(body)
        .map_err(|_| "the outcome body is not UTF-8".to_owned())
        .and_then(|text| Outcome::from_json(text).map_err(|e| e.to_string()))
    {
        Ok(outcome) => outcome,
        Err(message) => return outcome::http_rejection(400, "bad-request", &message),
    };
    let now = Wasi.unix_time();
    let delivery = Delivery {
        report_id: report::report_id(&outcome, now, &monotonic_clock::now().to_be_bytes()),
        attempt: 1,
    };
    match report_outcome(&outcome, &delivery) {
        Ok(()) => report::delivered_answer(&delivery.report_id),
        Err(error) => report::failed_answer(&error),
    }
}

/// The body of an incoming `POST`, at most `max` bytes (other methods: empty).
fn read_request_body(
    request: IncomingRequest,
    method: &str,
    max: usize,
) -> Result<Vec<u8>, RequestError> {
    let failed = |message: &str| RequestError {
        status: 400,
        message: message.to_owned(),
    };
    if method != "POST" {
        return Ok(Vec::new());
    }
    let incoming = request
        .consume()
        .map_err(|()| failed("the request body was already taken"))?;
    let mut body = Vec::new();
    {
        let stream = incoming
            .stream()
            .map_err(|()| failed("the request body was already taken"))?;
        loop {
            match stream.blocking_read((max + 1 - body.len()) as u64) {
                Ok(bytes) => {
                    body.extend_from_slice(&bytes);
                    if body.len() > max {
                        return Err(RequestError::over_limit(max));
                    }
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(_)) => {
                    return Err(failed("the request body could not be read"));
                }
            }
        }
    }
    drop(incoming);
    Ok(body)
}

/// Send the handler's answer.
fn send_answer(answer: HttpAnswer, out: ResponseOutparam) {
    let mut headers = vec![(
        "content-type".to_owned(),
        answer.content_type.as_bytes().to_vec(),
    )];
    headers.extend(
        answer
            .headers
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.into_bytes())),
    );
    let fields = Fields::from_list(&headers).unwrap_or_else(|_| Fields::new());
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(answer.status);
    let Ok(body) = response.body() else {
        ResponseOutparam::set(out, Ok(response));
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = body.write() {
        write_all(&stream, answer.body.as_bytes());
    }
    let _ = OutgoingBody::finish(body, None);
}

fn destination_to_wit(destination: Destination) -> wit::Destination {
    wit::Destination {
        target: match destination.target {
            Target::Phone(p) => wit::Target::Phone(p),
            Target::Sip(s) => wit::Target::Sip(s),
        },
        ring_timeout_secs: destination.ring_timeout_secs,
    }
}

fn routing_to_wit(routing: Routing) -> wit::Routing {
    wit::Routing {
        destinations: routing
            .destinations
            .into_iter()
            .map(destination_to_wit)
            .collect(),
        strategy: match routing.strategy {
            RingStrategy::Serial => wit::RingStrategy::Serial,
            RingStrategy::Parallel => wit::RingStrategy::Parallel,
        },
        refused: routing
            .refused
            .into_iter()
            .map(|r| wit::RefusedDestination {
                value: r.value,
                reason: r.reason,
            })
            .collect(),
        fallback_cause: routing
            .fallback_cause
            .map(|cause| error_to_wit(cause.into())),
        // The component always makes one (`crate::route`).
        decision: routing.decision.unwrap_or_default(),
    }
}

fn outcome_from_wit(outcome: wit::Outcome) -> Outcome {
    Outcome {
        call_id: outcome.call_id,
        status: match outcome.status {
            wit::CallStatus::Answered => CallStatus::Answered,
            wit::CallStatus::NoAnswer => CallStatus::NoAnswer,
            wit::CallStatus::Busy => CallStatus::Busy,
            wit::CallStatus::Failed => CallStatus::Failed,
            wit::CallStatus::Cancelled => CallStatus::Cancelled,
        },
        answered_by: outcome.answered_by,
        ring_secs: outcome.ring_secs,
        talk_secs: outcome.talk_secs,
        hangup_cause: outcome.hangup_cause,
        decision: outcome.decision,
        caller: outcome.caller,
        callee: outcome.callee,
        vars: outcome.vars,
    }
}

fn error_to_wit(error: RouteError) -> wit::RouteError {
    match error {
        RouteError::Config(m) => wit::RouteError::Config(m),
        RouteError::Denied(m) => wit::RouteError::Denied(m),
        RouteError::Timeout(m) => wit::RouteError::Timeout(m),
        RouteError::Transport(m) | RouteError::Unavailable(m) => wit::RouteError::Transport(m),
        RouteError::HttpStatus { status, message } => {
            wit::RouteError::HttpStatus(wit::HttpStatusError { status, message })
        }
        RouteError::BadResponse(m) => wit::RouteError::BadResponse(m),
        RouteError::NoDestination(m) => wit::RouteError::NoDestination(m),
    }
}

/// The routing loop's transport over WASI: the monotonic clock and `wasi:http`.
struct Wasi;

impl Transport for Wasi {
    fn now(&mut self) -> Duration {
        Duration::from_nanos(monotonic_clock::now())
    }

    fn unix_time(&mut self) -> Duration {
        let now = wasi::clocks::wall_clock::now();
        Duration::new(now.seconds, now.nanoseconds)
    }

    fn sleep(&mut self, duration: Duration) {
        monotonic_clock::subscribe_duration(duration.as_nanos() as u64).block();
    }

    fn send(
        &mut self,
        endpoint: &Endpoint,
        request: Request,
        time: AttemptTime,
    ) -> Result<RawAnswer, RouteError> {
        send(endpoint, request, time)
    }
}

/// Send the webhook over `wasi:http` and read the whole answer within `timeout`.
///
/// What happened is always the response future's to say: a failed body write only means the
/// host stopped taking the body, because it refused the request, could not reach the CRM, or
/// already has the CRM's answer (a CRM may answer a 401 or 413 before reading the body). So the
/// glue never reports the write's failure; it waits for the response or its error code.
fn send(endpoint: &Endpoint, request: Request, time: AttemptTime) -> Result<RawAnswer, RouteError> {
    let timeout = time.timeout;
    let timeout_ns = timeout.as_nanos() as u64;
    let url = endpoint.redacted();

    let headers: Vec<(String, Vec<u8>)> = request
        .headers
        .into_iter()
        .map(|(name, value)| (name, value.into_bytes()))
        .collect();
    let fields = Fields::from_list(&headers)
        .map_err(|e| RouteError::Config(format!("the host refused a request header: {e:?}")))?;
    let outgoing = OutgoingRequest::new(fields);
    let method = match request.method {
        scheme::Method::Get => Method::Get,
        scheme::Method::Post => Method::Post,
        scheme::Method::Put => Method::Put,
        scheme::Method::Delete => Method::Delete,
    };
    let refused =
        |what: &str| RouteError::Config(format!("the host refused the request {what} for {url}"));
    outgoing
        .set_method(&method)
        .map_err(|()| refused("method"))?;
    outgoing
        .set_scheme(Some(if endpoint.origin.tls {
            &UriScheme::Https
        } else {
            &UriScheme::Http
        }))
        .map_err(|()| refused("scheme"))?;
    outgoing
        .set_authority(Some(&endpoint.origin.authority()))
        .map_err(|()| refused("authority"))?;
    outgoing
        .set_path_with_query(Some(&request.path_and_query))
        .map_err(|()| refused("path"))?;
    let outgoing_body = outgoing.body().map_err(|()| refused("body"))?;

    // The attempt's share, for the host (see the module docs); all that is left needs no
    // telling, the host keeps the call's deadline.
    let options = time.shared.then(|| {
        let options = RequestOptions::new();
        let _ = options.set_first_byte_timeout(Some(timeout_ns));
        options
    });
    let future =
        outgoing_handler::handle(outgoing, options).map_err(|code| error_from_code(&code, &url))?;
    // Started after the host's bound, never before it: the host always sees the attempt run
    // out of time before this component drops it.
    let deadline = monotonic_clock::now().saturating_add(timeout_ns);
    // Whether the whole body went out does not matter here: see above.
    let _ = write_body(outgoing_body, &request.body);

    let timer = monotonic_clock::subscribe_instant(deadline);
    let response = {
        let ready = future.subscribe();
        loop {
            // Indices of what is ready: 0 the response, 1 the timer. An answer that arrives
            // with the deadline is still taken.
            let woken = poll::poll(&[&ready, &timer]);
            if let Some(result) = future.get() {
                break result
                    .map_err(|()| {
                        RouteError::Transport(format!("the response from {url} was already taken"))
                    })?
                    .map_err(|code| error_from_code(&code, &url))?;
            }
            if woken.contains(&1) {
                return Err(timed_out(timeout, &url));
            }
        }
    };
    read_body(timeout, response, &timer, &url)
}

/// Write the whole request body and finish it; `false` when the host stopped taking it.
fn write_body(body: OutgoingBody, bytes: &[u8]) -> bool {
    if !bytes.is_empty() {
        let Ok(stream) = body.write() else {
            return false;
        };
        if !write_all(&stream, bytes) {
            return false;
        }
    }
    OutgoingBody::finish(body, None).is_ok()
}

/// Write `bytes` to `stream`; `false` when the other side stopped taking them.
fn write_all(stream: &OutputStream, bytes: &[u8]) -> bool {
    // `blocking-write-and-flush` takes at most 4096 bytes per call.
    bytes
        .chunks(4096)
        .all(|chunk| stream.blocking_write_and_flush(chunk).is_ok())
}

/// Read the body up to [`MAX_ANSWER_BYTES`]; a longer one fails without reading the rest.
fn read_body(
    timeout: Duration,
    response: IncomingResponse,
    timer: &poll::Pollable,
    url: &str,
) -> Result<RawAnswer, RouteError> {
    let status = response.status();
    // A longer answer fails once its first MAX_ANSWER_BYTES + 1 bytes are in; hosts cap what
    // they pass on anyway (callroute: 1 MiB), so no separate `content-length` check.
    let too_long = || {
        RouteError::BadResponse(format!(
            "the answer is longer than {MAX_ANSWER_BYTES} bytes"
        ))
    };
    let incoming = response.consume().map_err(|()| {
        RouteError::Transport(format!("the answer body from {url} was already taken"))
    })?;
    let mut body = Vec::new();
    {
        let stream = incoming.stream().map_err(|()| {
            RouteError::Transport(format!("the answer body from {url} was already taken"))
        })?;
        let ready = stream.subscribe();
        loop {
            match stream.read((MAX_ANSWER_BYTES + 1 - body.len()) as u64) {
                Ok(bytes) if bytes.is_empty() => {
                    // Nothing yet: wait for more or the deadline, whichever comes first.
                    if !poll::poll(&[&ready, timer]).contains(&0) {
                        return Err(timed_out(timeout, url));
                    }
                }
                Ok(bytes) => {
                    body.extend_from_slice(&bytes);
                    if body.len() > MAX_ANSWER_BYTES {
                        return Err(too_long());
                    }
                }
                Err(StreamError::Closed) => break,
                // The host bounds the body by the call's deadline too; at the deadline, a
                // failed read is this attempt's timeout, whatever the host called it.
                Err(_) if timer.ready() => return Err(timed_out(timeout, url)),
                Err(e) => return Err(stream_error(e, url)),
            }
        }
    }
    drop(incoming);
    Ok(RawAnswer { status, body })
}

fn timed_out(timeout: Duration, url: &str) -> RouteError {
    RouteError::Timeout(format!(
        "no complete answer from {url} within {} s",
        crate::scheme::format_seconds(timeout)
    ))
}

fn stream_error(error: StreamError, url: &str) -> RouteError {
    match error {
        StreamError::Closed => {
            RouteError::Transport(format!("the connection to {url} closed early"))
        }
        StreamError::LastOperationFailed(e) => match wasi::http::types::http_error_code(&e) {
            Some(code) => error_from_code(&code, url),
            None => RouteError::Transport(format!(
                "the connection to {url} failed: {}",
                e.to_debug_string()
            )),
        },
    }
}

/// Map a `wasi:http` error code to the route error kinds.
fn error_from_code(code: &ErrorCode, url: &str) -> RouteError {
    use ErrorCode as E;
    match code {
        E::HttpRequestDenied | E::DestinationIpProhibited => {
            RouteError::Denied(format!("the host refused the connection to {url}"))
        }
        E::DnsTimeout
        | E::ConnectionTimeout
        | E::ConnectionReadTimeout
        | E::ConnectionWriteTimeout
        | E::HttpResponseTimeout => RouteError::Timeout(format!(
            "{url} did not answer in time ({})",
            code_name(code)
        )),
        E::HttpProtocolError => {
            RouteError::BadResponse(format!("{url} did not answer with valid HTTP"))
        }
        E::HttpResponseHeaderSectionSize(_)
        | E::HttpResponseHeaderSize(_)
        | E::HttpResponseBodySize(_)
        | E::HttpResponseTrailerSectionSize(_)
        | E::HttpResponseTrailerSize(_)
        | E::HttpResponseTransferCoding(_)
        | E::HttpResponseContentCoding(_) => RouteError::BadResponse(format!(
            "{url} sent an unacceptable answer ({})",
            code_name(code)
        )),
        E::DnsError(_) | E::DestinationNotFound => {
            RouteError::Transport(format!("cannot resolve the host of {url}"))
        }
        E::ConnectionRefused => RouteError::Transport(format!("{url} refused the connection")),
        // What the host answers while a CRM's circuit breaker is open.
        E::ConnectionLimitReached => {
            RouteError::Unavailable(format!("the host holds requests to {url} back"))
        }
        E::TlsProtocolError | E::TlsCertificateError | E::TlsAlertReceived(_) => {
            RouteError::Transport(format!("TLS with {url} failed ({})", code_name(code)))
        }
        other => RouteError::Transport(format!(
            "the request to {url} failed ({})",
            code_name(other)
        )),
    }
}

/// The WIT name of a `wasi:http` error code, for messages. (Its derived `Debug` would do, at a
/// few kilobytes of the component's size budget, and in Rust's spelling rather than WIT's.)
fn code_name(code: &ErrorCode) -> &'static str {
    use ErrorCode as E;
    match code {
        E::DnsTimeout => "DNS-timeout",
        E::DnsError(_) => "DNS-error",
        E::DestinationNotFound => "destination-not-found",
        E::DestinationUnavailable => "destination-unavailable",
        E::DestinationIpProhibited => "destination-IP-prohibited",
        E::DestinationIpUnroutable => "destination-IP-unroutable",
        E::ConnectionRefused => "connection-refused",
        E::ConnectionTerminated => "connection-terminated",
        E::ConnectionTimeout => "connection-timeout",
        E::ConnectionReadTimeout => "connection-read-timeout",
        E::ConnectionWriteTimeout => "connection-write-timeout",
        E::ConnectionLimitReached => "connection-limit-reached",
        E::TlsProtocolError => "TLS-protocol-error",
        E::TlsCertificateError => "TLS-certificate-error",
        E::TlsAlertReceived(_) => "TLS-alert-received",
        E::HttpRequestDenied => "HTTP-request-denied",
        E::HttpRequestLengthRequired => "HTTP-request-length-required",
        E::HttpRequestBodySize(_) => "HTTP-request-body-size",
        E::HttpRequestMethodInvalid => "HTTP-request-method-invalid",
        E::HttpRequestUriInvalid => "HTTP-request-URI-invalid",
        E::HttpRequestUriTooLong => "HTTP-request-URI-too-long",
        E::HttpRequestHeaderSectionSize(_) => "HTTP-request-header-section-size",
        E::HttpRequestHeaderSize(_) => "HTTP-request-header-size",
        E::HttpRequestTrailerSectionSize(_) => "HTTP-request-trailer-section-size",
        E::HttpRequestTrailerSize(_) => "HTTP-request-trailer-size",
        E::HttpResponseIncomplete => "HTTP-response-incomplete",
        E::HttpResponseHeaderSectionSize(_) => "HTTP-response-header-section-size",
        E::HttpResponseHeaderSize(_) => "HTTP-response-header-size",
        E::HttpResponseBodySize(_) => "HTTP-response-body-size",
        E::HttpResponseTrailerSectionSize(_) => "HTTP-response-trailer-section-size",
        E::HttpResponseTrailerSize(_) => "HTTP-response-trailer-size",
        E::HttpResponseTransferCoding(_) => "HTTP-response-transfer-coding",
        E::HttpResponseContentCoding(_) => "HTTP-response-content-coding",
        E::HttpResponseTimeout => "HTTP-response-timeout",
        E::HttpUpgradeFailed => "HTTP-upgrade-failed",
        E::HttpProtocolError => "HTTP-protocol-error",
        E::LoopDetected => "loop-detected",
        E::ConfigurationError => "configuration-error",
        E::InternalError(_) => "internal-error",
    }
}
