//! The real `gatehouse` binary under a harness: a config file, the child process, its JSON
//! log lines collected as they arrive, and its listening address.

use std::io::{BufRead as _, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use toml::Table;

use crate::PATIENCE;
use crate::client::RawResponse;
use crate::proxy_status::Member;
use crate::record::Recorder;
use crate::temp::TempFile;

/// A gatehouse config, built as TOML tables (so no value is ever quoted by hand).
#[derive(Debug, Clone, Default)]
pub struct Config {
    server: Table,
    dns: Table,
    routes: Vec<Table>,
    upstreams: Table,
    /// Other top-level tables (`[cache]`, `[robots]`, `[maintenance]`).
    sections: Table,
}

impl Config {
    pub fn new() -> Self {
        Self::default()
    }

    /// One route, `/` to the upstream `app` with these servers.
    pub fn proxy_to<S: ToString>(servers: impl IntoIterator<Item = S>) -> Self {
        Self::new().upstream("app", servers).route(None, "/", "app")
    }

    /// Sets a `[server]` key.
    #[must_use]
    pub fn server(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.server.insert(key.to_owned(), value.into());
        self
    }

    /// Sets a `[dns]` key.
    #[must_use]
    pub fn dns(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.dns.insert(key.to_owned(), value.into());
        self
    }

    /// Adds a `[[route]]`.
    #[must_use]
    pub fn route(mut self, host: Option<&str>, path: &str, upstream: &str) -> Self {
        let mut route = Table::new();
        if let Some(host) = host {
            route.insert("host".to_owned(), host.into());
        }
        route.insert("path".to_owned(), path.into());
        route.insert("upstream".to_owned(), upstream.into());
        self.routes.push(route);
        self
    }

    /// Sets a key of a top-level table other than `[server]` and `[dns]` (`[cache]`,
    /// `[robots]`, `[maintenance]`), creating it.
    #[must_use]
    pub fn section(mut self, section: &str, key: &str, value: impl Into<toml::Value>) -> Self {
        let table = self
            .sections
            .entry(section)
            .or_insert_with(|| Table::new().into())
            .as_table_mut()
            .unwrap_or_else(|| panic!("{section} is not a table"));
        table.insert(key.to_owned(), value.into());
        self
    }

    /// Sets a key of a sub-table of the last `[[route]]` (`[route.cache]`,
    /// `[route.maintenance]`), creating it.
    #[must_use]
    pub fn route_section(
        mut self,
        section: &str,
        key: &str,
        value: impl Into<toml::Value>,
    ) -> Self {
        let route = self
            .routes
            .last_mut()
            .unwrap_or_else(|| panic!("no route in this config"));
        let table = route
            .entry(section)
            .or_insert_with(|| Table::new().into())
            .as_table_mut()
            .unwrap_or_else(|| panic!("route.{section} is not a table"));
        table.insert(key.to_owned(), value.into());
        self
    }

    /// Adds `[upstream.NAME]` with these servers.
    #[must_use]
    pub fn upstream<S: ToString>(
        mut self,
        name: &str,
        servers: impl IntoIterator<Item = S>,
    ) -> Self {
        let servers: Vec<toml::Value> = servers.into_iter().map(|s| s.to_string().into()).collect();
        let mut upstream = Table::new();
        upstream.insert("servers".to_owned(), servers.into());
        self.upstreams.insert(name.to_owned(), upstream.into());
        self
    }

    /// Adds `[upstream.NAME]` with these server entries (plain addresses or tables).
    #[must_use]
    pub fn upstream_servers(
        mut self,
        name: &str,
        servers: impl IntoIterator<Item = Server>,
    ) -> Self {
        let servers: Vec<toml::Value> = servers.into_iter().map(Into::into).collect();
        let mut upstream = Table::new();
        upstream.insert("servers".to_owned(), servers.into());
        self.upstreams.insert(name.to_owned(), upstream.into());
        self
    }

    /// Sets a key of the last `[[route]]` (e.g. `retry_non_idempotent`).
    #[must_use]
    pub fn route_setting(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        let route = self
            .routes
            .last_mut()
            .unwrap_or_else(|| panic!("no route in this config"));
        route.insert(key.to_owned(), value.into());
        self
    }

    /// Sets a key of the sub-table `[upstream.NAME.SECTION]` (`health`, `passive`, `retry`),
    /// creating it.
    #[must_use]
    pub fn upstream_section(
        mut self,
        name: &str,
        section: &str,
        key: &str,
        value: impl Into<toml::Value>,
    ) -> Self {
        let Some(toml::Value::Table(upstream)) = self.upstreams.get_mut(name) else {
            panic!("no upstream {name:?} in this config");
        };
        let table = upstream
            .entry(section)
            .or_insert_with(|| Table::new().into())
            .as_table_mut()
            .unwrap_or_else(|| panic!("upstream.{name}.{section} is not a table"));
        table.insert(key.to_owned(), value.into());
        self
    }

    /// Sets a key of `[upstream.NAME.health]` (active checks).
    #[must_use]
    pub fn health(self, name: &str, key: &str, value: impl Into<toml::Value>) -> Self {
        self.upstream_section(name, "health", key, value)
    }

    /// Sets a key of `[upstream.NAME.passive]` (outlier detection).
    #[must_use]
    pub fn passive(self, name: &str, key: &str, value: impl Into<toml::Value>) -> Self {
        self.upstream_section(name, "passive", key, value)
    }

    /// Sets a key of `[upstream.NAME.retry]`.
    #[must_use]
    pub fn retry(self, name: &str, key: &str, value: impl Into<toml::Value>) -> Self {
        self.upstream_section(name, "retry", key, value)
    }

    /// Sets a key of `[upstream.NAME]` (added before with [`Config::upstream`]).
    #[must_use]
    pub fn upstream_setting(
        mut self,
        name: &str,
        key: &str,
        value: impl Into<toml::Value>,
    ) -> Self {
        match self.upstreams.get_mut(name) {
            Some(toml::Value::Table(upstream)) => {
                upstream.insert(key.to_owned(), value.into());
            }
            _ => panic!("no upstream {name:?} in this config"),
        }
        self
    }

    pub fn toml(&self) -> String {
        let mut root = Table::new();
        root.insert("server".to_owned(), self.server.clone().into());
        if !self.dns.is_empty() {
            root.insert("dns".to_owned(), self.dns.clone().into());
        }
        root.extend(self.sections.clone());
        let routes: Vec<toml::Value> = self.routes.iter().cloned().map(Into::into).collect();
        root.insert("route".to_owned(), routes.into());
        root.insert("upstream".to_owned(), self.upstreams.clone().into());
        toml::to_string(&root).unwrap_or_else(|e| panic!("config does not serialise: {e}"))
    }
}

/// One entry of an upstream's `servers`: a plain `"host:port"` string, or a table
/// `{ address, weight, max_connections, backup }` once any option is set.
#[derive(Debug, Clone)]
pub struct Server {
    address: String,
    options: Table,
}

impl Server {
    pub fn new(address: impl ToString) -> Self {
        Self {
            address: address.to_string(),
            options: Table::new(),
        }
    }

    #[must_use]
    pub fn weight(self, weight: u32) -> Self {
        self.option("weight", weight)
    }

    #[must_use]
    pub fn max_connections(self, max: u32) -> Self {
        self.option("max_connections", max)
    }

    /// `backup = true`: used only when no primary server is available.
    #[must_use]
    pub fn backup(self) -> Self {
        self.option("backup", true)
    }

    /// Sets any key of the entry's table.
    #[must_use]
    pub fn option(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.options.insert(key.to_owned(), value.into());
        self
    }
}

impl From<Server> for toml::Value {
    fn from(server: Server) -> Self {
        if server.options.is_empty() {
            return server.address.into();
        }
        let mut table = Table::new();
        table.insert("address".to_owned(), server.address.into());
        table.extend(server.options);
        table.into()
    }
}

/// Log lines as they arrive: JSON objects, or strings for lines that are not JSON.
type LogSink = Recorder<Value>;

fn collect_lines(stream: impl Read + Send + 'static, sink: Arc<LogSink>, json: bool) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            let value = if json {
                serde_json::from_str(&line).unwrap_or(Value::String(line))
            } else {
                Value::String(line)
            };
            sink.push(value);
        }
    });
}

