//! `gatehouse import nginx|haproxy` on a corpus of real-world shaped configs
//! (`tests/corpus/`): each is accepted by the real `nginx -t` / `haproxy -c`, imports, the
//! output passes the real `gatehouse check`, and the report names the directives it could not
//! map with their file and line. Then side by side: real nginx (and HAProxy) and gatehouse with
//! the imported config in front of the same upstreams, each request reaching the same backend
//! through both.
//!
//! The corpus uses placeholders (`{listen}`, `{up1}`, `{dir}`, `{cert}`...) that each test
//! replaces with free loopback ports, its temp directory and certificates made for it.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gatehouse_testkit::free_port;
use gatehouse_testkit::peers::{self, Peer, PeerKind};
use gatehouse_testkit::tls::TestCa;
use gatehouse_testkit::{Behavior, Gatehouse, Reply, Req, TempFile, Upstream};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");
/// The longest one run of the command may take.
const RUN_LIMIT: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary, killing it (and failing) after [`RUN_LIMIT`].
fn gatehouse(args: &[&str]) -> Run {
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gatehouse");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gatehouse {args:?} did not exit within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code(),
        stdout: reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

/// The ports a case's placeholders stand for.
#[derive(Debug, Clone, Copy)]
struct Ports {
    listen: u16,
    listen2: u16,
    ups: [u16; 3],
}

impl Ports {
    fn free() -> Self {
        Self {
            listen: free_port(),
            listen2: free_port(),
            ups: [free_port(), free_port(), free_port()],
        }
    }
}

/// A corpus case copied into a temp directory with its placeholders replaced.
struct Case {
    dir: TempFile,
    main: PathBuf,
    kind: PeerKind,
}

impl Case {
    fn new(kind: PeerKind, name: &str, ports: Ports) -> Self {
        let (sub, main) = match kind {
            PeerKind::Nginx => ("nginx", "nginx.conf"),
            PeerKind::Haproxy => ("haproxy", "haproxy.cfg"),
        };
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus")
            .join(sub)
            .join(name);
        let dir = TempFile::dir(&format!("gatehouse-import-{name}"));
        let ca = TestCa::new("gatehouse import test CA");
        let cert = ca.leaf(&["secure.example.test", "localhost"]);
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write certificate");
            path.display().to_string()
        };
        let cert_path = write("cert.pem", &cert.chain_pem);
        let key_path = write("key.pem", &cert.key_pem);
        let pem_path = write("both.pem", &format!("{}{}", cert.chain_pem, cert.key_pem));
        let replacements = [
            ("{dir}", dir.path().display().to_string()),
            ("{listen}", ports.listen.to_string()),
            ("{listen2}", ports.listen2.to_string()),
            ("{up1}", ports.ups[0].to_string()),
            ("{up2}", ports.ups[1].to_string()),
            ("{up3}", ports.ups[2].to_string()),
            ("{cert}", cert_path),
            ("{key}", key_path),
            ("{pem}", pem_path),
        ];
        copy(&src, dir.path(), &replacements);
        let main = dir.path().join(main);
        let case = Self { dir, main, kind };
        let output = peers::check(kind, &case.main, case.dir.path());
        assert!(
            output.status.success(),
            "{kind:?} refuses corpus case {name}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        case
    }

    fn path(&self, rel: &str) -> String {
        self.dir.path().join(rel).display().to_string()
    }

    /// `gatehouse import` into `out.toml`: the report (JSON) and the config's text.
    fn import(&self) -> (Value, String) {
        let out = self.dir.path().join("out.toml");
        let proxy = match self.kind {
            PeerKind::Nginx => "nginx",
            PeerKind::Haproxy => "haproxy",
        };
        let main = self.main.display().to_string();
        let out_arg = out.display().to_string();
        let run = gatehouse(&["import", proxy, &main, "-o", &out_arg, "--report-json"]);
        assert_eq!(run.code, Some(0), "import failed:\n{}", run.stderr);
        let report: Value = serde_json::from_str(&run.stderr)
            .unwrap_or_else(|e| panic!("report is not JSON ({e}):\n{}", run.stderr));
        let toml = std::fs::read_to_string(&out).expect("output written");
        let check = gatehouse(&["check", "-c", &out_arg]);
        assert_eq!(
            check.code,
            Some(0),
            "gatehouse check refuses the import:\n{}\n{toml}",
            check.stderr
        );
        (report, toml)
    }
}

fn copy(src: &Path, dst: &Path, replacements: &[(&str, String)]) {
    for entry in std::fs::read_dir(src).expect("corpus dir") {
        let entry = entry.expect("entry");
        let target = dst.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy(&entry.path(), &target, replacements);
        } else {
            let mut text = std::fs::read_to_string(entry.path()).expect("read corpus file");
            for (from, to) in replacements {
                text = text.replace(from, to);
            }
            std::fs::write(&target, text).expect("write corpus file");
        }
    }
}

