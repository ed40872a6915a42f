//! The admin listener with `admin_token`: every endpoint but `/live` and `/ready` wants the
//! bearer token, `gatehouse reload` sends it from the config, wrong methods get 405, and no
//! admin answer may be cached.

use std::net::SocketAddr;
use std::path::Path;

use gatehouse_testkit::free_port;
use gatehouse_testkit::{Config, Gatehouse, RawResponse, Reply, Req, Upstream};

const TOKEN: &str = "c2VjcmV0LXRva2Vu";

fn get(admin: SocketAddr, path: &str, token: Option<&str>) -> RawResponse {
    let mut req = Req::get(path);
    if let Some(token) = token {
        req = req.header("authorization", &format!("Bearer {token}"));
    }
    let response = req.send(admin);
    assert!(response.complete, "GET {path}: {response:#?}");
    assert_eq!(
        response.header("cache-control"),
        Some("no-store"),
        "GET {path}: {response:#?}"
    );
    response
}

#[test]
fn with_a_token_only_live_and_ready_answer_without_it() {
    let app = Upstream::serve(Reply::ok("app"));
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let config = |upstream: SocketAddr| {
        Config::proxy_to([upstream])
            .server("admin", admin.to_string())
            .server("admin_token", TOKEN)
    };
    let gh = Gatehouse::start(
        Path::new(env!("CARGO_BIN_EXE_gatehouse")),
        &config(app.addr()).toml(),
    );
    assert_eq!(gh.admin_addr(), admin);

    for path in ["/live", "/ready"] {
        assert_eq!(get(admin, path, None).status, 200, "{path} needs no token");
    }
    for path in ["/metrics", "/status", "/status.json", "/"] {
        let refused = get(admin, path, None);
        assert_eq!(refused.status, 401, "{path}: {refused:#?}");
        assert_eq!(
            refused.header("www-authenticate"),
            Some("Bearer realm=\"gatehouse admin\""),
            "{path}"
        );
        assert_eq!(get(admin, path, Some("wrong-token")).status, 401, "{path}");
        assert_eq!(get(admin, path, Some(TOKEN)).status, 200, "{path}");
    }
    let scrape = get(admin, "/metrics", Some(TOKEN));
    assert!(
        scrape
            .text()
            .contains("gatehouse_reloads_total{outcome=\"ok\"} 0"),
        "{}",
        scrape.text()
    );

    // Wrong methods.
    let post = Req::new("POST", "/metrics")
        .header("authorization", &format!("Bearer {TOKEN}"))
        .send(admin);
    assert_eq!(post.status, 405, "{post:#?}");
    assert_eq!(get(admin, "/reload", Some(TOKEN)).status, 405);
    let unauthorised_reload = Req::new("POST", "/reload").send(admin);
    assert_eq!(unauthorised_reload.status, 401, "{unauthorised_reload:#?}");

    // `gatehouse reload` reads the token from the config and is let in.
    let other = Upstream::serve(Reply::ok("other"));
    gh.rewrite_config(&config(other.addr()).toml());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("-c")
        .arg(gh.config_path())
        .arg("reload")
        .output()
        .unwrap_or_else(|e| panic!("gatehouse reload: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("config reloaded"), "{stdout}");
    assert_eq!(Req::get("/").send(gh.addr()).text(), "other");
}
