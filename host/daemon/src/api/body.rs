//! The request body cap: no API request body is held in memory beyond
//! [`MAX_REQUEST_BODY`].
//!
//! A body that declares a larger `Content-Length` is refused at once, with
//! 413 in the API's error shape, before a byte of it is read: the caller
//! cannot make the daemon wait for (or buffer) data it will refuse anyway.
//! A body without a declared length (chunked) is read up to the cap and
//! refused as soon as it passes it. The connection is closed after a 413,
//! since the rest of the refused body is never read.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header::{CONNECTION, CONTENT_LENGTH};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::ApiError;

/// The largest request body the API accepts (2 MiB: jobs, KV secrets and
/// rotation requests are JSON objects far smaller than this).
pub const MAX_REQUEST_BODY: usize = 2 * 1024 * 1024;

/// Middleware: refuse an oversized body before reading it, and hand the
/// handler a body already read (and so known to be within the cap).
pub(super) async fn limit(req: Request, next: Next) -> Response {
    let declared = req.headers().get(CONTENT_LENGTH).map(|v| v.to_str().ok().and_then(|v| v.parse::<u64>().ok()));
    match declared {
        Some(Some(length)) if length > MAX_REQUEST_BODY as u64 => return too_large(),
        Some(None) => return ApiError::bad_request("Content-Length is not a number").into_response(),
        _ => {}
    }
    let (parts, body) = req.into_parts();
    match read_capped(body, MAX_REQUEST_BODY).await {
        Ok(Some(bytes)) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Ok(None) => too_large(),
        Err(e) => ApiError::bad_request(format!("cannot read the request body: {e}")).into_response(),
    }
}

/// The body, or `None` as soon as it passes `cap` bytes.
async fn read_capped(body: Body, cap: usize) -> Result<Option<Bytes>, axum::Error> {
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > cap {
            return Ok(None);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out.into()))
}

fn too_large() -> Response {
    let message = format!("the request body is larger than the API's limit of {MAX_REQUEST_BODY} bytes");
    let mut response = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(chunks: Vec<usize>) -> Body {
        let stream = futures_util::stream::iter(chunks.into_iter().map(|n| Ok::<_, std::io::Error>(vec![b'x'; n])));
        Body::from_stream(stream)
    }

    #[tokio::test]
    async fn bodies_stop_at_the_cap() {
        let at_cap = read_capped(chunked(vec![3, 3, 4]), 10).await.unwrap();
        assert_eq!(at_cap.map(|b| b.len()), Some(10));
        assert_eq!(read_capped(chunked(vec![3, 3, 5]), 10).await.unwrap(), None);
        assert_eq!(read_capped(chunked(vec![]), 10).await.unwrap().map(|b| b.len()), Some(0));
        // An endless body is refused once past the cap, not read forever.
        let endless = Body::from_stream(futures_util::stream::repeat_with(|| Ok::<_, std::io::Error>(vec![0u8; 4096])));
        assert_eq!(read_capped(endless, MAX_REQUEST_BODY).await.unwrap(), None);
    }
}