/// Asserts the report lists `directive` (a prefix of it) as not mapped at `file:line`.
fn assert_unmapped(report: &Value, at: &str, directive: &str) {
    let found = report["unmapped"].as_array().is_some_and(|list| {
        list.iter().any(|u| {
            u["at"] == at
                && u["directive"]
                    .as_str()
                    .is_some_and(|d| d.starts_with(directive))
                && u["why"].as_str().is_some_and(|w| !w.is_empty())
        })
    });
    assert!(
        found,
        "{directive} at {at} is not reported as unmapped:\n{:#}",
        report["unmapped"]
    );
}

fn assert_mapped(report: &Value, at: &str, key: &str) {
    let found = report["mapped"].as_array().is_some_and(|list| {
        list.iter()
            .any(|m| m["at"] == at && m["key"].as_str().is_some_and(|k| k.contains(key)))
    });
    assert!(
        found,
        "nothing at {at} is mapped to {key}:\n{:#}",
        report["mapped"]
    );
}

fn assert_difference(report: &Value, words: &str) {
    let found = report["differences"].as_array().is_some_and(|list| {
        list.iter()
            .any(|d| d["note"].as_str().is_some_and(|n| n.contains(words)))
    });
    assert!(
        found,
        "no difference says {words:?}:\n{:#}",
        report["differences"]
    );
}

// === the corpus ===

#[test]
fn nginx_single_proxy_pass_site() {
    let case = Case::new(PeerKind::Nginx, "single", Ports::free());
    let (report, toml) = case.import();
    let main = case.path("nginx.conf");
    assert!(toml.contains("host = \"app.example.test\""), "{toml}");
    assert!(toml.contains("response_timeout = \"90s\""), "{toml}");
    assert_mapped(&report, &format!("{main}:26"), "response_timeout");
    assert_unmapped(&report, &format!("{main}:2"), "worker_processes");
    assert_unmapped(&report, &format!("{main}:13"), "gzip on");
    assert_mapped(&report, &format!("{main}:14"), "max_request_body_size");
    assert!(toml.contains("max_request_body_size = \"10MiB\""), "{toml}");
    assert_difference(&report, "nginx waits 60s for a connection");
}

#[test]
fn nginx_load_balanced_upstream_with_health_parameters() {
    let case = Case::new(PeerKind::Nginx, "balanced", Ports::free());
    let (report, toml) = case.import();
    let main = case.path("nginx.conf");
    assert!(toml.contains("balance = \"least_requests\""), "{toml}");
    assert!(toml.contains("consecutive_failures = 3"), "{toml}");
    assert!(toml.contains("ejection = \"20s\""), "{toml}");
    assert!(toml.contains("connect_timeout = \"3s\""), "{toml}");
    assert!(
        toml.contains("max_response_header_size = \"16KiB\""),
        "{toml}"
    );
    assert!(toml.contains("attempts = 2"), "{toml}");
    assert!(toml.contains("backup = true"), "{toml}");
    assert_mapped(&report, &format!("{main}:11"), "upstream.app_pool.servers");
    assert_unmapped(&report, &format!("{main}:35"), "location /static/");
    assert_unmapped(&report, &format!("{main}:36"), "root");
    assert_unmapped(&report, &format!("{main}:30"), "proxy_buffers");
    assert_unmapped(&report, &format!("{main}:40"), "location ~*");
    let next = report["mapped"]
        .as_array()
        .and_then(|l| l.iter().find(|m| m["at"] == format!("{main}:31")))
        .expect("proxy_next_upstream mapped");
    assert!(
        next["note"].as_str().unwrap_or("").contains("http_502"),
        "{next}"
    );
}

