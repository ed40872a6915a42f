//! `gatehouse import nginx|haproxy FILE`: writes a gatehouse config for the reverse-proxy part
//! of another proxy's config, and a report of each directive mapped (file:line → gatehouse
//! key) and each one not mapped (file:line and why), plus where the two proxies behave
//! differently (defaults that differ, semantics gatehouse does not have).
//!
//! The config written is validated with gatehouse's own loader first: an import that would not
//! pass `gatehouse check` is refused, with the loader's words.
//!
//! The same conversion, with the foreign proxy's limits kept, serves `gatehouse doctor --nginx`
//! and `--haproxy` ([`convert`] with [`Mode::Doctor`]).

mod haproxy;
mod nginx;
mod out;
mod units;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use crate::naming::PoolLimits;

/// Which proxy's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Proxy {
    Nginx,
    Haproxy,
}

impl Proxy {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Nginx => "nginx",
            Self::Haproxy => "HAProxy",
        }
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// The proxy whose config FILE is.
    #[arg(value_enum)]
    proxy: Proxy,
    /// The config file (nginx: the main file, e.g. /etc/nginx/nginx.conf, or a site file).
    file: PathBuf,
    /// Write the gatehouse config here instead of stdout.
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,
    /// Print the report as JSON (on stderr) instead of text.
    #[arg(long)]
    report_json: bool,
    /// nginx's prefix: where relative `include` and certificate paths are resolved (default:
    /// the directory of FILE, as `nginx -c FILE` does).
    #[arg(long, value_name = "DIR")]
    prefix: Option<PathBuf>,
}

/// What the conversion is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A config to run: listeners, TLS, redirects.
    Import,
    /// A config for the doctor: the upstreams and routes only (listeners would clash with the
    /// running proxy), and the foreign limits to check them with.
    Doctor,
}

/// A directive carried over to a gatehouse key.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Mapped {
    /// `file:line`.
    pub(crate) at: String,
    pub(crate) directive: String,
    /// The gatehouse key(s), or `(built in)` for what gatehouse does without a key.
    pub(crate) key: String,
    /// How the behaviour differs, where it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<String>,
}

/// A directive not carried over.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Unmapped {
    pub(crate) at: String,
    pub(crate) directive: String,
    pub(crate) why: String,
}

/// A difference in behaviour that no single directive carries (a default).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Difference {
    /// Where it applies (`upstream app (site.conf:3)`).
    pub(crate) about: String,
    pub(crate) note: String,
}

/// The import report.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Report {
    pub(crate) source: String,
    pub(crate) proxy: String,
    pub(crate) mapped: Vec<Mapped>,
    pub(crate) unmapped: Vec<Unmapped>,
    pub(crate) differences: Vec<Difference>,
    /// Set when the config was refused: the loader's diagnostics.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) errors: Vec<String>,
}

impl Report {
    /// An empty report on `file`, a config of `proxy` (`nginx`, `HAProxy`).
    pub(crate) fn new(file: &Path, proxy: &str) -> Self {
        Self {
            source: file.display().to_string(),
            proxy: proxy.to_owned(),
            ..Self::default()
        }
    }

    pub(crate) fn map(&mut self, at: impl ToString, directive: String, key: impl Into<String>) {
        self.mapped.push(Mapped {
            at: at.to_string(),
            directive,
            key: key.into(),
            note: None,
        });
    }

    pub(crate) fn map_note(
        &mut self,
        at: impl ToString,
        directive: String,
        key: impl Into<String>,
        note: impl Into<String>,
    ) {
        self.mapped.push(Mapped {
            at: at.to_string(),
            directive,
            key: key.into(),
            note: Some(note.into()),
        });
    }

    pub(crate) fn unmapped(
        &mut self,
        at: impl ToString,
        directive: String,
        why: impl Into<String>,
    ) {
        let at = at.to_string();
        // A directive inherited by several blocks is reported once.
        if self
            .unmapped
            .iter()
            .any(|u| u.at == at && u.directive == directive)
        {
            return;
        }
        self.unmapped.push(Unmapped {
            at,
            directive,
            why: why.into(),
        });
    }

    pub(crate) fn differ(&mut self, about: impl Into<String>, note: impl Into<String>) {
        self.differences.push(Difference {
            about: about.into(),
            note: note.into(),
        });
    }

