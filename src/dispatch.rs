//! Several APIs in one gateway: which API (and, through a custom domain, which stage) a
//! request goes to, decided from its `Host` and path before anything else reads it.
//!
//! Built once per load next to the APIs it points into and published with them (inside the
//! first API's table), so a reload replaces the APIs and the dispatcher together.

use crate::config::{ConfigError, ConfigErrors};
use crate::table::Table;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Bounds a `domains/` directory: a gateway maps a handful of domains, not thousands.
const MAX_DOMAINS: usize = 100;
/// AWS allows 200 API mappings per domain (quotas, "Custom domains").
const MAX_MAPPINGS: usize = 200;

/// `domains/NAME.json`, in `aws apigatewayv2 create-domain-name` / `create-api-mapping`
/// terms. `Tls` is the domain's own certificate, served by SNI on an HTTPS listener (where
/// AWS names an ACM certificate, apigate reads PEM files). `MutualTlsAuthentication` is read
/// and not served per domain: the listener's truststore (its `Tls`) applies to every name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct DomainConf {
    domain_name: String,
    #[serde(default)]
    api_mappings: Vec<MappingConf>,
    #[serde(default, rename = "Tls")]
    tls: Option<DomainTls>,
    #[serde(default, rename = "MutualTlsAuthentication")]
    mtls: Option<serde_json::Value>,
}

/// A domain's certificate: PEM files, relative to the configuration directory.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct DomainTls {
    cert_file: String,
    key_file: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct MappingConf {
    #[serde(default)]
    api_mapping_key: String,
    api_id: String,
    stage: String,
}

/// One API mapping, compiled: the key without slashes, the API by index (0 is the first
/// `--conf`), and the stage it serves.
#[derive(Debug)]
struct Mapping {
    key: String,
    api: usize,
    stage: String,
}

/// The APIs after the first, and the custom domains over all of them.
pub struct Apis {
    /// Index `i` here is API `i + 1`; API 0 is the table holding this dispatcher.
    others: Vec<Arc<Table>>,
    /// Every API's id (`api.json` Name), index as in `Mapping::api`.
    ids: Vec<String>,
    /// Lowercased domain name -> mappings, longest key first.
    domains: HashMap<String, Vec<Mapping>>,
    /// Domains with a certificate of their own, for the HTTPS listener's SNI.
    certificates: Vec<(String, crate::tls::listener::DomainCertificate)>,
}

/// Where a request goes.
pub enum Target<'p> {
    /// API `api` (0: the first), its stage chosen from the path as for a single API.
    Api(usize),
    /// Through a custom domain: the mapping's stage, the path after the mapping key.
    Mapped {
        api: usize,
        stage: &'p str,
        path: &'p str,
    },
    /// A custom domain with no mapping for this path: AWS answers 403.
    Unmapped,
}

impl Apis {
    pub fn others(&self) -> &[Arc<Table>] {
        &self.others
    }

    /// Lowercased domain names with their own certificate (`Tls`).
    pub fn certificates(&self) -> &[(String, crate::tls::listener::DomainCertificate)] {
        &self.certificates
    }

    pub fn api(&self, index: usize) -> Option<&Arc<Table>> {
        index.checked_sub(1).and_then(|i| self.others.get(i))
    }

    pub fn id(&self, index: usize) -> &str {
        self.ids.get(index).map_or("", |s| s.as_str())
    }

    /// Picks the API for `host` (port allowed) and `path`. A listed custom domain uses its
    /// mappings; otherwise a host whose first label is an API's id (as
    /// `{api-id}.execute-api.{region}.amazonaws.com`) picks that API, and anything else is
    /// the first API (the single-API behaviour).
    pub fn target<'p>(&'p self, host: &str, path: &'p str) -> Target<'p> {
        let name = strip_port(host);
        if !self.domains.is_empty() {
            if let Some(mappings) = lookup(&self.domains, name) {
                return map(mappings, path);
            }
        }
        let label = name.split('.').next().unwrap_or("");
        match self
            .ids
            .iter()
            .position(|id| id.eq_ignore_ascii_case(label))
        {
            Some(i) if name.contains('.') => Target::Api(i),
            _ => Target::Api(0),
        }
    }

