//! `gatehouse reload`: asks the running instance to reload its config with `POST /reload` on
//! its admin listener (the address comes from the config file), and prints the answer.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use gatehouse_proxy::client_body::RequestBody;
use gatehouse_proxy::upstream::connect;
use http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use tokio::net::TcpStream;

/// How long the running instance may take to answer (loading and validating the config).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// 0 when the running gatehouse took the config, 1 when it refused it or could not be asked.
pub(crate) fn run(path: Option<&Path>) -> ExitCode {
    let Some(loaded) = crate::cli::load_or_explain(
        path,
        "gatehouse reload: not sent: the config has errors (above), the running gatehouse would refuse it",
    ) else {
        return ExitCode::FAILURE;
    };
    let Some(admin) = loaded.config.server.admin else {
        eprintln!(
            "gatehouse reload: {} has no `server.admin` address to reach the running gatehouse; send it SIGHUP instead (kill -HUP <pid>)",
            loaded.config.source
        );
        return ExitCode::FAILURE;
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("gatehouse reload: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let token = loaded.config.server.admin_token.as_deref();
    match runtime.block_on(ask(admin, token, "/reload")) {
        Ok((status, text)) => {
            print!("{text}");
            if status == StatusCode::OK {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(why) => {
            eprintln!("gatehouse reload: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Sends `POST path` to the admin listener at `admin` (with the bearer `token`, if any) and
/// returns the answer's status and text. Also used by `gatehouse purge`.
pub(crate) async fn ask(
    admin: std::net::SocketAddr,
    token: Option<&str>,
    path: &str,
) -> Result<(StatusCode, String), String> {
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(admin))
        .await
        .map_err(|_| format!("no answer from the admin listener {admin} within 5s"))?
        .map_err(|err| {
            format!("cannot reach the admin listener {admin}: {err} (is gatehouse running with this config?)")
        })?;
    let (mut sender, _) = connect::handshake(stream, ANSWER_TIMEOUT, 64 * 1024)
        .await
        .map_err(|failure| failure.to_string())?;
    let mut request = Request::new(RequestBody::empty());
    *request.method_mut() = Method::POST;
    *request.uri_mut() =
        http::Uri::try_from(path).map_err(|err| format!("cannot ask for {path:?}: {err}"))?;
    if let Ok(host) = header::HeaderValue::from_str(&admin.to_string()) {
        request.headers_mut().insert(header::HOST, host);
    }
    if let Some(Ok(bearer)) = token.map(|t| header::HeaderValue::from_str(&format!("Bearer {t}"))) {
        request.headers_mut().insert(header::AUTHORIZATION, bearer);
    }
    let response = tokio::time::timeout(ANSWER_TIMEOUT, sender.send_request(request))
        .await
        .map_err(|_| format!("the running gatehouse did not answer within {ANSWER_TIMEOUT:?}"))?
        .map_err(|err| format!("the admin listener {admin} failed to answer: {err}"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|err| format!("the answer was cut short: {err}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
