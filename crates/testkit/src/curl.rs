//! The real `curl`, for what a common client makes of gatehouse's responses.

use std::process::Command;

use crate::http1::{self, Headers};
use crate::temp::TempFile;

/// What one `curl` run saw.
#[derive(Debug, Clone)]
pub struct CurlResult {
    /// curl's exit code: 0 on success, 18 for a transfer closed short of its length, 28 on
    /// timeout, 56 for a failure receiving data (e.g. a chunked body cut off).
    pub exit_code: Option<i32>,
    /// Every response head received, interim (1xx) ones first: status and headers.
    pub heads: Vec<(u16, Headers)>,
    /// The body curl wrote out.
    pub body: Vec<u8>,
    pub stderr: String,
}

impl CurlResult {
    /// The final status (0 if no head arrived).
    pub fn status(&self) -> u16 {
        self.heads.last().map_or(0, |(status, _)| *status)
    }

    /// The final response's headers.
    pub fn headers(&self) -> Headers {
        self.heads
            .last()
            .map(|(_, h)| h.clone())
            .unwrap_or_default()
    }

    /// Statuses of the interim responses.
    pub fn interim(&self) -> Vec<u16> {
        self.heads
            .iter()
            .map(|(s, _)| *s)
            .filter(|s| (100..200).contains(s))
            .collect()
    }
}

/// Runs `curl -sS --max-time 10 -D - -o BODYFILE ARGS...`.
pub fn curl(args: &[&str]) -> CurlResult {
    let body_file = TempFile::new("gatehouse-curl-body", ".bin");
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D", "-", "-o"])
        .arg(body_file.path())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl: {e}"));
    let dump = output.stdout;
    let mut heads = Vec::new();
    let mut rest: &[u8] = &dump;
    while let Ok(Some(head)) = http1::parse_response_head(rest) {
        heads.push((head.status, head.headers));
        rest = &rest[head.len..];
    }
    CurlResult {
        exit_code: output.status.code(),
        heads,
        body: std::fs::read(body_file.path()).unwrap_or_default(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