    /// Reads `domains/*.json` under `dir` (the first `--conf`, when a directory) against
    /// the loaded APIs. `tables[0]` is the first API.
    pub fn build(
        dir: &Path,
        ids: Vec<String>,
        others: Vec<Arc<Table>>,
        stages: &[Vec<String>],
    ) -> Result<Apis, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let mut domains = HashMap::new();
        let mut certificates = Vec::new();
        for (file, text) in read_dir(&dir.join("domains"), &mut errors) {
            let conf: DomainConf = match serde_json::from_str(&text) {
                Ok(c) => c,
                Err(e) => {
                    errors.push(ConfigError::new(
                        &file,
                        "",
                        format!("not a domain document: {e}"),
                        "write {\"DomainName\": \"api.example.com\", \"ApiMappings\": [{\"ApiMappingKey\": \"\", \"ApiId\": \"NAME\", \"Stage\": \"$default\"}]}",
                    ));
                    continue;
                }
            };
            if conf.api_mappings.len() > MAX_MAPPINGS {
                errors.push(ConfigError::new(
                    &file,
                    "ApiMappings",
                    format!(
                        "{} mappings, over AWS's {MAX_MAPPINGS}",
                        conf.api_mappings.len()
                    ),
                    "split the domain",
                ));
                continue;
            }
            let mut mappings = Vec::new();
            for (i, m) in conf.api_mappings.into_iter().enumerate() {
                let field = |f: &str| format!("ApiMappings[{i}].{f}");
                let Some(api) = ids.iter().position(|id| *id == m.api_id) else {
                    errors.push(ConfigError::new(
                        &file,
                        field("ApiId"),
                        format!("no API named {:?} is loaded", m.api_id),
                        format!("use one of {:?} (api.json Name of each --conf)", ids),
                    ));
                    continue;
                };
                if !stages.get(api).is_some_and(|s| s.contains(&m.stage)) {
                    errors.push(ConfigError::new(
                        &file,
                        field("Stage"),
                        format!("API {:?} has no stage {:?}", m.api_id, m.stage),
                        format!(
                            "use one of {:?}",
                            stages.get(api).cloned().unwrap_or_default()
                        ),
                    ));
                    continue;
                }
                let key = m.api_mapping_key.trim_matches('/').to_string();
                if mappings.iter().any(|o: &Mapping| o.key == key) {
                    errors.push(ConfigError::new(
                        &file,
                        field("ApiMappingKey"),
                        format!("{key:?} is mapped twice"),
                        "give each mapping its own key",
                    ));
                    continue;
                }
                mappings.push(Mapping {
                    key,
                    api,
                    stage: m.stage,
                });
            }
            // Longest key first: the first that matches is the longest match.
            mappings.sort_by_key(|m| std::cmp::Reverse(m.key.len()));
            let name = conf.domain_name.to_ascii_lowercase();
            if let Some(tls) = &conf.tls {
                let path = |p: &str| crate::tls::upstream::conf_path(dir, p);
                match crate::tls::listener::domain_certificate(
                    path(&tls.cert_file),
                    path(&tls.key_file),
                ) {
                    Ok(c) => certificates.push((name.clone(), c)),
                    Err((field, problem)) => errors.push(ConfigError::new(
                        &file,
                        format!("Tls.{field}"),
                        problem,
                        "give PEM files: CertFile the domain's certificate chain, KeyFile its key (relative to the configuration directory, or absolute)",
                    )),
                }
            }
            if conf.mtls.is_some() {
                log::warn!("{file}: MutualTlsAuthentication is not applied per domain: the listener's (gateway.json Tls) applies to every name");
            }
            if domains.insert(name.clone(), mappings).is_some() {
                errors.push(ConfigError::new(
                    &file,
                    "DomainName",
                    format!("{name} is defined by two files"),
                    "keep one file per domain",
                ));
            }
        }
        if errors.is_empty() {
            Ok(Apis {
                others,
                ids,
                domains,
                certificates,
            })
        } else {
            Err(errors)
        }
    }

    /// Whether there is anything to dispatch: one API and no domains keeps the single-API
    /// path (no dispatcher at all).
    pub fn is_trivial(&self) -> bool {
        self.others.is_empty() && self.domains.is_empty() && self.certificates.is_empty()
    }
}

/// `host[:port]` or `[v6]:port` -> the name, without allocating.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Domain names are case-insensitive (RFC 4343); clients almost always send lowercase, so
/// the exact lookup comes first and only a miss lowercases.
fn lookup<'a>(domains: &'a HashMap<String, Vec<Mapping>>, name: &str) -> Option<&'a Vec<Mapping>> {
    let name = name.strip_suffix('.').unwrap_or(name);
    domains
        .get(name)
        .or_else(|| domains.get(&name.to_ascii_lowercase()))
}

/// The longest mapping key that is a whole-segment prefix of `path`.
fn map<'p>(mappings: &'p [Mapping], path: &'p str) -> Target<'p> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    for m in mappings {
        if m.key.is_empty() {
            return Target::Mapped {
                api: m.api,
                stage: &m.stage,
                path,
            };
        }
        if let Some(after) = rest.strip_prefix(m.key.as_str()) {
            if after.is_empty() || after.starts_with('/') {
                return Target::Mapped {
                    api: m.api,
                    stage: &m.stage,
                    path: if after.is_empty() {
                        "/"
                    } else {
                        &path[path.len() - after.len()..]
                    },
                };
            }
        }
    }
    Target::Unmapped
}

/// `*.json` files in `dir`, sorted, bounded; a missing directory is no domains.
fn read_dir(dir: &Path, errors: &mut ConfigErrors) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    if paths.len() > MAX_DOMAINS {
        errors.push(ConfigError::new(
            dir.display().to_string(),
            "",
            format!("{} domain files, over {MAX_DOMAINS}", paths.len()),
            "serve fewer domains from one gateway",
        ));
        return Vec::new();
    }
    let mut out = Vec::new();
    for p in paths {
        let name = format!(
            "domains/{}",
            p.file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned())
        );
        // Bounded and never blocking on a FIFO, like every configuration file.
        match crate::config::read::read_text(&p) {
            Ok(text) => out.push((name, text)),
            Err(e) => errors.push(ConfigError::new(name, "", format!("unreadable: {e}"), "")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(key: &str, api: usize) -> Mapping {
        Mapping {
            key: key.into(),
            api,
            stage: "s".into(),
        }
    }

    #[test]
    fn longest_key_wins_on_whole_segments() {
        let mut ms = vec![m("", 0), m("v1", 1), m("v1/admin", 2)];
        ms.sort_by_key(|m| std::cmp::Reverse(m.key.len()));
        let got = |p| match map(&ms, p) {
            Target::Mapped { api, path, .. } => (api, path),
            _ => (99, ""),
        };
        assert_eq!(got("/v1/admin/x"), (2, "/x"));
        assert_eq!(got("/v1/adminx"), (1, "/adminx"));
        assert_eq!(got("/v1"), (1, "/"));
        assert_eq!(got("/v10"), (0, "/v10"));
    }

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("a.example:8080"), "a.example");
        assert_eq!(strip_port("a.example"), "a.example");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
    }
}
