//! The Redis (or Valkey) store: every decision is one Lua script run atomically on the server,
//! with the server's clock, so any number of gatehouse instances using one Redis enforce one
//! limit. Keys expire on their own (`PX`) once their TAT has passed.
//!
//! One connection per store, owned by one task on the runtime that built the store (the
//! workers reach it through a channel, which crosses runtimes). Decisions waiting at once are
//! pipelined: written together, answered in order. The script is loaded once per connection and
//! run with `EVALSHA`; a `NOSCRIPT` answer (the server lost its scripts) is retried with `EVAL`.
//!
//! A connection that fails, times out or says something malformed is dropped and made again,
//! with a backoff of 50 ms doubling up to 2 s; meanwhile decisions fail at once (the caller
//! fails open or closed, see `limits.fail`) instead of waiting. An idle connection is pinged
//! every second, so the status page and `gatehouse_limit_store_up` follow the server.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use gatehouse_config::RedisAddress;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::gcra::{Gcra, Verdict};
use super::resp::{self, Reply};

/// GCRA (see `gcra.rs`, which does the same in Rust) on the server's clock, in microseconds.
/// `KEYS[1]`: the key; `ARGV`: interval, tolerance. Returns `{allowed, remaining or retry
/// after, reset}`. The TAT is written with `%.0f`: Lua's own number format would round it.
/// `replicate_commands` lets Redis 3.2 to 4 write after reading `TIME` (from 5 on, and in
/// Valkey, it is the default and the call a no-op).
pub const SCRIPT: &str = r"if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local ahead = tat + interval - now
if ahead > tolerance then
  return {0, ahead - tolerance, tat - now}
end
redis.call('SET', KEYS[1], string.format('%.0f', tat + interval), 'PX', math.ceil(ahead / 1000))
return {1, math.floor((tolerance - ahead) / interval), ahead}
";

/// Decisions queued for the connection beyond this fail at once (the server is too slow).
const QUEUE: usize = 1024;
/// Decisions written in one go.
const BATCH: usize = 64;
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const PING_EVERY: Duration = Duration::from_secs(1);

/// Why a decision did not come from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// No connection (refused, reset, or backing off before the next try).
    Unreachable,
    /// No answer within `limits.timeout`, or too many decisions already waiting.
    Timeout,
    /// The server answered with an error or something that is not the script's reply.
    Reply,
}

impl StoreError {
    /// The `reason` label of `gatehouse_limit_store_errors_total`.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::Unreachable => "unreachable",
            Self::Timeout => "timeout",
            Self::Reply => "reply",
        }
    }
}

/// What the status page and the metrics show of the store.
#[derive(Debug, Default)]
pub struct StoreHealth {
    up: AtomicBool,
    /// Decisions that failed, since start.
    pub failed: AtomicU64,
    last_error: Mutex<Option<(SystemTime, String)>>,
    /// Seconds since the epoch of the last "decisions are failing" warning (one per 10 s).
    last_warning: AtomicU64,
}

impl StoreHealth {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn last_error(&self) -> Option<(SystemTime, String)> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn note_error(&self, error: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((SystemTime::now(), error));
    }

    /// Whether this failed decision should be logged: the first in each 10 seconds.
    pub fn warn_now(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last_warning.load(Ordering::Relaxed);
        now >= last + 10
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }
}

struct Job {
    key: Vec<u8>,
    gcra: Gcra,
    reply: oneshot::Sender<Result<Verdict, StoreError>>,
}