#[test]
fn nginx_tls_with_a_redirect_and_a_cache() {
    let ports = Ports::free();
    let case = Case::new(PeerKind::Nginx, "tls_redirect", ports);
    let (report, toml) = case.import();
    let main = case.path("nginx.conf");
    assert!(
        toml.contains(&format!(
            "redirect_https = [\"127.0.0.1:{}\"]",
            ports.listen
        )),
        "{toml}"
    );
    assert!(
        toml.contains(&format!(
            "[[server.tls]]\nlisten = [\"127.0.0.1:{}\"]",
            ports.listen2
        )),
        "{toml}"
    );
    assert!(toml.contains("[route.cache]\nmode = \"full\""), "{toml}");
    assert_mapped(&report, &format!("{main}:13"), "server.redirect_https");
    assert_mapped(&report, &format!("{main}:30"), "stale_if_error");
    assert_unmapped(&report, &format!("{main}:8"), "proxy_cache_path");
    assert_unmapped(&report, &format!("{main}:22"), "ssl_session_cache");
    assert_unmapped(&report, &format!("{main}:29"), "proxy_cache_valid");
}

#[test]
fn nginx_several_server_names() {
    let case = Case::new(PeerKind::Nginx, "server_names", Ports::free());
    let (report, toml) = case.import();
    let main = case.path("nginx.conf");
    for host in [
        "shop.example.test",
        "www.shop.example.test",
        "*.blog.example.test",
        "api.example.test",
        "*.api.example.test",
    ] {
        assert!(
            toml.contains(&format!("host = \"{host}\"")),
            "{host}:\n{toml}"
        );
    }
    assert_unmapped(&report, &format!("{main}:38"), "add_header");
}

#[test]
fn nginx_nested_includes_keep_their_files_and_lines() {
    let case = Case::new(PeerKind::Nginx, "nested", Ports::free());
    let (report, toml) = case.import();
    assert!(toml.contains("[upstream.backend]"), "{toml}");
    assert!(toml.contains("connect_timeout = \"5s\""), "{toml}");
    let snippet = case.path("snippets/proxy.conf");
    assert_mapped(&report, &format!("{snippet}:5"), "connect_timeout");
    assert_unmapped(
        &report,
        &format!("{snippet}:4"),
        "proxy_set_header X-Request-Start",
    );
    assert_mapped(
        &report,
        &format!("{}:1", case.path("conf.d/app.conf")),
        "upstream.backend",
    );
}

#[test]
fn haproxy_frontend_and_backend_with_checks() {
    let case = Case::new(PeerKind::Haproxy, "checks", Ports::free());
    let (report, toml) = case.import();
    let main = case.path("haproxy.cfg");
    assert!(
        toml.contains("[upstream.app.health]\npath = \"/health\""),
        "{toml}"
    );
    assert!(toml.contains("interval = \"3s\""), "{toml}");
    assert!(toml.contains("unhealthy_threshold = 3"), "{toml}");
    assert!(toml.contains("expect_status = \"200\""), "{toml}");
    assert!(toml.contains("weight = 20"), "{toml}");
    assert!(toml.contains("attempts = 3"), "{toml}");
    assert_mapped(&report, &format!("{main}:19"), "health.path");
    assert_mapped(&report, &format!("{main}:21"), "health]");
    assert_unmapped(&report, &format!("{main}:3"), "maxconn");
    assert_unmapped(&report, &format!("{main}:8"), "timeout client");
}

#[test]
fn haproxy_tls_bind_and_redirect() {
    let ports = Ports::free();
    let case = Case::new(PeerKind::Haproxy, "tls", ports);
    let (report, toml) = case.import();
    let main = case.path("haproxy.cfg");
    assert!(
        toml.contains(&format!(
            "redirect_https = [\"127.0.0.1:{}\"]",
            ports.listen
        )),
        "{toml}"
    );
    assert!(toml.contains(&case.path("both.pem")), "{toml}");
    // tune.bufsize 32768 minus tune.maxrewrite 1024.
    assert!(
        toml.contains("max_response_header_size = \"31KiB\""),
        "{toml}"
    );
    assert_mapped(&report, &format!("{main}:3"), "max_response_header_size");
    assert_mapped(&report, &format!("{main}:13"), "server.tls");
}

