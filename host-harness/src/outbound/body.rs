//! Bodies through the door: the component's request body, read whole (so a request can go
//! again on a fresh connection), and the CRM's response body, capped and bound by the call's
//! deadline.

use super::errors::{Failure, classify_hyper};
use super::pool::PooledBody;
use crate::exchange::AttemptHandle;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Frame};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error, WasiBody};

/// The most response bytes the host passes to a component, whatever the component reads.
pub const MAX_RESPONSE_BODY: u64 = 1024 * 1024;
/// The largest request body a component may send (a webhook's parameters).
pub const MAX_REQUEST_BODY: usize = 1024 * 1024;

/// The component's request body, whole.
pub(crate) async fn read_request_body(body: WasiBody, deadline: Instant) -> Result<Bytes, Failure> {
    let read = tokio::time::timeout_at(deadline, Limited::new(body, MAX_REQUEST_BODY).collect())
        .await
        .map_err(|_| Error::ConnectionWriteTimeout)?;
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(match e.downcast::<Error>() {
            Ok(e) => *e,
            Err(_) => Error::HttpRequestBodySize(None),
        }
        .into()),
    }
}

/// The response with its body capped at [`MAX_RESPONSE_BODY`] and bounded by the deadline.
pub(crate) fn capped(
    response: http::Response<PooledBody>,
    body_deadline: Instant,
    record: Option<AttemptHandle>,
) -> Result<http::Response<WasiBody>, Failure> {
    if let Some(length) = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        && length > MAX_RESPONSE_BODY
    {
        return Err(Error::HttpResponseBodySize(Some(length)).into());
    }
    Ok(response.map(|body| {
        CappedBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep_until(body_deadline)),
            remaining: MAX_RESPONSE_BODY,
            record,
        }
        .boxed_unsync()
    }))
}

/// A response body bounded by the call's deadline and [`MAX_RESPONSE_BODY`].
struct CappedBody {
    inner: PooledBody,
    deadline: Pin<Box<Sleep>>,
    remaining: u64,
    /// Where the answer is recorded, when the call's exchanges are.
    record: Option<AttemptHandle>,
}

impl Body for CappedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Some(record) = &this.record {
                        record.body(data);
                    }
                    let len = data.len() as u64;
                    if len > this.remaining {
                        return Poll::Ready(Some(Err(Error::HttpResponseBodySize(None))));
                    }
                    this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(classify_hyper(&e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[tokio::test]
    async fn a_request_body_over_the_limit_is_refused_before_connecting() {
        let body = |len: usize| {
            Full::new(Bytes::from(vec![b'x'; len]))
                .map_err(|never| match never {})
                .boxed_unsync()
        };
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let read = read_request_body(body(MAX_REQUEST_BODY), deadline).await;
        assert_eq!(read.ok().map(|b| b.len()), Some(MAX_REQUEST_BODY));
        let over = read_request_body(body(MAX_REQUEST_BODY + 1), deadline).await;
        assert!(matches!(
            over.err().map(Failure::into_error),
            Some(Error::HttpRequestBodySize(_))
        ));
    }
}
