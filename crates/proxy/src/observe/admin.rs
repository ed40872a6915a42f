//! The admin listener: `/live` and `/ready`. Bound to loopback by the default config; it never
//! serves proxied traffic.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::ProxyBody;
use crate::snapshot::{Current, Snapshot};

/// Serves the admin endpoints until `shutdown` turns true.
pub async fn serve(listener: TcpListener, current: Current, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let current = Arc::clone(&current);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let response = route(&current.load(), &req);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn route(snapshot: &Snapshot, req: &Request<Incoming>) -> Response<ProxyBody> {
    match req.uri().path() {
        // Ready once listeners are bound and a config is loaded, which is when this runs.
        "/live" | "/ready" => text(StatusCode::OK, "ok\n"),
        "/" => text(
            StatusCode::OK,
            &format!(
                "{} admin: /live /ready\nconfig: {}\n",
                snapshot.config.server.name, snapshot.config.source
            ),
        ),
        _ => text(StatusCode::NOT_FOUND, "not found; try /live or /ready\n"),
    }
}

fn text(status: StatusCode, body: &str) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(body.to_owned()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