/// A Redis server holding the counters, and the connection to it.
#[derive(Debug)]
pub struct RedisStore {
    pub address: RedisAddress,
    jobs: mpsc::Sender<Job>,
    pub health: Arc<StoreHealth>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("gcra", &self.gcra)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The store and its connection task, spawned on the current runtime (the one that
    /// builds snapshots). Without a runtime, every decision fails as unreachable.
    pub fn start(address: RedisAddress, io_timeout: Duration) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let health = Arc::new(StoreHealth::default());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(connection_task(
                address.clone(),
                queue,
                Arc::clone(&health),
                io_timeout,
            ));
        }
        Self {
            address,
            jobs,
            health,
        }
    }

    /// Decides one request of `key`, waiting at most `timeout`.
    pub async fn decide(
        &self,
        key: Vec<u8>,
        gcra: Gcra,
        timeout: Duration,
    ) -> Result<Verdict, StoreError> {
        if !self.health.is_up() {
            return Err(StoreError::Unreachable);
        }
        let (reply, answer) = oneshot::channel();
        self.jobs
            .try_send(Job { key, gcra, reply })
            .map_err(|_| StoreError::Timeout)?;
        match tokio::time::timeout(timeout, answer).await {
            Err(_) => Err(StoreError::Timeout),
            Ok(Err(_)) => Err(StoreError::Unreachable),
            Ok(Ok(result)) => result,
        }
    }
}

