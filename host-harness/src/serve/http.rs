//! The HTTP side of `serve`'s answers: reading a call or a body within its limits, and the
//! responses every endpoint shares (JSON, plain text, rejections, 401, 405).

use crate::Call;
use bytes::Bytes;
use callroute_plugin::call::{MAX_CALL_BODY, RequestError};
use callroute_plugin::error::excerpt;
use callroute_plugin::outcome;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::time::Duration;

/// A 200 with `value` as JSON, for the admin API: never kept by a cache.
pub(super) fn json_response(value: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(outcome::JSON),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// Read the request body (at most [`MAX_CALL_BODY`] bytes, within `timeout`) and parse the
/// call it carries.
pub(super) async fn read_call(
    request: Request<Incoming>,
    timeout: Duration,
) -> Result<Call, RequestError> {
    let method = request.method().clone();
    let query = request.uri().query().map(str::to_owned);
    let body = if method == Method::POST {
        read_body(request, MAX_CALL_BODY, timeout).await?
    } else {
        Bytes::new()
    };
    Call::from_http(method.as_str(), query.as_deref(), &body)
}

/// Read a request's body: at most `limit` bytes, within `timeout`.
pub(super) async fn read_body(
    request: Request<Incoming>,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, RequestError> {
    let body = tokio::time::timeout(timeout, Limited::new(request.into_body(), limit).collect())
        .await
        .map_err(|_| RequestError {
            status: 408,
            message: format!(
                "the request body did not arrive within {} s",
                timeout.as_secs_f64()
            ),
        })?
        .map_err(|error| {
            if error.is::<http_body_util::LengthLimitError>() {
                // The same answer as every front end gives.
                RequestError::over_limit(limit)
            } else {
                RequestError {
                    status: 400,
                    message: "the request body was cut off".into(),
                }
            }
        })?;
    Ok(body.to_bytes())
}

/// The HTTP response for an answer (see [`outcome::http_answer`]).
pub(super) fn response(answer: outcome::HttpAnswer) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(answer.content_type),
    );
    for (name, value) in answer.headers {
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

pub(super) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(outcome::TEXT),
    );
    response
}

/// The bearer token a request presents.
pub(super) fn token_of<B>(request: &Request<B>) -> Option<&str> {
    super::auth::bearer(
        request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )
}

/// 401, with the scheme of authentication a client should use.
pub(super) fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = rejection(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid bearer token is required (Authorization: Bearer <token>)".into(),
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"callroute\""),
    );
    response
}

/// A request the server will not route (see [`outcome::http_rejection`]).
pub(super) fn rejection(status: StatusCode, kind: &str, message: String) -> Response<Full<Bytes>> {
    response(outcome::http_rejection(status.as_u16(), kind, &message))
}

/// 405, saying which method the endpoint takes (`Allow`).
pub(super) fn method_not_allowed(allowed: &'static str) -> Response<Full<Bytes>> {
    let mut response = rejection(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("this endpoint takes {allowed} only"),
    );
    response
        .headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allowed));
    response
}

/// The answer to a request whose connection was taken for a newcomer just as its head
/// arrived (the server at its connection limit): it was not routed, and may be sent again.
pub(super) fn closed_for_room() -> Response<Full<Bytes>> {
    let mut response = rejection(
        StatusCode::SERVICE_UNAVAILABLE,
        "busy",
        "the server is at its connection limit and closed this connection; send the request again"
            .into(),
    );
    response.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    response
}

/// The names a path holds, each in its canonical form (else `None`: no such name).
#[derive(Debug, Default)]
pub(super) struct Names {
    /// `{scheme}`.
    pub(super) scheme: Option<Option<String>>,
    /// `{call_id}`.
    pub(super) call_id: Option<Option<String>>,
}

/// 404 for a scheme there is none of (or none this caller may know of): `unknown-scheme`,
/// the one spelling `/v1/route` and the admin API share.
pub(super) fn unknown_scheme(name: &str) -> Response<Full<Bytes>> {
    rejection(
        StatusCode::NOT_FOUND,
        "unknown-scheme",
        format!("no scheme named `{}`", excerpt(name, 64)),
    )
}
