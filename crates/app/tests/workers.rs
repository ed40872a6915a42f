//! Per-core workers (the default with more than one worker): every worker accepts on its own
//! `SO_REUSEPORT` socket and serves the connections it accepted, and sharing a port between
//! workers never lets a second process take a port gatehouse is listening on.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use gatehouse_testkit::{Config, Gatehouse, Upstream};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

/// On-CPU nanoseconds of each `gatehouse-worker-*` thread of `pid`, by thread name.
fn worker_cpu_ns(pid: u32) -> Vec<(String, u64)> {
    let mut workers = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let name = name.trim().to_owned();
        if !name.starts_with("gatehouse-worke") {
            continue;
        }
        let schedstat = std::fs::read_to_string(dir.join("schedstat")).unwrap();
        let on_cpu = schedstat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap();
        workers.push((format!("{name}@{}", dir.display()), on_cpu));
    }
    workers.sort();
    workers
}

/// One `GET /` on a new connection; the status line.
fn get(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: workers.test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response);
    response.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn every_worker_serves_a_share_of_the_connections() {
    let upstream = Upstream::hello();
    let gatehouse = Gatehouse::start(
        Path::new(BIN),
        &Config::proxy_to([upstream.addr()])
            .server("workers", 2)
            .toml(),
    );
    let listening = gatehouse.wait_for_log(
        |line| line["message"] == "listening",
        Duration::from_secs(5),
    );
    assert_eq!(
        listening["sockets"], 2,
        "one socket per worker: {listening}"
    );
    let before = worker_cpu_ns(gatehouse.pid());
    assert_eq!(before.len(), 2, "two worker threads: {before:?}");
    for _ in 0..300 {
        assert_eq!(get(gatehouse.addr()), "HTTP/1.1 200 OK");
    }
    let after = worker_cpu_ns(gatehouse.pid());
    let spent: Vec<u64> = before
        .iter()
        .zip(&after)
        .map(|((_, b), (_, a))| a - b)
        .collect();
    let total: u64 = spent.iter().sum();
    // The kernel hashes each connection's addresses to one of the sockets: over 300 connections
    // each worker gets about half; a worker with under a tenth of the work got none at all.
    for share in &spent {
        assert!(
            *share * 10 > total,
            "each worker served connections: {spent:?} ns on CPU"
        );
    }
}

#[test]
fn a_second_process_cannot_share_the_port_of_a_gatehouse_with_workers() {
    let upstream = Upstream::hello();
    let first = Gatehouse::start(
        Path::new(BIN),
        &Config::proxy_to([upstream.addr()])
            .server("workers", 2)
            .toml(),
    );
    let port = first.addr().port();
    let path = std::env::temp_dir().join(format!(
        "gatehouse-workers-{}-second.toml",
        std::process::id()
    ));
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = [\"127.0.0.1:{port}\"]\nworkers = 2\n[[route]]\nupstream = \"app\"\n[upstream.app]\nservers = [\"{}\"]\n",
            upstream.addr()
        ),
    )
    .unwrap();
    let second = Command::new(BIN)
        .args(["run", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(second.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")) && stderr.contains("in use"),
        "{stderr}"
    );
    // The first one kept its port and serves.
    assert_eq!(get(first.addr()), "HTTP/1.1 200 OK");
}

#[test]
fn work_stealing_runs_one_shared_runtime_without_worker_threads() {
    let upstream = Upstream::hello();
    let gatehouse = Gatehouse::start(
        Path::new(BIN),
        &Config::proxy_to([upstream.addr()])
            .server("workers", 2)
            .server("work_stealing", true)
            .toml(),
    );
    let listening = gatehouse.wait_for_log(
        |line| line["message"] == "listening",
        Duration::from_secs(5),
    );
    assert_eq!(listening["sockets"], 1, "{listening}");
    assert!(worker_cpu_ns(gatehouse.pid()).is_empty());
    for _ in 0..20 {
        assert_eq!(get(gatehouse.addr()), "HTTP/1.1 200 OK");
    }
}
