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
    post(
        path,
        "reload",
        "/reload",
        "the running gatehouse would refuse it",
        "; send it SIGHUP instead (kill -HUP <pid>)",
    )
}

/// A command that asks the running instance something: loads the config at `path` for its
/// admin address and token, sends `POST admin_path`, prints the answer. 0 on a 200, 1 when
/// the config has errors, names no admin listener, or the answer is not a 200. `refused` says
/// why a config with errors is not sent; `no_admin_hint` follows the missing-address message.
pub(crate) fn post(
    path: Option<&Path>,
    command: &str,
    admin_path: &str,
    refused: &str,
    no_admin_hint: &str,
) -> ExitCode {
    let Some(loaded) = crate::cli::load_or_explain(
        path,
        &format!("gatehouse {command}: not sent: the config has errors (above), {refused}"),
    ) else {
        return ExitCode::FAILURE;
    };
    let Some(admin) = loaded.config.server.admin else {
        eprintln!(
            "gatehouse {command}: {} has no `server.admin` address to reach the running gatehouse{no_admin_hint}",
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
            eprintln!("gatehouse {command}: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let token = loaded.config.server.admin_token.as_deref();
    match runtime.block_on(ask(admin, token, admin_path)) {
        Ok((status, text)) => {
            print!("{text}");
            if status == StatusCode::OK {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(why) => {
            eprintln!("gatehouse {command}: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Sends `POST path` to the admin listener at `admin` (with the bearer `token`, if any) and
/// returns the answer's status and text.
async fn ask(
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
