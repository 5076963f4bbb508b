//! The bare hyper forwarder: the baseline for one proxy hop in Rust.
//!
//! It does what every proxy must and nothing else: buffer the request,
//! forward method, path, query, headers and body over a pooled keep-alive
//! client, buffer the answer and return it. No policy, no token, no audit.
//! Same runtime as Airlock (tokio, one worker per core), its own process so
//! that its CPU time can be read.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type Upstream = Client<HttpConnector, Full<Bytes>>;

/// Headers a forwarder must not pass on (RFC 9110 §7.6.1), plus the ones it
/// sets itself.
const HOP_BY_HOP: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
    "content-length",
];

pub fn run(listen: SocketAddr, upstream: SocketAddr) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(listen).await?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Upstream = Client::builder(TokioExecutor::new()).build(connector);
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let client = client.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let client = client.clone();
                    async move { Ok::<_, Infallible>(forward(&client, upstream, request).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

fn status_only(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

async fn forward(
    client: &Upstream,
    upstream: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return status_only(StatusCode::BAD_REQUEST);
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    let mut builder = Request::builder()
        .method(parts.method)
        .uri(format!("http://{upstream}{path}"));
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    let Ok(upstream_request) = builder.body(Full::new(body)) else {
        return status_only(StatusCode::BAD_REQUEST);
    };
    let Ok(response) = client.request(upstream_request).await else {
        return status_only(StatusCode::BAD_GATEWAY);
    };
    let (mut parts, body) = response.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return status_only(StatusCode::BAD_GATEWAY);
    };
    strip_hop_by_hop(&mut parts.headers);
    let mut out = Response::new(Full::new(body));
    *out.status_mut() = parts.status;
    *out.headers_mut() = parts.headers;
    out
}
