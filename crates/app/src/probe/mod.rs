//! `gatehouse probe URL...`: an HTTP status checker that times each phase, follows redirects on
//! request, decodes Proxy-Status and Cache-Status into words, and names its own failures with the
//! proxy's failure kinds.

mod client;
mod report;
pub(crate) mod tlsdiag;

use std::io::{BufRead as _, IsTerminal as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use gatehouse_config::DnsConfig;
use gatehouse_proxy::upstream::dns::Dns;
use gatehouse_proxy::upstream::tls;
use http::Method;
use http::header::{HeaderName, HeaderValue};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use client::{Env, Options, UrlReport};
pub(crate) use client::{drain_body, millis};

#[derive(Debug, clap::Args)]
pub(crate) struct ProbeArgs {
    /// URLs to check (`http://` is assumed when no scheme is given).
    #[arg(value_name = "URL")]
    urls: Vec<String>,
    /// Read URLs from FILE, one per line (`-` for stdin); blank lines and `#` comments are skipped.
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    input: Option<PathBuf>,
    /// HEAD (like `curl -I`; falls back to GET when the server refuses HEAD) or GET.
    #[arg(short = 'm', long, default_value = "HEAD", value_parser = parse_method)]
    method: Method,
    /// An extra request header, `Name: value`; repeatable.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Time allowed for each request, from DNS to the end of the body.
    #[arg(short = 't', long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Follow redirects and show the chain.
    #[arg(short = 'L', long)]
    follow: bool,
    /// The longest redirect chain followed.
    #[arg(long, default_value_t = 10)]
    max_redirects: usize,
    /// URLs checked at once.
    #[arg(short = 'j', long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=1024))]
    concurrency: u16,
    /// Trust the CA certificates in this PEM file instead of the system's roots (as curl's
    /// `--cacert`), e.g. the `tls_ca_file` of an upstream.
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_method(text: &str) -> Result<Method, String> {
    match text.to_ascii_uppercase().as_str() {
        "HEAD" => Ok(Method::HEAD),
        "GET" => Ok(Method::GET),
        _ => Err("probe sends HEAD or GET".to_owned()),
    }
}

fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| "expected `Name: value`".to_owned())?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("{:?} is not a valid header name", name.trim()))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("the value of {name} is not a valid header value"))?;
    Ok((name, value))
}

/// Runs the probe; the exit status is 0 when every URL ended in 2xx/3xx, 1 when some ended in
/// 4xx/5xx, 2 when some got no usable response (or could not be read).
pub(crate) fn run(args: ProbeArgs) -> ExitCode {
    let urls = match collect_urls(&args) {
        Ok(urls) if urls.is_empty() => {
            eprintln!("gatehouse probe: no URLs given (pass URLs, or -i FILE)");
            return ExitCode::from(2);
        }
        Ok(urls) => urls,
        Err(err) => {
            eprintln!("gatehouse probe: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("gatehouse probe: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    let list_mode = args.input.is_some();
    let reports = match runtime.block_on(probe_all(&args, urls, list_mode)) {
        Ok(reports) => reports,
        Err(err) => {
            eprintln!("gatehouse probe: {err}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        let summary = report::summarize(&reports);
        let json = serde_json::json!({ "results": reports, "summary": summary });
        println!(
            "{}",
            serde_json::to_string_pretty(&json)
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        );
    } else if reports.len() > 1 {
        // The blocks or rows were printed as they came; the summary closes the run.
        print!("\n{}", report::summary_text(&report::summarize(&reports)));
    }
    report::exit_code(&reports)
}

async fn probe_all(
    args: &ProbeArgs,
    urls: Vec<String>,
    list_mode: bool,
) -> Result<Vec<UrlReport>, String> {
    let roots = match &args.cacert {
        Some(path) => read_ca_file(path)?,
        None => {
            // Unreadable system certificates are not fatal: an https URL that needs them fails
            // with tls_certificate_error, which says so.
            let (roots, _unreadable) = tls::system_roots();
            roots
        }
    };
    let roots = Arc::new(roots);
    let tls = tls::client_config((*roots).clone(), &[b"http/1.1"])
        .map_err(|err| format!("TLS is unavailable: {err}"))?;
    let env = Env {
        dns: Dns::new(&DnsConfig {
            nameservers: Vec::new(),
            timeout: args.timeout,
        }),
        tls,
        roots,
        cacert: args.cacert.clone(),
    };
    let options = Options {
        method: args.method.clone(),
        headers: args.headers.clone(),
        timeout: args.timeout,
        follow: args.follow,
        max_redirects: args.max_redirects,
    };
    let progress = progress_bar(urls.len());
    let mut results = futures_util::stream::iter(urls)
        .map(|url| {
            let env = &env;
            let options = &options;
            async move { client::probe(&url, options, env).await }
        })
        .buffered(usize::from(args.concurrency));
    let mut reports = Vec::new();
    while let Some(report) = results.next().await {
        progress.inc(1);
        if !args.json {
            let text = if list_mode {
                report::row(&report)
            } else {
                report::detailed(&report)
            };
            progress.suspend(|| println!("{}", text.trim_end()));
        }
        reports.push(report);
    }
    progress.finish_and_clear();
    Ok(reports)
}

/// The CA certificates of a PEM file, for `--cacert`.
fn read_ca_file(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read --cacert {shown}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--cacert {shown} is not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err(format!("--cacert {shown} holds no certificate"));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("--cacert {shown}: a certificate is not a usable CA: {e}"))?;
    }
    Ok(roots)
}

/// A progress bar on stderr, only when it is a terminal and there is more than one URL.
fn progress_bar(count: usize) -> ProgressBar {
    if count < 2 || !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(Some(count as u64), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(count as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} URLs  {elapsed}") {
        bar.set_style(style);
    }
    bar
}

fn collect_urls(args: &ProbeArgs) -> Result<Vec<String>, String> {
    let mut urls = args.urls.clone();
    if let Some(path) = &args.input {
        let lines: Vec<String> = if path.as_os_str() == "-" {
            std::io::stdin()
                .lock()
                .lines()
                .collect::<Result<_, _>>()
                .map_err(|e| format!("cannot read URLs from stdin: {e}"))?
        } else {
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                .lines()
                .map(str::to_owned)
                .collect()
        };
        urls.extend(
            lines
                .iter()
                .map(|line| line.trim())
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_owned),
        );
    }
    Ok(urls)
}
