//! Hot reload on SIGHUP against the real binary: a new config is swapped in without a
//! restart, a config with errors is refused while the running one keeps serving, a request in
//! flight finishes on the config it started with, and listeners are opened and closed.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use gatehouse_testkit::free_port;
use gatehouse_testkit::{Behavior, Config, Gatehouse, Reply, Req, Upstream};

fn start(config: &Config) -> Gatehouse {
    Gatehouse::start(Path::new(env!("CARGO_BIN_EXE_gatehouse")), &config.toml())
}

fn body_of(addr: SocketAddr) -> String {
    let response = Req::get("/").send(addr);
    assert_eq!(response.status, 200, "{}", response.text());
    response.text()
}

#[test]
fn sighup_swaps_in_the_new_upstream() {
    let one = Upstream::serve(Reply::ok("one"));
    let two = Upstream::serve(Reply::ok("two"));
    let gh = start(&Config::proxy_to([one.addr()]));
    assert_eq!(body_of(gh.addr()), "one");

    gh.rewrite_config(&Config::proxy_to([two.addr()]).toml());
    let outcome = gh.reload().unwrap_or_else(|line| panic!("refused: {line}"));
    assert_eq!(outcome["config"], gh.config_path().display().to_string());
    for _ in 0..5 {
        assert_eq!(body_of(gh.addr()), "two");
    }
    assert_eq!(one.requests().len(), 1, "nothing goes to the old upstream");
}

#[test]
fn a_config_with_errors_is_refused_and_the_running_one_keeps_serving() {
    let one = Upstream::serve(Reply::ok("one"));
    let gh = start(&Config::proxy_to([one.addr()]));
    gh.rewrite_config_raw("[[route]]\nupstream = \"app\"\n\n[upstream.app]\nservers = 5\n");
    let refused = gh
        .reload()
        .expect_err("a config with errors must be refused");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("the running config keeps serving"),
        "{refused}"
    );
    // Each error was logged with its file and line.
    let path = gh.config_path().display().to_string();
    let named = gh.logs().into_iter().any(|line| {
        line["level"] == "ERROR"
            && line["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(&format!("{path}:5:")) && m.contains("servers"))
    });
    assert!(
        named,
        "an error line names {path}:5; logs: {:#?}",
        gh.logs()
    );
    assert_eq!(body_of(gh.addr()), "one");

    // A good config afterwards is taken.
    let two = Upstream::serve(Reply::ok("two"));
    gh.rewrite_config(&Config::proxy_to([two.addr()]).toml());
    gh.reload().unwrap_or_else(|line| panic!("refused: {line}"));
    assert_eq!(body_of(gh.addr()), "two");
}

#[test]
fn a_request_in_flight_finishes_on_the_config_it_started_with() {
    let slow = Upstream::start(Behavior::Delay(
        Duration::from_millis(800),
        Reply::ok("slow"),
    ));
    let fast = Upstream::serve(Reply::ok("fast"));
    let gh = start(&Config::proxy_to([slow.addr()]));
    let addr = gh.addr();
    let in_flight = std::thread::spawn(move || Req::get("/").send(addr));
    slow.wait_for_requests(1, Duration::from_secs(5));

    gh.rewrite_config(&Config::proxy_to([fast.addr()]).toml());
    gh.reload().unwrap_or_else(|line| panic!("refused: {line}"));
    assert_eq!(
        body_of(gh.addr()),
        "fast",
        "new requests use the new config"
    );

    let response = in_flight.join().unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.text(), "slow");
}

#[test]
fn reload_opens_and_closes_listeners() {
    let one = Upstream::serve(Reply::ok("one"));
    let gh = start(&Config::proxy_to([one.addr()]));
    let extra = free_port();
    let config = |listen: &str| {
        format!(
            "[server]\nlisten = [{listen}]\nlog_format = \"json\"\n\n[[route]]\nupstream = \"app\"\n\n[upstream.app]\nservers = [\"{}\"]\n",
            one.addr()
        )
    };
    gh.rewrite_config_raw(&config(&format!("\"127.0.0.1:0\", \"127.0.0.1:{extra}\"")));
    let opened = gh.reload().unwrap_or_else(|line| panic!("refused: {line}"));
    let extra_addr: SocketAddr = ([127, 0, 0, 1], extra).into();
    assert!(
        opened["listeners_opened"]
            .as_str()
            .is_some_and(|l| l.contains(&extra_addr.to_string())),
        "{opened}"
    );
    assert_eq!(body_of(extra_addr), "one");
    assert_eq!(body_of(gh.addr()), "one", "the kept listener still serves");

    gh.rewrite_config_raw(&config("\"127.0.0.1:0\""));
    let closed = gh.reload().unwrap_or_else(|line| panic!("refused: {line}"));
    assert!(
        closed["listeners_closed"]
            .as_str()
            .is_some_and(|l| l.contains(&extra_addr.to_string())),
        "{closed}"
    );
    assert!(
        TcpStream::connect_timeout(&extra_addr, Duration::from_secs(1)).is_err(),
        "the removed listener no longer accepts"
    );
    assert_eq!(body_of(gh.addr()), "one");
}

