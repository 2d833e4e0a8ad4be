//! The artifacts directory as Azure's APIOps extractor writes it: `policy.xml` (global),
//! `apis/NAME/{apiInformation.json, specification.(yaml|json), policy.xml,
//! operations/OP/policy.xml}`, `products/NAME/{productInformation.json, policy.xml,
//! apis/API/}`, `backends/NAME/backendInformation.json`,
//! `named values/NAME/namedValueInformation.json`. Each JSON file is `{"properties": {..}}`
//! in the management API's names. Read here, interpreted in `mod.rs`.

use super::xml::{self, PolicyDoc};
use crate::config::{read, ConfigError};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Everything read from an artifacts directory.
#[derive(Debug, Default)]
pub struct Artifacts {
    pub global: Option<PolicyDoc>,
    pub apis: Vec<Api>,
    pub products: Vec<Product>,
    /// Backend id -> its `url`.
    pub backends: BTreeMap<String, String>,
    /// Display name -> value (secrets resolved from the environment).
    pub named_values: BTreeMap<String, String>,
    /// Secrets without a value in any source: named here, reported where a policy uses them.
    pub missing_secrets: BTreeMap<String, String>,
    pub subscriptions: Vec<Subscription>,
    /// Version set id -> its `versioningScheme`.
    pub version_sets: BTreeMap<String, String>,
}

/// An active subscription: its scope (`/apis/NAME`, `/products/NAME`, `/apis` for all) and
/// its keys.
#[derive(Debug)]
pub struct Subscription {
    pub scope: String,
    pub keys: Vec<String>,
}

#[derive(Debug)]
pub struct Api {
    /// The directory name (`users`), APIM's API id.
    pub name: String,
    /// `apis/users/apiInformation.json`.
    pub file: String,
    pub props: serde_json::Map<String, Value>,
    /// The specification's file and parsed document.
    pub spec: Option<(String, Value)>,
    /// A specification apigate does not read (`specification.wadl`, `.wsdl`, `.graphql`).
    pub other_spec: Option<String>,
    pub policy: Option<PolicyDoc>,
    /// Operation name -> its policy document.
    pub operations: BTreeMap<String, PolicyDoc>,
}

#[derive(Debug)]
pub struct Product {
    pub name: String,
    pub policy: Option<PolicyDoc>,
    /// The APIs listed under `products/NAME/apis/`.
    pub apis: Vec<String>,
}

/// Whether `dir` looks like an APIOps artifacts directory: an `apis/` folder whose entries
/// hold `apiInformation.json`.
pub fn is_artifacts(dir: &Path) -> bool {
    std::fs::read_dir(dir.join("apis")).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.path().join("apiInformation.json").is_file())
    })
}

/// The environment variable a secret named value is read from: `APIM_NAMED_VALUE_` and the
/// name in upper case, other characters as `_` (`jwt-secret` -> `APIM_NAMED_VALUE_JWT_SECRET`).
pub fn secret_env_name(name: &str) -> String {
    let tail: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("APIM_NAMED_VALUE_{tail}")
}