#[test]
fn haproxy_acl_routing() {
    let case = Case::new(PeerKind::Haproxy, "acl", Ports::free());
    let (report, toml) = case.import();
    let main = case.path("haproxy.cfg");
    assert!(toml.contains("host = \"shop.example.test\""), "{toml}");
    assert!(
        toml.contains("path = \"/api/\"\nupstream = \"api\""),
        "{toml}"
    );
    assert!(toml.contains("hash_key = \"client_ip\""), "{toml}");
    assert_unmapped(&report, &format!("{main}:16"), "acl is_old hdr_end");
    assert_unmapped(&report, &format!("{main}:19"), "use_backend legacy");
    assert_unmapped(&report, &format!("{main}:3"), "log stdout");
    assert_difference(&report, "first rule that matches");
}

#[test]
fn unreadable_and_broken_configs_are_refused_with_the_line() {
    let dir = TempFile::dir("gatehouse-import-broken");
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, "http {\n server {\n  listen 80\n }\n}\n").expect("write");
    let run = gatehouse(&["import", "nginx", &path.display().to_string()]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("nginx.conf:4"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    let missing = gatehouse(&["import", "haproxy", "/nonexistent/haproxy.cfg"]);
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains("cannot read"), "{}", missing.stderr);
}

#[test]
fn an_import_that_would_not_validate_is_not_written() {
    let dir = TempFile::dir("gatehouse-import-invalid");
    let path = dir.path().join("nginx.conf");
    // The certificate files do not exist: gatehouse check would refuse the TLS listener.
    std::fs::write(
        &path,
        "server {\n listen 127.0.0.1:8443 ssl;\n ssl_certificate missing.pem;\n ssl_certificate_key missing.key;\n location / { proxy_pass http://127.0.0.1:9; }\n}\n",
    )
    .expect("write");
    let out = dir.path().join("out.toml");
    let run = gatehouse(&[
        "import",
        "nginx",
        &path.display().to_string(),
        "-o",
        &out.display().to_string(),
    ]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("missing.pem"), "{}", run.stderr);
    assert!(run.stderr.contains("not written"), "{}", run.stderr);
    assert!(!out.exists());
}

