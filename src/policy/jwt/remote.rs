//! Key sets fetched over HTTP(S), from a `JwksUri` or by OIDC discovery. Fetches are single
//! flight and rate limited, so neither a burst of requests nor a flood of unknown `kid`s
//! becomes a burst of fetches at the identity provider.

use super::keys::{KeySet, Keys, Origin};
use super::JwtAuthorizer;
use crate::config::{ConfigError, ConfigErrors};
use parking_lot::{Mutex, RwLock};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A flood of unknown `kid`s must not become a flood of fetches.
pub(super) const DEFAULT_MIN_REFETCH: Duration = Duration::from_secs(10);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
pub(super) const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);
/// Key sets and discovery documents are small; a larger answer is not one.
const MAX_FETCH_BYTES: usize = 1 << 20;

/// A key set fetched over HTTP(S).
pub(super) struct Remote {
    /// The authorizer's id, for logs.
    id: String,
    /// `JwksUri`, or the discovery document's URL.
    url: String,
    /// For OIDC discovery, the issuer the document must name.
    discovery: Option<String>,
    refresh: Duration,
    min_refetch: Duration,
    pub(super) set: RwLock<Option<(Arc<KeySet>, Instant)>>,
    /// Single flight: one fetch at a time; requests that need keys wait for it.
    fetching: tokio::sync::Mutex<()>,
    /// Fetches finished so far: a waiter that sees it move knows a fetch ran while it waited.
    fetches: AtomicU64,
    last_attempt: Mutex<Option<Instant>>,
    client: reqwest::Client,
}

/// Whether a caller waits for a fetch already in flight (and takes its result) or leaves it.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Wait {
    Yes,
    No,
}

impl JwtAuthorizer {
    /// The key set to verify with. A remote set is fetched when missing or when `kid` is
    /// unknown (the request waits for that fetch, at most one per `JwksMinRefetchSeconds`);
    /// a stale set keeps serving while a background task refreshes it.
    pub(super) async fn key_set(&self, kid: Option<&str>) -> Option<Arc<KeySet>> {
        let remote = match &self.keys {
            Keys::Static(s) => return Some(s.clone()),
            Keys::Remote(r) => r,
        };
        let current = remote.set.read().clone();
        match current {
            Some((set, _)) if kid.is_some_and(|k| !set.has_kid(k)) => {
                remote.refetch(Wait::Yes, remote.min_refetch).await;
                remote.current().or(Some(set))
            }
            Some((set, fetched)) => {
                if fetched.elapsed() >= remote.refresh {
                    // A failed refresh leaves the set stale: retry no faster than either period.
                    let gap = remote.refresh.min(remote.min_refetch);
                    let remote = remote.clone();
                    tokio::spawn(async move { remote.refetch(Wait::No, gap).await });
                }
                Some(set)
            }
            None => {
                remote.refetch(Wait::Yes, remote.min_refetch).await;
                remote.current()
            }
        }
    }
}

impl Remote {
    fn current(&self) -> Option<Arc<KeySet>> {
        self.set.read().as_ref().map(|(s, _)| s.clone())
    }

    /// Fetches the set unless one was tried within `min_gap`. Single flight: with `Wait::Yes`
    /// a caller that finds a fetch running waits for it and uses its result rather than
    /// starting another.
    pub(super) async fn refetch(&self, wait: Wait, min_gap: Duration) {
        let seen = self.fetches.load(Ordering::Acquire);
        let _guard = match wait {
            Wait::Yes => self.fetching.lock().await,
            Wait::No => match self.fetching.try_lock() {
                Ok(g) => g,
                Err(_) => return,
            },
        };
        if self.fetches.load(Ordering::Acquire) != seen {
            return;
        }
        {
            let mut last = self.last_attempt.lock();
            if last.is_some_and(|t| t.elapsed() < min_gap) {
                return;
            }
            *last = Some(Instant::now());
        }
        match fetch(self).await {
            Ok((set, skipped)) => {
                for note in skipped {
                    log::warn!(
                        "authorizer {}: skipped a key from {}: {note}",
                        self.id,
                        self.url
                    );
                }
                log::info!(
                    "authorizer {}: {} key(s) loaded from {}",
                    self.id,
                    set.keys.len(),
                    self.url
                );
                *self.set.write() = Some((Arc::new(set), Instant::now()));
            }
            Err(e) => {
                crate::metrics::metrics().jwks_fetch_failures.inc();
                let keeps = if self.set.read().is_some() {
                    "the previous keys stay in use"
                } else {
                    "requests get 401 until keys arrive"
                };
                log::warn!(
                    "authorizer {}: cannot fetch keys from {}: {e} ({keeps})",
                    self.id,
                    self.url
                );
            }
        }
        self.fetches.fetch_add(1, Ordering::Release);
    }
}

/// Remote keys at `url` (a JWK Set, or with `discovery` an OIDC discovery document); nothing
/// is fetched yet.
pub(super) fn remote(
    file: &str,
    id: &str,
    url: String,
    discovery: Option<String>,
    refresh: Duration,
    min_refetch: Duration,
    errors: &mut ConfigErrors,
) -> Option<Keys> {
    if url.starts_with("http://") && !is_loopback_url(&url) {
        log::warn!("{file}: keys for authorizer {id} come over plain http ({url}): anyone on the path can replace them; use https");
    }
    let client = match reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            errors.push(ConfigError::new(
                file,
                "JwksUri",
                format!("cannot set up an HTTP client for {url}: {e}"),
                "check the system's TLS set-up, or use Jwks/JwksFile",
            ));
            return None;
        }
    };
    Some(Keys::Remote(Arc::new(Remote {
        id: id.to_string(),
        url,
        discovery,
        refresh,
        min_refetch,
        set: RwLock::new(None),
        fetching: tokio::sync::Mutex::new(()),
        fetches: AtomicU64::new(0),
        last_attempt: Mutex::new(None),
        client,
    })))
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<serde_json::Value, String> {
    let mut resp = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_FETCH_BYTES {
            return Err(format!("the answer is larger than {MAX_FETCH_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
}

async fn fetch(remote: &Remote) -> Result<(KeySet, Vec<String>), String> {
    let jwks_url = match &remote.discovery {
        Some(issuer) => {
            let doc = get_json(&remote.client, &remote.url).await?;
            // OpenID Connect Discovery 4.3: the document must name the issuer it was fetched for.
            let named = doc.get("issuer").and_then(|i| i.as_str());
            if named != Some(issuer.as_str()) {
                return Err(format!(
                    "the discovery document's issuer {named:?} is not the configured Issuer {issuer:?}"
                ));
            }
            doc.get("jwks_uri")
                .and_then(|u| u.as_str())
                .ok_or("the discovery document has no jwks_uri")?
                .to_string()
        }
        None => remote.url.clone(),
    };
    let json = get_json(&remote.client, &jwks_url).await?;
    let (set, skipped) = KeySet::parse(&json, Origin::Published)?;
    if set.keys.is_empty() {
        // Keep serving with the keys we have rather than refuse every token.
        return Err(format!("no usable key ({})", skipped.join("; ")));
    }
    Ok((set, skipped))
}

/// Plain http to the local machine is a test set-up, not a risk worth a warning.
pub(super) fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
