//! `doctor`'s look at automatic certificates: for each `acme = true` setup, the certificate
//! kept in `state_dir` (what `gatehouse run` serves at start): none yet, expired, or past the
//! point where it should have been renewed (a third of its lifetime left), which means orders
//! are failing. Reads files only; it does not talk to the CA.

use std::path::Path;
use std::time::SystemTime;

use gatehouse_config::Config;
use gatehouse_proxy::acme::store;

const DAY: u64 = 86_400;

/// The findings for `config`'s `[acme]`, as doctor's config smells.
pub(super) fn acme_smells(config: &Config) -> Vec<String> {
    let Some(acme) = &config.acme else {
        return Vec::new();
    };
    let state_dir = config
        .server
        .state_dir
        .clone()
        .unwrap_or_else(gatehouse_proxy::cache::robots::default_state_dir);
    kept_certificate(&state_dir, &acme.domains, &acme.directory)
        .into_iter()
        .collect()
}

fn kept_certificate(state_dir: &Path, domains: &[String], directory: &str) -> Option<String> {
    let dir = state_dir.join("acme");
    let names = domains.join(", ");
    let kept = match store::load(&dir, domains) {
        Err(problem) => {
            return Some(format!(
                "acme: the kept certificate cannot be served ({problem}); gatehouse orders a new one at start from {directory}"
            ));
        }
        Ok(None) => {
            return Some(format!(
                "acme: no certificate for {names} in {} yet: gatehouse orders one from {directory} when it starts; until the CA has validated, HTTPS clients for these names get no certificate (the CA must reach this host on port 80 for http-01 or 443 for tls-alpn-01)",
                dir.display()
            ));
        }
        Ok(Some(kept)) => kept,
    };
    let now = SystemTime::now();
    let left = kept
        .not_after
        .duration_since(now)
        .unwrap_or_default()
        .as_secs();
    let renew_at = store::renew_at(&kept);
    if renew_at > now {
        return None;
    }
    let overdue = now.duration_since(renew_at).unwrap_or_default().as_secs();
    Some(format!(
        "acme: the certificate for {names} expires in {} days and its renewal is {} days overdue: orders to {directory} are failing; gatehouse's log (\"ACME order failed\") and the Certificates section of /status say why (challenge not reachable on port 80/443, DNS not pointing here, or the CA's rate limit)",
        left / DAY,
        overdue / DAY
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_kept_certificate_is_a_finding_naming_the_domains_and_the_ports() {
        let dir =
            std::env::temp_dir().join(format!("gatehouse-doctor-acme-{}", std::process::id()));
        let found = kept_certificate(&dir, &["a.test".to_owned()], "https://ca.test/dir")
            .unwrap_or_default();
        assert!(found.contains("no certificate for a.test"), "{found}");
        assert!(found.contains("port 80"), "{found}");
    }
}
