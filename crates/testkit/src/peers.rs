//! Real nginx and HAProxy (Debian packages) run by a test: a config written into a temp
//! directory, the process started in the foreground on loopback ports, stopped by its PID when
//! dropped. Tests use them to produce genuine logs, and to check configs with `nginx -t` and
//! `haproxy -c`.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::TempFile;

/// Which peer proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    Nginx,
    Haproxy,
}

impl PeerKind {
    /// The binary: on `PATH`, else Debian's `/usr/sbin` (which a non-root `PATH` may lack).
    pub fn binary(self) -> PathBuf {
        let name = match self {
            Self::Nginx => "nginx",
            Self::Haproxy => "haproxy",
        };
        let sbin = Path::new("/usr/sbin").join(name);
        if sbin.exists() {
            sbin
        } else {
            PathBuf::from(name)
        }
    }
}

/// A running nginx or HAProxy. Its working directory (the `prefix` for nginx) is a temp
/// directory holding the config and the logs; it is removed on drop, after the process is
/// stopped.
#[derive(Debug)]
pub struct Peer {
    pub kind: PeerKind,
    child: Child,
    dir: TempFile,
    config: PathBuf,
}

impl Peer {
    /// Writes `config` to `<dir>/peer.conf` and checks it (`nginx -t` / `haproxy -c`),
    /// panicking with the peer's own words when it is refused. `{dir}` in the config is
    /// replaced by the temp directory (for log paths, pid files, includes).
    pub fn checked_config(kind: PeerKind, config: &str) -> (TempFile, PathBuf) {
        let dir = TempFile::dir(match kind {
            PeerKind::Nginx => "nginx",
            PeerKind::Haproxy => "haproxy",
        });
        let path = dir.path().join("peer.conf");
        let text = config.replace("{dir}", &dir.path().display().to_string());
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write peer config: {e}"));
        let output = check(kind, &path, dir.path());
        assert!(
            output.status.success(),
            "{kind:?} refused its config:\n{}\n--- config ---\n{config}",
            String::from_utf8_lossy(&output.stderr)
        );
        (dir, path)
    }

    /// Starts the peer in the foreground with `config` (see [`Peer::checked_config`]) and
    /// waits until `listen` accepts connections.
    pub fn start(kind: PeerKind, config: &str, listen: SocketAddr) -> Self {
        let (dir, path) = Self::checked_config(kind, config);
        let mut command = Command::new(kind.binary());
        match kind {
            PeerKind::Nginx => command
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&path)
                .arg("-g")
                .arg("daemon off; master_process off;"),
            PeerKind::Haproxy => command.arg("-db").arg("-f").arg(&path),
        };
        let child = command
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("stderr.log"))
                    .unwrap_or_else(|e| panic!("cannot create the peer's stderr file: {e}")),
            ))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {kind:?}: {e}"));
        let mut peer = Self {
            kind,
            child,
            dir,
            config: path,
        };
        peer.wait_listening(listen);
        peer
    }

    fn wait_listening(&mut self, listen: SocketAddr) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{:?} exited ({status}) before listening on {listen}:\n{}",
                    self.kind,
                    self.read("stderr.log")
                );
            }
            assert!(
                Instant::now() < deadline,
                "{:?} is not listening on {listen} after 10 s:\n{}",
                self.kind,
                self.read("stderr.log")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The temp directory (logs are written here when the config says `{dir}/...`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// A file of the peer's directory as text (empty when missing).
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `nginx -t` / `haproxy -c` on a config file; `prefix` is nginx's prefix directory.
pub fn check(kind: PeerKind, config: &Path, prefix: &Path) -> Output {
    let mut command = Command::new(kind.binary());
    match kind {
        PeerKind::Nginx => command
            .arg("-t")
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg(config)
            .arg("-g")
            .arg("daemon off;"),
        PeerKind::Haproxy => command.arg("-c").arg("-f").arg(config),
    };
    command
        .current_dir(prefix)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {kind:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::free_port;
    use std::io::{Read, Write};

    fn get(addr: SocketAddr) -> String {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut out = String::new();
        stream.read_to_string(&mut out).expect("read");
        out
    }

    #[test]
    fn nginx_starts_serves_and_logs_in_its_directory() {
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let config = format!(
            "pid {{dir}}/nginx.pid;\nerror_log {{dir}}/error.log info;\nevents {{}}\nhttp {{\n access_log {{dir}}/access.log;\n server {{ listen 127.0.0.1:{port}; return 204; }}\n}}\n"
        );
        let peer = Peer::start(PeerKind::Nginx, &config, addr);
        assert!(get(addr).starts_with("HTTP/1.1 204"));
        assert!(peer.read("access.log").contains("\"GET / HTTP/1.1\" 204"));
    }

    #[test]
    fn haproxy_starts_and_serves() {
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let config = format!(
            "defaults\n mode http\n timeout client 5s\n timeout server 5s\n timeout connect 1s\nfrontend f\n bind 127.0.0.1:{port}\n http-request return status 204\n"
        );
        let _peer = Peer::start(PeerKind::Haproxy, &config, addr);
        assert!(get(addr).starts_with("HTTP/1.1 204"));
    }
}