/// What a failure produced: the response's last Proxy-Status member (when the response was
/// generated and Proxy-Status is on), the failure warning and the access record.
#[derive(Debug, Clone)]
pub struct Observed {
    pub member: Option<Member>,
    pub warning: Value,
    pub access: Value,
}

/// A running gatehouse. Killed (by its PID) when dropped.
#[derive(Debug)]
pub struct Gatehouse {
    child: Child,
    addr: SocketAddr,
    name: String,
    proxy_status: String,
    stdout: Arc<LogSink>,
    stderr: Arc<LogSink>,
    config: TempFile,
    /// `STATE_DIRECTORY` of this instance (robots.txt guard copies), unless the config sets
    /// `server.state_dir`: each test's gatehouse keeps its own.
    _state: TempFile,
}

impl Gatehouse {
    /// Writes `config_toml` to a temp file and runs `BIN run -c FILE`. The harness sets
    /// `server.listen = ["127.0.0.1:0"]` and `server.log_format = "json"` itself, then waits
    /// for the "listening" log line and takes the address from it.
    pub fn start(bin: &Path, config_toml: &str) -> Self {
        let (text, name, proxy_status) = harness_config(config_toml);
        let file = TempFile::with_contents("gatehouse-test", ".toml", text.as_bytes());
        let state = TempFile::dir("gatehouse-test-state");

        let mut child = Command::new(bin)
            .arg("run")
            .arg("-c")
            .arg(file.path())
            .env_remove("RUST_LOG")
            .env("STATE_DIRECTORY", state.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stdout = Arc::new(LogSink::default());
        let stderr = Arc::new(LogSink::default());
        if let Some(out) = child.stdout.take() {
            collect_lines(out, Arc::clone(&stdout), true);
        }
        if let Some(err) = child.stderr.take() {
            collect_lines(err, Arc::clone(&stderr), false);
        }
        let mut gatehouse = Self {
            child,
            addr: ([0, 0, 0, 0], 0).into(),
            name,
            proxy_status,
            stdout,
            stderr,
            config: file,
            _state: state,
        };
        gatehouse.addr = gatehouse.wait_listening(&text);
        gatehouse
    }

    fn wait_listening(&mut self, config: &str) -> SocketAddr {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            // The first plain listener (lines before TLS listeners had no `protocol`).
            let listening = self.wait_for(
                |line| {
                    line["message"] == "listening"
                        && (line["protocol"] == "http" || line["protocol"].is_null())
                },
                Duration::from_millis(50),
            );
            if let Some(line) = listening {
                let addr = line["addr"].as_str().unwrap_or_default();
                return addr
                    .parse()
                    .unwrap_or_else(|e| panic!("listening line has no usable addr ({e}): {line}"));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Give the readers a moment to collect the last lines.
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "gatehouse exited at startup ({status})\nconfig:\n{config}\nstderr: {:#?}\nstdout: {:#?}",
                    self.stderr.snapshot(),
                    self.stdout.snapshot()
                );
            }
        }
        panic!(
            "gatehouse did not log \"listening\" within {PATIENCE:?}\nconfig:\n{config}\nstderr: {:#?}",
            self.stderr.snapshot()
        );
    }

    fn wait_for(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        self.stdout.wait_until(timeout, |lines| {
            lines.iter().find(|line| pred(line)).cloned()
        })
    }

    /// The (first plain) proxy listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The first TLS listener's address (`[[server.tls]]`), from its "listening" line.
    pub fn https_addr(&self) -> SocketAddr {
        self.listening_addr("https")
    }

    /// The first redirect listener's address (`redirect_https`), from its "listening" line.
    pub fn redirect_addr(&self) -> SocketAddr {
        self.listening_addr("redirect-https")
    }

    fn listening_addr(&self, protocol: &str) -> SocketAddr {
        let line = self.wait_for_log(
            |l| l["message"] == "listening" && l["protocol"] == protocol,
            PATIENCE,
        );
        let addr = line["addr"].as_str().unwrap_or_default();
        addr.parse()
            .unwrap_or_else(|e| panic!("listening line has no usable addr ({e}): {line}"))
    }

    /// The admin listener's address, from its "admin listening" log line. Start gatehouse
    /// with `server.admin = "127.0.0.1:0"` to have one.
    pub fn admin_addr(&self) -> SocketAddr {
        let line = self.wait_for_log(|l| l["message"] == "admin listening", PATIENCE);
        let addr = line["addr"].as_str().unwrap_or_default();
        addr.parse()
            .unwrap_or_else(|e| panic!("admin listening line has no usable addr ({e}): {line}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stdout line so far (JSON objects; a line that is not JSON as a string).
    pub fn logs(&self) -> Vec<Value> {
        self.stdout.snapshot()
    }

    /// Every stderr line so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr
            .snapshot()
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The first log line matching `pred`, waiting up to `timeout`; panics with all logs if
    /// none arrives.
    pub fn wait_for_log(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Value {
        self.wait_for(pred, timeout).unwrap_or_else(|| {
            panic!(
                "no matching log line within {timeout:?}; logs: {:#?}",
                self.logs()
            )
        })
    }

    /// The failure warning (`gatehouse::failure`) of the request with this id.
    pub fn failure_log(&self, request_id: &str) -> Value {
        self.wait_for_log(
            |l| l["target"] == "gatehouse::failure" && l["request_id"] == request_id,
            PATIENCE,
        )
    }

    /// The access record (`gatehouse::access`) of the request with this id.
    pub fn access_log(&self, request_id: &str) -> Value {
        self.wait_for_log(
            |l| l["target"] == "gatehouse::access" && l["request_id"] == request_id,
            PATIENCE,
        )
    }

    /// Asserts that gatehouse answered `response` itself for a failure of `kind`: the status,
    /// the last Proxy-Status member (our name, `error=kind`; absent with `proxy_status = "off"`),
    /// the warning's `kind`, and the access record's `failure` and `status`.
    pub fn expect_failure(&self, response: &RawResponse, status: u16, kind: &str) -> Observed {
        assert_eq!(
            (response.status, response.complete),
            (status, true),
            "expected a complete {status} for {kind}; got {response:#?}\nlogs: {:#?}",
            self.logs()
        );
        let member = if self.proxy_status == "off" {
            assert!(
                !response.headers.contains("proxy-status"),
                "proxy_status = off, yet {response:#?}"
            );
            None
        } else {
            let member = response.proxy_status().last().clone();
            assert_eq!(
                (member.name.as_str(), member.error()),
                (self.name.as_str(), Some(kind)),
                "{member:?}"
            );
            Some(member)
        };
        let (warning, access) = self.logged(response.request_id(), kind);
        assert_eq!(access["status"], status, "{access}");
        Observed {
            member,
            warning,
            access,
        }
    }

    /// Asserts that a proxied response was aborted after its head for a failure of `kind`:
    /// the client saw an incomplete message, and the logs name the kind.
    pub fn expect_aborted(&self, response: &RawResponse, kind: &str) -> Observed {
        assert!(
            !response.complete,
            "expected an aborted response for {kind}; got a complete one: {response:#?}"
        );
        let (warning, access) = self.logged(response.request_id(), kind);
        assert_eq!(access["status"], response.status, "{access}");
        Observed {
            member: None,
            warning,
            access,
        }
    }

    /// Every failure warning of the request with this id logged so far.
    pub fn failure_logs(&self, request_id: &str) -> Vec<Value> {
        let logs = self.logs();
        logs.into_iter()
            .filter(|l| l["target"] == "gatehouse::failure" && l["request_id"] == request_id)
            .collect()
    }

    /// The failure warning and the access record of a request, with `kind` in both. The access
    /// record comes last, so once it is there every warning is: one per attempt (one when the
    /// request failed before any attempt), never a second line for the same failure.
    fn logged(&self, request_id: &str, kind: &str) -> (Value, Value) {
        let access = self.access_log(request_id);
        assert_eq!(access["failure"], kind, "{access}");
        let warnings = self.failure_logs(request_id);
        let attempts = access["attempts"].as_u64().unwrap_or(0).max(1);
        assert_eq!(
            warnings.len() as u64,
            attempts,
            "one warning per attempt expected; got {warnings:#?}"
        );
        let warning = warnings.into_iter().next_back().unwrap_or_default();
        assert_eq!(warning["kind"], kind, "{warning}");
        assert_eq!(warning["level"], "WARN", "{warning}");
        (warning, access)
    }

    /// Replaces the config file's contents (with the same harness settings as `start`);
    /// gatehouse sees it at the next [`Gatehouse::reload`].
    pub fn rewrite_config(&self, config_toml: &str) {
        let (text, _, _) = harness_config(config_toml);
        std::fs::write(self.config.path(), text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", self.config.path().display()));
    }

    /// Writes `text` to the config file as it is, e.g. a config with errors.
    pub fn rewrite_config_raw(&self, text: &str) {
        std::fs::write(self.config.path(), text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", self.config.path().display()));
    }

    /// The config file gatehouse was started with.
    pub fn config_path(&self) -> &Path {
        self.config.path()
    }

    /// Sends SIGHUP and waits for the outcome in the log: `Ok(line)` for "config reloaded",
    /// `Err(line)` for a refusal. Only log lines after the signal count.
    pub fn reload(&self) -> Result<Value, Value> {
        let before = self.logs().len();
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-HUP", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -HUP {pid} failed");
        let outcome = self.stdout.wait_until(PATIENCE, |lines| {
            lines.iter().skip(before).find_map(|line| {
                let message = line["message"].as_str().unwrap_or_default();
                if message == "config reloaded" {
                    Some(Ok(line.clone()))
                } else if message.starts_with("reload refused") {
                    Some(Err(line.clone()))
                } else {
                    None
                }
            })
        });
        outcome.unwrap_or_else(|| {
            panic!(
                "no reload outcome logged within {PATIENCE:?}; stderr: {:#?}",
                self.stderr.snapshot()
            )
        })
    }

    /// Sends SIGTERM and waits (up to 15 s, then SIGKILL) for the exit status.
    pub fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        // `kill(1)` rather than libc::kill: the workspace forbids unsafe code.
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid} failed");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().unwrap_or_else(|e| panic!("wait: {e}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The harness's settings applied to a test config: `server.listen = ["127.0.0.1:0"]` and JSON
/// logs. Returns the TOML text, the proxy name and the proxy_status mode.
fn harness_config(config_toml: &str) -> (String, String, String) {
    let mut config: Table = config_toml
        .parse()
        .unwrap_or_else(|e| panic!("test config is not TOML: {e}"));
    let server = config
        .entry("server")
        .or_insert_with(|| Table::new().into())
        .as_table_mut()
        .unwrap_or_else(|| panic!("[server] is not a table"));
    server.insert(
        "listen".to_owned(),
        vec![toml::Value::from("127.0.0.1:0")].into(),
    );
    server.insert("log_format".to_owned(), "json".into());
    let name = server
        .get("name")
        .and_then(toml::Value::as_str)
        .unwrap_or("gatehouse")
        .to_owned();
    let proxy_status = server
        .get("proxy_status")
        .and_then(toml::Value::as_str)
        .unwrap_or("minimal")
        .to_owned();
    let text =
        toml::to_string(&config).unwrap_or_else(|e| panic!("config does not serialise: {e}"));
    (text, name, proxy_status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_with_server_tables_sections_and_route_keys() {
        let text = Config::new()
            .upstream_servers(
                "app",
                [
                    Server::new("127.0.0.1:3000"),
                    Server::new("127.0.0.1:3001")
                        .weight(3)
                        .max_connections(100)
                        .backup(),
                ],
            )
            .route(None, "/", "app")
            .route_setting("retry_non_idempotent", true)
            .route_section("cache", "mode", "full")
            .section("maintenance", "retry_after", "1m")
            .upstream_setting("app", "balance", "hash")
            .health("app", "path", "/ping")
            .health("app", "unhealthy_threshold", 2)
            .passive("app", "consecutive_failures", 5)
            .retry("app", "budget", 0.2)
            .toml();
        let config: Table = text.parse().unwrap();
        let app = &config["upstream"]["app"];
        assert_eq!(app["servers"][0].as_str(), Some("127.0.0.1:3000"));
        let second = app["servers"][1].as_table().unwrap();
        assert_eq!(second["address"].as_str(), Some("127.0.0.1:3001"));
        assert_eq!(second["weight"].as_integer(), Some(3));
        assert_eq!(second["max_connections"].as_integer(), Some(100));
        assert_eq!(second["backup"].as_bool(), Some(true));
        assert_eq!(app["balance"].as_str(), Some("hash"));
        assert_eq!(app["health"]["path"].as_str(), Some("/ping"));
        assert_eq!(app["health"]["unhealthy_threshold"].as_integer(), Some(2));
        assert_eq!(app["passive"]["consecutive_failures"].as_integer(), Some(5));
        assert_eq!(app["retry"]["budget"].as_float(), Some(0.2));
        assert_eq!(
            config["route"][0]["retry_non_idempotent"].as_bool(),
            Some(true)
        );
        assert_eq!(config["route"][0]["cache"]["mode"].as_str(), Some("full"));
        assert_eq!(config["maintenance"]["retry_after"].as_str(), Some("1m"));
    }
}
