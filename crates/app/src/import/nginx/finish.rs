//! Finishing an nginx import: listen addresses by role become gatehouse's listeners, TLS
//! groups and redirect listeners (or the doctor's one placeholder), and the TOML is written.

use super::Cx;
use crate::import::out::TlsOut;
use crate::import::{Imported, Mode, fallback_listener};

impl Cx<'_> {
    /// Ends the walk: settles addresses that both redirect and serve, notes nginx defaults that
    /// differ, and fills in the listeners (a throwaway `127.0.0.1:0` for the doctor).
    pub(super) fn finish(mut self) -> Imported {
        // An address both redirects and serves: gatehouse's redirect listener cannot.
        let clashing: Vec<String> = self
            .redirect
            .keys()
            .filter(|a| self.plain.contains(*a) || self.tls.contains_key(*a))
            .cloned()
            .collect();
        for addr in clashing {
            if let Some(at) = self.redirect.remove(&addr) {
                self.report.differ(
                    format!("listen {addr}"),
                    format!(
                        "the redirect at {at} shares its address with servers that pass requests on; gatehouse redirects a whole address, so it serves the routes there instead"
                    ),
                );
            }
        }
        for addr in self.tls.keys() {
            self.plain.remove(addr);
        }
        if self.out.max_request_body_size.is_none() && matches!(self.mode, Mode::Import) {
            self.report.differ(
                "client_max_body_size".to_owned(),
                "not set: nginx refuses request bodies over 1m with 413; gatehouse has no limit unless server.max_request_body_size is set".to_owned(),
            );
        }
        match self.mode {
            Mode::Doctor => self.out.listen = vec!["127.0.0.1:0".to_owned()],
            Mode::Import => {
                self.out.listen = self.plain.iter().cloned().collect();
                self.out.redirect_https = self.redirect.keys().cloned().collect();
                for (addr, certificates) in std::mem::take(&mut self.tls) {
                    if certificates.is_empty() {
                        self.report.differ(
                            format!("listen {addr} ssl"),
                            "no ssl_certificate applies to it: left out",
                        );
                        continue;
                    }
                    match self
                        .out
                        .tls
                        .iter_mut()
                        .find(|t| t.certificates == certificates)
                    {
                        Some(group) => group.listen.push(addr),
                        None => self.out.tls.push(TlsOut {
                            listen: vec![addr],
                            certificates,
                        }),
                    }
                }
                fallback_listener(&mut self.out, &mut self.report, "listen");
            }
        }
        let toml = self.out.toml(&self.report.source, "nginx");
        Imported {
            toml,
            report: self.report,
            limits: self.limits,
        }
    }
}
