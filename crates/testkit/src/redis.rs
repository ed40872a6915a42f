//! A real `redis-server` (Debian's package) run by a test: on a free loopback port, without
//! persistence (`--save '' --appendonly no`), its working directory a temp directory; stopped
//! by its PID when dropped. [`RedisServer::stop`] and [`RedisServer::restart`] (same port)
//! let a test take the store away from gatehouse and give it back.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TempFile;
use crate::free_port;

/// A running (or stopped) `redis-server`.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: TempFile,
    /// More `redis-server` arguments (e.g. `--requirepass`).
    extra: Vec<String>,
    /// `AUTH` sent before each [`RedisServer::command`].
    password: Option<String>,
}

impl RedisServer {
    /// The binary: on `PATH`, else Debian's `/usr/bin/redis-server`.
    pub fn binary() -> PathBuf {
        let debian = PathBuf::from("/usr/bin/redis-server");
        if debian.exists() {
            debian
        } else {
            PathBuf::from("redis-server")
        }
    }

    /// Starts a server on a free loopback port and waits until it answers `PING`.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts a server that wants `AUTH password` (`--requirepass`).
    pub fn start_with(password: Option<&str>) -> Self {
        let mut server = Self {
            child: None,
            port: free_port(),
            dir: TempFile::dir("redis"),
            extra: password
                .map(|p| vec!["--requirepass".to_owned(), p.to_owned()])
                .unwrap_or_default(),
            password: password.map(str::to_owned),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("redis.log"))
            .unwrap_or_else(|e| panic!("cannot create redis.log: {e}"));
        let child = Command::new(Self::binary())
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                log.try_clone().unwrap_or_else(|e| panic!("{e}")),
            ))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start redis-server: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.command(&["PING"]).is_some_and(|r| r.contains("+PONG")) {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("redis-server exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "redis-server does not answer PING on port {} after 10 s:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    /// `redis://127.0.0.1:PORT/0`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL, by its PID) and waits for it: the store is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // A paused server is killed all the same (SIGKILL needs no CONT).
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (with no data: nothing is persisted).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Freezes the server (SIGSTOP): connections stay open and are accepted, but nothing is
    /// answered, like a server stuck or overloaded.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("redis-server is not running"));
        let status = Command::new("kill")
            .arg(signal)
            .arg(pid.to_string())
            .status()
            .unwrap_or_else(|e| panic!("kill {signal} {pid}: {e}"));
        assert!(status.success(), "kill {signal} {pid}: {status}");
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends one command on a new connection (after `AUTH` when the server wants a password)
    /// and returns the raw reply (the `AUTH` reply first), or `None` when the server does not
    /// answer within a second.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut stream =
            TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        let mut request = String::new();
        let mut encode = |args: &[&str]| {
            request.push_str(&format!("*{}\r\n", args.len()));
            for arg in args {
                request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
            }
        };
        if let Some(password) = &self.password {
            encode(&["AUTH", password]);
        }
        encode(args);
        stream.write_all(request.as_bytes()).ok()?;
        let mut reply = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        // Until a reply to each command sent has arrived (one line each suffices here).
        let wanted = 1 + usize::from(self.password.is_some());
        while reply.iter().filter(|b| **b == b'\n').count() < wanted
            && std::time::Instant::now() < deadline
        {
            let n = stream.read(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&chunk[..n]);
        }
        (!reply.is_empty()).then(|| String::from_utf8_lossy(&reply).into_owned())
    }

    /// The server's log (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