/// Connects, serves, and reconnects with backoff, until the store is dropped.
async fn connection_task(
    address: RedisAddress,
    mut queue: mpsc::Receiver<Job>,
    health: Arc<StoreHealth>,
    io_timeout: Duration,
) {
    let mut backoff = FIRST_BACKOFF;
    let mut was_up = None;
    loop {
        let error = match Connection::open(&address, io_timeout).await {
            Ok(mut conn) => {
                health.up.store(true, Ordering::Relaxed);
                if was_up != Some(true) {
                    tracing::info!(target: "gatehouse::limit", store = %address, "limit store connected");
                }
                was_up = Some(true);
                backoff = FIRST_BACKOFF;
                match conn.serve(&mut queue).await {
                    Ok(()) => return,
                    Err(error) => error,
                }
            }
            Err(error) => error,
        };
        health.up.store(false, Ordering::Relaxed);
        if was_up != Some(false) {
            tracing::warn!(
                target: "gatehouse::limit",
                store = %address,
                %error,
                "limit store unreachable; reconnecting with backoff (requests on limited routes fail open or closed as limits.fail says)"
            );
        }
        was_up = Some(false);
        health.note_error(error);
        let pause = tokio::time::sleep(backoff);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                () = &mut pause => break,
                job = queue.recv() => match job {
                    Some(job) => { let _ = job.reply.send(Err(StoreError::Unreachable)); }
                    None => return,
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    io_timeout: Duration,
    sha: String,
}

impl Connection {
    async fn open(address: &RedisAddress, io_timeout: Duration) -> Result<Self, String> {
        let target = (address.host.as_str(), address.port);
        let stream = tokio::time::timeout(io_timeout, TcpStream::connect(target))
            .await
            .map_err(|_| format!("connect timed out after {io_timeout:?}"))?
            .map_err(|err| format!("connect: {err}"))?;
        let _ = stream.set_nodelay(true);
        let mut conn = Self {
            stream,
            buf: Vec::with_capacity(4096),
            io_timeout,
            sha: String::new(),
        };
        if let Some(password) = &address.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &address.username {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            conn.expect_ok(&args, "AUTH").await?;
        }
        if address.db != 0 {
            let db = address.db.to_string();
            conn.expect_ok(&[b"SELECT", db.as_bytes()], "SELECT")
                .await?;
        }
        match conn
            .command(&[b"SCRIPT", b"LOAD", SCRIPT.as_bytes()])
            .await?
        {
            Reply::Bulk(Some(sha)) => conn.sha = String::from_utf8_lossy(&sha).into_owned(),
            other => return Err(format!("SCRIPT LOAD answered {other:?}")),
        }
        Ok(conn)
    }

    async fn expect_ok(&mut self, args: &[&[u8]], what: &str) -> Result<(), String> {
        match self.command(args).await? {
            Reply::Status(_) => Ok(()),
            Reply::Error(error) => Err(format!("{what}: {error}")),
            other => Err(format!("{what} answered {other:?}")),
        }
    }

    async fn command(&mut self, args: &[&[u8]]) -> Result<Reply, String> {
        let mut out = Vec::new();
        resp::encode(&mut out, args);
        self.write(&out).await?;
        self.read().await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        tokio::time::timeout(self.io_timeout, self.stream.write_all(bytes))
            .await
            .map_err(|_| format!("write timed out after {:?}", self.io_timeout))?
            .map_err(|err| format!("write: {err}"))
    }

    /// The next reply, within the I/O timeout.
    async fn read(&mut self) -> Result<Reply, String> {
        let deadline = tokio::time::Instant::now() + self.io_timeout;
        loop {
            if let Some((reply, used)) = resp::parse(&self.buf).map_err(|e| e.to_string())? {
                self.buf.drain(..used);
                return Ok(reply);
            }
            let mut chunk = [0u8; 4096];
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut chunk))
                .await
                .map_err(|_| format!("no reply within {:?}", self.io_timeout))?
                .map_err(|err| format!("read: {err}"))?;
            if read == 0 {
                return Err("the server closed the connection".into());
            }
            self.buf.extend_from_slice(&chunk[..read]);
        }
    }

    /// Answers decisions until the queue closes (`Ok`) or the connection fails (`Err`; the
    /// decisions in hand are answered as unreachable).
    async fn serve(&mut self, queue: &mut mpsc::Receiver<Job>) -> Result<(), String> {
        loop {
            let first = tokio::select! {
                job = queue.recv() => match job {
                    Some(job) => job,
                    None => return Ok(()),
                },
                () = tokio::time::sleep(PING_EVERY) => {
                    match self.command(&[b"PING"]).await? {
                        Reply::Status(_) => continue,
                        other => return Err(format!("PING answered {other:?}")),
                    }
                }
            };
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            // Decisions whose caller gave up (timed out) are not sent.
            batch.retain(|job| !job.reply.is_closed());
            if batch.is_empty() {
                continue;
            }
            if let Err(error) = self.run_batch(&mut batch).await {
                for job in batch {
                    let _ = job.reply.send(Err(StoreError::Unreachable));
                }
                return Err(error);
            }
        }
    }

    /// One pipelined round: every job's EVALSHA, then the replies in order; the jobs answered
    /// are taken out of `batch`.
    async fn run_batch(&mut self, batch: &mut Vec<Job>) -> Result<(), String> {
        let mut out = Vec::with_capacity(batch.len() * 96);
        for job in batch.iter() {
            let interval = job.gcra.interval.to_string();
            let tolerance = job.gcra.tolerance.to_string();
            resp::encode(
                &mut out,
                &[
                    b"EVALSHA",
                    self.sha.as_bytes(),
                    b"1",
                    &job.key,
                    interval.as_bytes(),
                    tolerance.as_bytes(),
                ],
            );
        }
        self.write(&out).await?;
        let mut replies = Vec::with_capacity(batch.len());
        for _ in 0..batch.len() {
            replies.push(self.read().await?);
        }
        for (job, reply) in batch.drain(..).zip(replies) {
            let reply = match reply {
                Reply::Error(error) if error.starts_with("NOSCRIPT") => {
                    let interval = job.gcra.interval.to_string();
                    let tolerance = job.gcra.tolerance.to_string();
                    let args: [&[u8]; 6] = [
                        b"EVAL",
                        SCRIPT.as_bytes(),
                        b"1",
                        &job.key,
                        interval.as_bytes(),
                        tolerance.as_bytes(),
                    ];
                    match self.command(&args).await {
                        Ok(reply) => reply,
                        Err(error) => {
                            let _ = job.reply.send(Err(StoreError::Unreachable));
                            return Err(error);
                        }
                    }
                }
                reply => reply,
            };
            let _ = job.reply.send(verdict(&reply).ok_or(StoreError::Reply));
        }
        Ok(())
    }
}

/// The script's reply as a verdict; `None` for anything else (an error reply, a wrong shape).
pub fn verdict(reply: &Reply) -> Option<Verdict> {
    let Reply::Array(Some(items)) = reply else {
        return None;
    };
    let [Reply::Int(allowed), Reply::Int(a), Reply::Int(reset)] = items.as_slice() else {
        return None;
    };
    let a = u64::try_from(*a).ok()?;
    let reset = u64::try_from(*reset).ok()?;
    match allowed {
        1 => Some(Verdict::Allow {
            remaining: a,
            reset,
        }),
        0 => Some(Verdict::Deny {
            retry_after: a,
            reset,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