#[test]
fn import_writes_to_stdout_and_the_text_report_to_stderr() {
    let case = Case::new(PeerKind::Nginx, "single", Ports::free());
    let run = gatehouse(&["import", "nginx", &case.main.display().to_string()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("[[route]]"), "{}", run.stdout);
    assert!(run.stderr.contains("not mapped"), "{}", run.stderr);
    assert!(run.stderr.contains("why:"), "{}", run.stderr);
}

// === side by side ===

/// `GET path` with `Host: host` on a new connection: the status and body.
fn get(addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let response = Req::get(path).host(host).send(addr);
    (response.status, response.text())
}

/// Three upstreams that answer with their own names.
fn named_upstreams() -> [Upstream; 3] {
    ["one", "two", "three"].map(|name| Upstream::start(Behavior::Serve(Reply::ok(name))))
}

fn ports_of(ups: &[Upstream; 3]) -> Ports {
    let mut ports = Ports::free();
    ports.ups = [
        ups[0].addr().port(),
        ups[1].addr().port(),
        ups[2].addr().port(),
    ];
    ports
}

/// Sends each request through the peer and through gatehouse and checks both reach the
/// expected backend.
fn side_by_side(peer: SocketAddr, gatehouse: SocketAddr, requests: &[(&str, &str, &str)]) {
    for (host, path, expected) in requests {
        let via_peer = get(peer, host, path);
        let via_gatehouse = get(gatehouse, host, path);
        assert_eq!(
            via_peer,
            (200, (*expected).to_owned()),
            "{host}{path} through the peer"
        );
        assert_eq!(
            via_gatehouse, via_peer,
            "{host}{path}: gatehouse and the peer disagree"
        );
    }
}

fn start_gatehouse(toml: &str) -> Gatehouse {
    Gatehouse::start(Path::new(BIN), toml)
}

#[test]
fn nginx_and_gatehouse_route_the_same_requests_to_the_same_backends() {
    let ups = named_upstreams();
    let ports = ports_of(&ups);
    let case = Case::new(PeerKind::Nginx, "server_names", ports);
    let (_, toml) = case.import();
    let text = std::fs::read_to_string(&case.main).expect("config");
    let nginx = Peer::start(
        PeerKind::Nginx,
        &text,
        SocketAddr::from(([127, 0, 0, 1], ports.listen)),
    );
    let gatehouse = start_gatehouse(&toml);
    side_by_side(
        SocketAddr::from(([127, 0, 0, 1], ports.listen)),
        gatehouse.addr(),
        &[
            ("shop.example.test", "/", "one"),
            ("www.shop.example.test", "/cart", "one"),
            ("x.blog.example.test", "/post/1", "two"),
            ("x.blog.example.test", "/api/v1", "three"),
            ("api.example.test", "/", "three"),
            ("eu.api.example.test", "/users", "three"),
            // No server name matches: the default server.
            ("unknown.test", "/", "one"),
        ],
    );
    drop(nginx);
}

#[test]
fn haproxy_and_gatehouse_route_the_same_requests_to_the_same_backends() {
    let ups = named_upstreams();
    let ports = ports_of(&ups);
    let case = Case::new(PeerKind::Haproxy, "acl", ports);
    let (_, toml) = case.import();
    let text = std::fs::read_to_string(&case.main).expect("config");
    let haproxy = Peer::start(
        PeerKind::Haproxy,
        &text,
        SocketAddr::from(([127, 0, 0, 1], ports.listen)),
    );
    let gatehouse = start_gatehouse(&toml);
    side_by_side(
        SocketAddr::from(([127, 0, 0, 1], ports.listen)),
        gatehouse.addr(),
        &[
            ("shop.example.test", "/", "one"),
            ("shop.example.test", "/basket", "one"),
            ("other.test", "/api/items", "three"),
            ("other.test", "/", "two"),
            ("blog.example.test", "/2024/post", "two"),
        ],
    );
    drop(haproxy);
}

/// `curl` to `https://secure.example.test:PORT/path` on loopback, trusting the case's CA.
fn curl_secure(scheme: &str, port: u16, path: &str, case: &Case) -> gatehouse_testkit::CurlResult {
    let resolve = format!("secure.example.test:{port}:127.0.0.1");
    let url = format!("{scheme}://secure.example.test:{port}{path}");
    let ca = case.path("cert.pem");
    // HTTP/1.1: the testkit reads the response heads curl prints as HTTP/1.
    gatehouse_testkit::curl(&["--http1.1", "--resolve", &resolve, "--cacert", &ca, &url])
}

#[test]
fn nginx_and_gatehouse_serve_the_same_https_site_and_redirect_to_it() {
    let ups = named_upstreams();
    // Each proxy gets listeners of its own; the upstreams are shared.
    let nginx_ports = ports_of(&ups);
    let gatehouse_ports = ports_of(&ups);
    let nginx_case = Case::new(PeerKind::Nginx, "tls_redirect", nginx_ports);
    let gatehouse_case = Case::new(PeerKind::Nginx, "tls_redirect", gatehouse_ports);
    let (_, toml) = gatehouse_case.import();
    let text = std::fs::read_to_string(&nginx_case.main).expect("config");
    let _nginx = Peer::start(
        PeerKind::Nginx,
        &text,
        SocketAddr::from(([127, 0, 0, 1], nginx_ports.listen2)),
    );
    let gatehouse = start_gatehouse(&toml);
    let _ = gatehouse.https_addr();
    for (port, case) in [
        (nginx_ports.listen2, &nginx_case),
        (gatehouse_ports.listen2, &gatehouse_case),
    ] {
        let result = curl_secure("https", port, "/page", case);
        assert_eq!(result.status(), 200, "port {port}: {}", result.stderr);
        assert_eq!(result.body, b"one");
    }
    // The redirect: nginx's 301, gatehouse's 308 (as the report says), both to https.
    let via_nginx = curl_secure("http", nginx_ports.listen, "/page?q=1", &nginx_case);
    let via_gatehouse = curl_secure("http", gatehouse_ports.listen, "/page?q=1", &gatehouse_case);
    assert_eq!(via_nginx.status(), 301);
    assert_eq!(via_gatehouse.status(), 308);
    for result in [&via_nginx, &via_gatehouse] {
        let location = result
            .headers()
            .get("location")
            .unwrap_or_default()
            .to_owned();
        assert!(
            location.starts_with("https://secure.example.test") && location.ends_with("/page?q=1"),
            "{location}"
        );
    }
}
