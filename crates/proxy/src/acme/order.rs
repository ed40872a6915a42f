//! One conversation with the CA (RFC 8555 §7): the account (created once, its credentials kept
//! in `state_dir`), then an order for the configured names: each authorization answered with
//! the first challenge type of `challenges` the CA offers, the order finalized with a new
//! ECDSA P-256 key, the chain fetched. Challenges are withdrawn whatever the outcome.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use gatehouse_config::{AcmeChallenge, AcmeConfig};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};

use super::{AcmeState, challenge, store};

/// How long the CA gets to validate and to issue.
const ORDER_TIMEOUT: Duration = Duration::from_secs(90);

/// Why an order failed, with what the CA said about retrying.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct OrderError {
    pub message: String,
    /// The CA's Retry-After, or its rate limit (RFC 8555 §6.6).
    pub retry_after: Option<Duration>,
    pub rate_limited: bool,
    /// The CA no longer knows the stored account (a test CA restarted): make a new one.
    pub account_gone: bool,
}

impl OrderError {
    fn new(context: &str, err: &instant_acme::Error) -> Self {
        let (mut rate_limited, mut account_gone) = (false, false);
        let mut retry_after = None;
        match err {
            instant_acme::Error::Api(problem) => {
                let kind = problem.r#type.as_deref().unwrap_or_default();
                rate_limited = kind.ends_with(":rateLimited");
                account_gone = kind.ends_with(":accountDoesNotExist");
            }
            instant_acme::Error::Timeout(Some(at)) => {
                retry_after = Some(at.saturating_duration_since(Instant::now()));
            }
            _ => {}
        }
        Self {
            message: format!("{context}: {err}"),
            retry_after,
            rate_limited,
            account_gone,
        }
    }

    pub fn plain_message(message: String) -> Self {
        Self::plain(message)
    }

    fn plain(message: String) -> Self {
        Self {
            message,
            retry_after: None,
            rate_limited: false,
            account_gone: false,
        }
    }
}

/// The account for `config.directory`: restored from `dir` when kept there, else created and
/// kept (0600). `fresh` forgets the kept one first.
pub async fn account(config: &AcmeConfig, dir: &Path, fresh: bool) -> Result<Account, OrderError> {
    let path = store::account_path(dir, &config.directory);
    let builder = || {
        match &config.ca_file {
            Some(ca) => Account::builder_with_root(ca),
            None => Account::builder(),
        }
        .map_err(|e| OrderError::new("ACME HTTP client", &e))
    };
    if !fresh
        && let Ok(Some(bytes)) = store::read_small(&path)
        && let Ok(credentials) = serde_json::from_slice::<AccountCredentials>(&bytes)
    {
        return builder()?
            .from_credentials(credentials)
            .await
            .map_err(|e| OrderError::new(&format!("directory {}", config.directory), &e));
    }
    let contact = config.email.as_ref().map(|e| format!("mailto:{e}"));
    let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder()?
        .create(
            &NewAccount {
                contact: &contacts,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            config.directory.clone(),
            None,
        )
        .await
        .map_err(|e| {
            OrderError::new(&format!("creating an account at {}", config.directory), &e)
        })?;
    let json = serde_json::to_vec(&credentials)
        .map_err(|e| OrderError::plain(format!("account credentials: {e}")))?;
    store::write_atomic(&path, &json)
        .map_err(|e| OrderError::plain(format!("writing {}: {e}", path.display())))?;
    tracing::info!(directory = %config.directory, file = %path.display(), "ACME account created");
    Ok(account)
}

/// Orders one certificate for `config.domains`; returns the chain and the key (PEM).
pub async fn issue(
    account: &Account,
    config: &AcmeConfig,
    state: &AcmeState,
) -> Result<(String, String), OrderError> {
    let identifiers: Vec<Identifier> = config
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| OrderError::new("new order", &e))?;
    tracing::info!(domains = ?config.domains, url = order.url(), "ACME order placed");
    let mut opened = Opened::default();
    let result = answer_and_finish(&mut order, config, state, &mut opened).await;
    opened.withdraw(state);
    result
}

/// The challenges opened for one order, withdrawn when it ends.
#[derive(Default)]
struct Opened {
    tokens: Vec<String>,
    names: Vec<String>,
}

impl Opened {
    fn withdraw(self, state: &AcmeState) {
        for token in &self.tokens {
            state.clear_http01(token);
        }
        for name in &self.names {
            state.clear_tls_alpn01(name);
        }
    }
}

async fn answer_and_finish(
    order: &mut instant_acme::Order,
    config: &AcmeConfig,
    state: &AcmeState,
    opened: &mut Opened,
) -> Result<(String, String), OrderError> {
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| OrderError::new("authorization", &e))?;
        if authz.status == AuthorizationStatus::Valid {
            continue;
        }
        let name = authz.identifier().to_string();
        let offered: Vec<ChallengeType> =
            authz.challenges.iter().map(|c| c.r#type.clone()).collect();
        let Some(kind) = config.challenges.iter().find_map(|c| {
            let wanted = match c {
                AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
                AcmeChallenge::Http01 => ChallengeType::Http01,
            };
            offered.contains(&wanted).then_some(wanted)
        }) else {
            return Err(OrderError::plain(format!(
                "the CA offers none of the configured challenges for {name} (it offers {offered:?})"
            )));
        };
        let mut challenge = authz
            .challenge(kind.clone())
            .ok_or_else(|| OrderError::plain(format!("challenge for {name} went away")))?;
        let key_authorization = challenge.key_authorization();
        match kind {
            ChallengeType::Http01 => {
                state.set_http01(&challenge.token, key_authorization.as_str());
                opened.tokens.push(challenge.token.clone());
            }
            _ => {
                let cert = challenge::tls_alpn01_cert(&name, key_authorization.digest().as_ref())
                    .map_err(OrderError::plain)?;
                state.set_tls_alpn01(&name, cert);
                opened.names.push(name.clone());
            }
        }
        tracing::info!(domain = %name, challenge = ?kind, "ACME challenge ready");
        challenge
            .set_ready()
            .await
            .map_err(|e| OrderError::new(&format!("challenge for {name}"), &e))?;
    }
    let retries = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(ORDER_TIMEOUT);
    let status = order
        .poll_ready(&retries)
        .await
        .map_err(|e| OrderError::new("waiting for validation", &e))?;
    if status != OrderStatus::Ready {
        let detail = order
            .state()
            .error
            .as_ref()
            .map_or_else(|| format!("{status:?}"), ToString::to_string);
        return Err(OrderError::plain(format!(
            "the CA did not validate: {detail}"
        )));
    }
    let key_pem = order
        .finalize()
        .await
        .map_err(|e| OrderError::new("finalize", &e))?;
    let chain_pem = order
        .poll_certificate(&retries)
        .await
        .map_err(|e| OrderError::new("fetching the certificate", &e))?;
    Ok((chain_pem, key_pem))
}

/// Seconds until `t` (zero when past), for logs.
pub fn secs_until(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::now())
        .unwrap_or_default()
        .as_secs()
}
