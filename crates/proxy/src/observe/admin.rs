//! The admin listener: `/live`, `/ready`, and `POST /reload` (what `gatehouse reload` calls).
//! Bound to loopback by the default config; it never serves proxied traffic.

use std::convert::Infallible;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::body::ProxyBody;
use crate::snapshot::{Current, Snapshot};

/// The outcome of a reload, as `POST /reload` answers it.
#[derive(Debug, Clone)]
pub struct ReloadReply {
    pub taken: bool,
    /// What happened, in lines: `config reloaded ...`, or each error and `reload refused ...`.
    pub text: String,
}

/// A reload asked for on the admin listener; whoever does reloads answers on the channel.
pub type ReloadRequest = oneshot::Sender<ReloadReply>;

/// Serves the admin endpoints until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    current: Current,
    reloads: mpsc::Sender<ReloadRequest>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let current = Arc::clone(&current);
        let reloads = reloads.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let reloads = reloads.clone();
                let response = if req.uri().path() == "/reload" {
                    None
                } else {
                    Some(route(&current.load(), &req))
                };
                let method = req.method().clone();
                async move {
                    Ok::<_, Infallible>(match response {
                        Some(response) => response,
                        None => reload(&method, &reloads).await,
                    })
                }
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
                "{} admin: /live /ready, POST /reload\nconfig: {}\n",
                snapshot.config.server.name, snapshot.config.source
            ),
        ),
        _ => text(StatusCode::NOT_FOUND, "not found; try /live or /ready\n"),
    }
}

/// `POST /reload`: 200 when the config was taken, 422 with the reasons when it was refused.
async fn reload(method: &Method, reloads: &mpsc::Sender<ReloadRequest>) -> Response<ProxyBody> {
    if method != Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "use POST /reload (or `gatehouse reload`)\n",
        );
    }
    let (reply, outcome) = oneshot::channel();
    if reloads.send(reply).await.is_err() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "this gatehouse does not take reloads\n",
        );
    }
    match outcome.await {
        Ok(ReloadReply {
            taken: true,
            text: body,
        }) => text(StatusCode::OK, &body),
        Ok(ReloadReply {
            taken: false,
            text: body,
        }) => text(StatusCode::UNPROCESSABLE_ENTITY, &body),
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "gatehouse is shutting down; the reload was not done\n",
        ),
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