pub fn read(
    dir: &Path,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigError>,
) -> Artifacts {
    let mut a = Artifacts {
        global: policy(dir, "policy.xml", errors),
        ..Artifacts::default()
    };
    for name in subdirs(dir, "apis") {
        let base = format!("apis/{name}");
        let file = format!("{base}/apiInformation.json");
        let Some(props) = properties(dir, &file, errors) else {
            continue;
        };
        let spec = ["yaml", "yml", "json"].iter().find_map(|ext| {
            let f = format!("{base}/specification.{ext}");
            dir.join(&f).is_file().then_some(f)
        });
        let spec = spec.and_then(|f| {
            let text = text(dir, &f, errors)?;
            let value = if f.ends_with(".json") {
                serde_json::from_str(&text).map_err(|e| e.to_string())
            } else {
                crate::config::yaml::from_str(&text)
                    .map(|y| y.value)
                    .map_err(|e| format!("line {}: {}", e.line, e.message))
            };
            match value {
                Ok(v) => Some((f, v)),
                Err(e) => {
                    errors.push(ConfigError::new(
                        f,
                        "",
                        format!("cannot parse: {e}"),
                        "fix the syntax",
                    ));
                    None
                }
            }
        });
        let mut operations = BTreeMap::new();
        for op in subdirs(dir, &format!("{base}/operations")) {
            if let Some(p) = policy(dir, &format!("{base}/operations/{op}/policy.xml"), errors) {
                operations.insert(op, p);
            }
        }
        let other_spec = ["wadl", "wsdl", "graphql"].iter().find_map(|ext| {
            let f = format!("{base}/specification.{ext}");
            dir.join(&f).is_file().then_some(f)
        });
        a.apis.push(Api {
            other_spec,
            policy: policy(dir, &format!("{base}/policy.xml"), errors),
            name,
            file,
            props,
            spec,
            operations,
        });
    }
    for name in subdirs(dir, "products") {
        let base = format!("products/{name}");
        a.products.push(Product {
            policy: policy(dir, &format!("{base}/policy.xml"), errors),
            apis: subdirs(dir, &format!("{base}/apis")),
            name,
        });
    }
    for name in subdirs(dir, "backends") {
        let file = format!("backends/{name}/backendInformation.json");
        if let Some(props) = properties(dir, &file, errors) {
            match props.get("url").and_then(Value::as_str) {
                Some(url) => {
                    a.backends.insert(name, url.to_string());
                }
                None => errors.push(ConfigError::new(
                    file,
                    "properties.url",
                    "a backend needs a url",
                    "add \"url\": \"http://127.0.0.1:9000\"",
                )),
            }
        }
    }
    let local = local_values(errors);
    for name in subdirs(dir, "named values") {
        let file = format!("named values/{name}/namedValueInformation.json");
        let Some(props) = properties(dir, &file, errors) else {
            continue;
        };
        let display = props
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or(&name)
            .to_string();
        // The environment, then the local values file, then the artifact: secrets never
        // need to live in the repository.
        let env = secret_env_name(&display);
        let from_file = || local.get(&display).cloned();
        let from_artifact = || {
            props
                .get("value")
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        match std::env::var(&env)
            .ok()
            .or_else(from_file)
            .or_else(from_artifact)
        {
            Some(v) => {
                a.named_values.insert(display, v);
            }
            None => {
                a.missing_secrets.insert(display, env);
            }
        }
    }
    subscriptions(dir, &mut a, errors, warnings);
    let fragments = fragments(dir, errors);
    let docs = a
        .global
        .iter_mut()
        .chain(a.products.iter_mut().filter_map(|p| p.policy.as_mut()));
    let docs = docs.chain(
        a.apis
            .iter_mut()
            .flat_map(|api| api.policy.iter_mut().chain(api.operations.values_mut())),
    );
    for doc in docs {
        include_fragments(doc, &fragments, errors);
    }
    for name in subdirs(dir, "version sets") {
        let file = format!("version sets/{name}/versionSetInformation.json");
        if let Some(props) = properties(dir, &file, errors) {
            let scheme = props
                .get("versioningScheme")
                .and_then(Value::as_str)
                .unwrap_or("Segment");
            a.version_sets.insert(name, scheme.to_string());
        }
    }
    a
}

/// The environment variable naming a JSON file of named values (`{"name": "value"}`), kept
/// outside the repository for secrets.
pub const VALUES_FILE_ENV: &str = "APIM_NAMED_VALUES_FILE";

/// The values of the file [`VALUES_FILE_ENV`] names (none when it is unset).
fn local_values(errors: &mut Vec<ConfigError>) -> BTreeMap<String, String> {
    let Ok(path) = std::env::var(VALUES_FILE_ENV) else {
        return BTreeMap::new();
    };
    let parsed = read::read_text(Path::new(&path))
        .map_err(|e| format!("cannot read: {e}"))
        .and_then(|t| {
            serde_json::from_str::<BTreeMap<String, String>>(&t).map_err(|e| format!("{e}"))
        });
    parsed.unwrap_or_else(|e| {
        errors.push(ConfigError::new(
            &path,
            "",
            format!("{VALUES_FILE_ENV}: {e}"),
            "write a JSON object of named values: {\"jwt-signing-key\": \"...\"}",
        ));
        BTreeMap::new()
    })
}

/// The environment variable a subscription's key is read from
/// (`APIM_SUBSCRIPTION_KEY_` and the name as [`secret_env_name`] spells it).
pub fn subscription_env_name(name: &str) -> String {
    secret_env_name(name).replacen("APIM_NAMED_VALUE_", "APIM_SUBSCRIPTION_KEY_", 1)
}

/// `subscriptions/NAME/subscriptionInformation.json`: the extractor writes no keys (they
/// are secrets), so they come from the environment, or `primaryKey` / `secondaryKey` added
/// to the file for local use.
fn subscriptions(
    dir: &Path,
    a: &mut Artifacts,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigError>,
) {
    for name in subdirs(dir, "subscriptions") {
        let file = format!("subscriptions/{name}/subscriptionInformation.json");
        let Some(props) = properties(dir, &file, errors) else {
            continue;
        };
        let state = props
            .get("state")
            .and_then(Value::as_str)
            .unwrap_or("active");
        if state != "active" {
            continue;
        }
        let Some(scope) = props.get("scope").and_then(Value::as_str) else {
            errors.push(ConfigError::new(
                &file,
                "properties.scope",
                "missing",
                "write \"/apis/NAME\" or \"/products/NAME\"",
            ));
            continue;
        };
        let env = subscription_env_name(&name);
        let mut keys: Vec<String> = std::env::var(&env).ok().into_iter().collect();
        for k in ["primaryKey", "secondaryKey"] {
            keys.extend(props.get(k).and_then(Value::as_str).map(str::to_string));
        }
        if keys.is_empty() {
            warnings.push(ConfigError::new(
                &file,
                "",
                "no key: requests cannot use this subscription",
                format!("set the environment variable {env}, or add \"primaryKey\" to the file"),
            ));
        }
        let scope = short_scope(scope);
        a.subscriptions.push(Subscription { scope, keys });
    }
}

/// `policy fragments/NAME/policy.xml`, by name.
fn fragments(dir: &Path, errors: &mut Vec<ConfigError>) -> BTreeMap<String, Vec<xml::Element>> {
    let mut out = BTreeMap::new();
    for name in subdirs(dir, "policy fragments") {
        let file = format!("policy fragments/{name}/policy.xml");
        let Some(text) = text(dir, &file, errors) else {
            continue;
        };
        match xml::parse_fragment(&file, &text) {
            Ok(stmts) => {
                out.insert(name, stmts);
            }
            Err(e) => errors.push(e),
        }
    }
    out
}

/// Splices each `<include-fragment fragment-id="x"/>` of `doc` with fragment `x`'s
/// statements (which keep their own file for messages). A fragment is not expanded inside
/// another one.
fn include_fragments(
    doc: &mut PolicyDoc,
    fragments: &BTreeMap<String, Vec<xml::Element>>,
    errors: &mut Vec<ConfigError>,
) {
    let file = doc.file.clone();
    for section in doc.sections.iter_mut().flatten() {
        if !section.iter().any(|e| e.name == "include-fragment") {
            continue;
        }
        let mut out = Vec::new();
        for el in section.drain(..) {
            if el.name != "include-fragment" || el.source.is_some() {
                out.push(el);
                continue;
            }
            let at = |problem: String, fix: &str| {
                ConfigError::new(
                    &file,
                    format!("line {} <include-fragment>", el.line),
                    problem,
                    fix,
                )
            };
            let id = el.attr("fragment-id").unwrap_or_default();
            if el.attrs.len() != 1 || id.is_empty() {
                errors.push(at(
                    "needs exactly the attribute fragment-id".into(),
                    "write <include-fragment fragment-id=\"name\"/>",
                ));
                continue;
            }
            match fragments.get(id) {
                Some(stmts) => out.extend(stmts.iter().cloned()),
                None => errors.push(at(
                    format!("policy fragment {id:?} is not defined"),
                    &format!("add \"policy fragments/{id}/policy.xml\""),
                )),
            }
        }
        *section = out;
    }
}

/// A subscription's scope as `/apis/NAME`, `/products/NAME` or `/apis` (all APIs): a full
/// resource id (`/subscriptions/../service/x/products/p`) ends with the same.
pub fn short_scope(scope: &str) -> String {
    let tail: Vec<&str> = scope.trim_end_matches('/').rsplit('/').take(2).collect();
    match tail.as_slice() {
        ["apis", ..] => "/apis".to_string(),
        [n, kind] => format!("/{kind}/{n}"),
        _ => scope.to_string(),
    }
}

/// The names of the directories under `dir/sub`, sorted (absent: none).
fn subdirs(dir: &Path, sub: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join(sub))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn text(dir: &Path, file: &str, errors: &mut Vec<ConfigError>) -> Option<String> {
    match read::read_text(&dir.join(file)) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(ConfigError::new(
                file,
                "",
                format!("cannot read: {e}"),
                "check the file",
            ));
            None
        }
    }
}

/// A policy document, when the file exists.
fn policy(dir: &Path, file: &str, errors: &mut Vec<ConfigError>) -> Option<PolicyDoc> {
    if !dir.join(file).is_file() {
        return None;
    }
    match xml::parse(file, &text(dir, file, errors)?) {
        Ok(doc) => Some(doc),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

/// The `properties` object of a management-API JSON file.
fn properties(
    dir: &Path,
    file: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<serde_json::Map<String, Value>> {
    let text = text(dir, file, errors)?;
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(mut o)) => match o.remove("properties") {
            Some(Value::Object(p)) => Some(p),
            None => Some(serde_json::Map::new()),
            Some(_) => {
                errors.push(ConfigError::new(
                    file,
                    "properties",
                    "must be an object",
                    "write {\"properties\": {...}}",
                ));
                None
            }
        },
        Ok(_) => {
            errors.push(ConfigError::new(
                file,
                "",
                "must hold a JSON object",
                "write {\"properties\": {...}}",
            ));
            None
        }
        Err(e) => {
            errors.push(ConfigError::new(
                file,
                "",
                format!("invalid JSON: {e}"),
                "fix the JSON syntax",
            ));
            None
        }
    }
}