#[test]
fn a_listener_that_cannot_be_bound_refuses_the_reload() {
    let one = Upstream::serve(Reply::ok("one"));
    let two = Upstream::serve(Reply::ok("two"));
    let gh = start(&Config::proxy_to([one.addr()]));
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    gh.rewrite_config_raw(&format!(
        "[server]\nlisten = [\"127.0.0.1:0\", \"{taken_addr}\"]\nlog_format = \"json\"\n\n[[route]]\nupstream = \"app\"\n\n[upstream.app]\nservers = [\"{}\"]\n",
        two.addr()
    ));
    let refused = gh
        .reload()
        .expect_err("a listen address in use refuses the reload");
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains(&taken_addr.to_string())),
        "{refused}"
    );
    assert_eq!(
        body_of(gh.addr()),
        "one",
        "nothing of the new config applies"
    );
}

/// Runs `gatehouse -c FILE reload` and returns its exit code and output.
fn reload_command(config: &Path) -> (Option<i32>, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("-c")
        .arg(config)
        .arg("reload")
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_reload_command_asks_the_running_instance_through_the_admin_listener() {
    let one = Upstream::serve(Reply::ok("one"));
    let two = Upstream::serve(Reply::ok("two"));
    let admin = format!("127.0.0.1:{}", free_port());
    let with_admin = |upstream: SocketAddr| {
        Config::proxy_to([upstream])
            .server("admin", admin.as_str())
            .toml()
    };
    let gh = start(&Config::proxy_to([one.addr()]).server("admin", admin.as_str()));

    gh.rewrite_config(&with_admin(two.addr()));
    let (code, stdout, stderr) = reload_command(gh.config_path());
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("config reloaded"), "{stdout}");
    assert_eq!(body_of(gh.addr()), "two");

    // Valid on its own, but the running instance cannot bind its new listener: refused there.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap();
    gh.rewrite_config_raw(&format!(
        "[server]\nlisten = [\"127.0.0.1:0\", \"{taken_addr}\"]\nadmin = \"{admin}\"\nlog_format = \"json\"\n\n[[route]]\nupstream = \"app\"\n\n[upstream.app]\nservers = [\"{}\"]\n",
        one.addr()
    ));
    let (code, stdout, stderr) = reload_command(gh.config_path());
    assert_eq!(code, Some(1), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("reload refused") && stdout.contains(&taken_addr.to_string()),
        "{stdout}"
    );
    assert_eq!(
        body_of(gh.addr()),
        "two",
        "the running config keeps serving"
    );

    // A config with errors is not even sent: its errors are printed.
    gh.rewrite_config_raw(&format!("[server]\nadmin = \"{admin}\"\nbogus = 1\n"));
    let (code, _, stderr) = reload_command(gh.config_path());
    assert_eq!(code, Some(1));
    assert!(stderr.contains("bogus"), "{stderr}");
    assert_eq!(body_of(gh.addr()), "two");
}

#[test]
fn the_reload_command_says_when_nothing_is_running() {
    let admin = format!("127.0.0.1:{}", free_port());
    let file = gatehouse_testkit::TempFile::with_contents(
        "gatehouse-reload",
        ".toml",
        format!(
            "[server]\nadmin = \"{admin}\"\n\n[[route]]\nupstream = \"app\"\n\n[upstream.app]\nservers = [\"127.0.0.1:1\"]\n"
        )
        .as_bytes(),
    );
    let (code, _, stderr) = reload_command(file.path());
    assert_eq!(code, Some(1));
    assert!(stderr.contains("is gatehouse running"), "{stderr}");
}