    /// The report as text.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "gatehouse import: {} config {}: {} directive(s) mapped, {} not mapped, {} difference(s) in behaviour",
            self.proxy,
            self.source,
            self.mapped.len(),
            self.unmapped.len(),
            self.differences.len()
        );
        if !self.mapped.is_empty() {
            out.push_str("\nmapped\n");
            for m in &self.mapped {
                let _ = writeln!(out, "  {}  {}  →  {}", m.at, m.directive, m.key);
                if let Some(note) = &m.note {
                    let _ = writeln!(out, "      note: {note}");
                }
            }
        }
        if !self.unmapped.is_empty() {
            out.push_str("\nnot mapped\n");
            for u in &self.unmapped {
                let _ = writeln!(out, "  {}  {}\n      why: {}", u.at, u.directive, u.why);
            }
        }
        if !self.differences.is_empty() {
            out.push_str("\nbehaves differently\n");
            for d in &self.differences {
                let _ = writeln!(out, "  {}: {}", d.about, d.note);
            }
        }
        if !self.errors.is_empty() {
            out.push_str("\nrefused: the gatehouse config would not pass `gatehouse check`\n");
            for e in &self.errors {
                let _ = writeln!(out, "  {e}");
            }
        }
        out
    }
}

/// Where no listener could be imported (`what`: the foreign proxy's directive for one, `listen`
/// or `bind`): gatehouse listens on 127.0.0.1:8080, and the report says so.
fn fallback_listener(out: &mut out::Out, report: &mut Report, what: &str) {
    if out.listen.is_empty() && out.tls.is_empty() && out.redirect_https.is_empty() {
        out.listen = vec!["127.0.0.1:8080".to_owned()];
        report.differ(
            "listeners",
            format!("no {what} could be imported: gatehouse listens on 127.0.0.1:8080"),
        );
    }
}

/// A converted config: the TOML, the report, and the foreign limits per upstream.
#[derive(Debug)]
pub(crate) struct Imported {
    pub(crate) toml: String,
    pub(crate) report: Report,
    pub(crate) limits: BTreeMap<String, PoolLimits>,
}

/// Reads and converts a foreign config. `Err` when it cannot be read or parsed.
pub(crate) fn convert(
    proxy: Proxy,
    file: &Path,
    prefix: Option<&Path>,
    mode: Mode,
) -> Result<Imported, crate::foreign::ParseError> {
    match proxy {
        Proxy::Nginx => {
            let directives = crate::foreign::nginx::parse_file(file, prefix)?;
            let base = prefix.map_or_else(
                || {
                    file.parent()
                        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
                },
                Path::to_path_buf,
            );
            Ok(nginx::convert(&directives, file, &base, mode))
        }
        Proxy::Haproxy => {
            let sections = crate::foreign::haproxy::parse_file(file)?;
            let base = file
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            Ok(haproxy::convert(&sections, file, &base, mode))
        }
    }
}

/// The name the validated TOML is given in diagnostics.
fn output_name(args: &ImportArgs) -> String {
    args.output.as_ref().map_or_else(
        || "<imported config>".to_owned(),
        |p| p.display().to_string(),
    )
}

/// `gatehouse import`: 0 when the config was written, 1 when it could not be read or the
/// result does not validate.
pub(crate) fn run(args: &ImportArgs) -> ExitCode {
    let mut imported = match convert(args.proxy, &args.file, args.prefix.as_deref(), Mode::Import) {
        Ok(imported) => imported,
        Err(err) => {
            eprintln!(
                "gatehouse import: {} config not read: {err}",
                args.proxy.name()
            );
            return ExitCode::FAILURE;
        }
    };
    // Relative paths in the output are relative to the output's directory; the importer
    // writes absolute ones, so the name only matters for the diagnostics.
    let valid = match gatehouse_config::parse(&output_name(args), &imported.toml) {
        Ok(_) => true,
        Err(errors) => {
            imported.report.errors = errors.diagnostics.iter().map(ToString::to_string).collect();
            false
        }
    };
    if args.report_json {
        match serde_json::to_string_pretty(&imported.report) {
            Ok(json) => eprintln!("{json}"),
            Err(err) => eprintln!("gatehouse import: cannot write JSON: {err}"),
        }
    } else {
        eprint!("{}", imported.report.text());
    }
    if !valid {
        eprintln!("gatehouse import: not written: the converted config does not validate (above)");
        return ExitCode::FAILURE;
    }
    match &args.output {
        Some(path) => {
            if let Err(err) = std::fs::write(path, &imported.toml) {
                eprintln!("gatehouse import: cannot write {}: {err}", path.display());
                return ExitCode::FAILURE;
            }
            if !args.report_json {
                eprintln!("gatehouse import: wrote {}", path.display());
            }
        }
        None => print!("{}", imported.toml),
    }
    ExitCode::SUCCESS
}
