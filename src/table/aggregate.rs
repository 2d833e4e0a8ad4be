//! AGGREGATE integrations at load: `check` validates what does not depend on a stage (the
//! backends named, their shaping, `${backends.N...}` references, the routes serving them),
//! `compile` builds one for a stage from its backends compiled for the same stage.

use super::policies::MappingPair;
use super::validate::{
    reference, uri_vars, Checked, CheckedIntegration, CheckedTarget, DEFAULT_TIMEOUT_MS,
};
use super::Integration;
use crate::config::{
    closest, AggregateBackendConf, Config, ConfigError, ConfigErrors, IntegrationConf, Resource,
};
use crate::integration::aggregate::{
    refs, Aggregate, Backend, BodyRef, OnError, Path, Shape, DEFAULT_MAX_BACKEND_BYTES,
};
use crate::integration::Kind;
use crate::routing::RouteKey;
use crate::tls::upstream::PeerTls;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

pub const TYPE: &str = "AGGREGATE";
/// The most `MaxBackendBytes` may be: every backend of every request in flight may hold
/// this much at once.
const MAX_BACKEND_BYTES_LIMIT: u64 = 10 * 1024 * 1024;

/// An aggregate that passed its checks, by backend: the backend integration's id, and its
/// shape and references compiled.
pub(super) struct CheckedAggregate<'c> {
    backends: Vec<(&'c str, Shape, Vec<BodyRef>)>,
    sequential: bool,
    timeout: Duration,
    on_error: OnError,
    max_backend_bytes: usize,
}

/// The stand-in `validate` keeps for an AGGREGATE file: its own mappings (which apply to the
/// aggregated answer) and timeout; everything else is in its [`CheckedAggregate`].
pub(super) fn checked_integration<'c>(
    r: &'c Resource<IntegrationConf>,
    errors: &mut ConfigErrors,
) -> CheckedIntegration<'c> {
    let c = &r.conf;
    let f = r.file.as_str();
    CheckedIntegration {
        res: r,
        target: CheckedTarget::Fixed(None),
        timeout: Duration::from_millis(c.timeout_in_millis.unwrap_or(DEFAULT_TIMEOUT_MS)),
        method: None,
        mappings: MappingPair::compile(
            f,
            "",
            &c.request_parameters,
            &c.response_parameters,
            errors,
        ),
        tls: PeerTls::new(f, None, None, errors),
        lambda: None,
    }
}

/// The AGGREGATE fields on another kind would be ignored: an error, not a surprise.
fn only_for_aggregates(r: &Resource<IntegrationConf>, errors: &mut ConfigErrors) {
    let c = &r.conf;
    for (field, set) in [
        ("Backends", c.backends.is_some()),
        ("Sequential", c.sequential.is_some()),
        ("OnError", c.on_error.is_some()),
        ("MaxBackendBytes", c.max_backend_bytes.is_some()),
    ] {
        if set {
            errors.push(ConfigError::new(
                &r.file,
                field,
                format!(
                    "only an AGGREGATE has {field}, this is {}",
                    c.integration_type
                ),
                "set \"IntegrationType\": \"AGGREGATE\", or remove it",
            ));
        }
    }
}

/// Checks every AGGREGATE integration, and every route's use of a URI reading
/// `${backends...}`. Returns those without errors, by id.
pub(super) fn check<'c>(
    config: &'c Config,
    integrations: &HashMap<&'c str, CheckedIntegration<'c>>,
    errors: &mut ConfigErrors,
) -> HashMap<&'c str, CheckedAggregate<'c>> {
    let mut out = HashMap::new();
    for r in &config.integrations {
        if r.conf.integration_type == TYPE {
            if let Some(a) = check_one(config, r, integrations, errors) {
                out.insert(r.id.as_str(), a);
            }
        } else {
            only_for_aggregates(r, errors);
        }
        if r.conf.integration_type != TYPE && r.conf.integration_uri.contains(refs::PREFIX) {
            if let Err((problem, fix)) = refs::find(&r.conf.integration_uri) {
                errors.push(ConfigError::new(&r.file, "IntegrationUri", problem, fix));
            }
        }
    }
    check_routes(config, integrations, errors);
    out
}

fn check_one<'c>(
    config: &'c Config,
    r: &'c Resource<IntegrationConf>,
    integrations: &HashMap<&'c str, CheckedIntegration<'c>>,
    errors: &mut ConfigErrors,
) -> Option<CheckedAggregate<'c>> {
    let before = errors.0.len();
    let c = &r.conf;
    let f = r.file.as_str();
    let mut err = |field: &str, problem: String, fix: &str| {
        errors.push(ConfigError::new(f, field, problem, fix));
    };
    if !c.integration_uri.is_empty() {
        err(
            "IntegrationUri",
            "an AGGREGATE has no IntegrationUri of its own".into(),
            "remove it; each entry of Backends names an integration that has one",
        );
    }
    for (field, set) in [
        ("PayloadFormatVersion", c.payload_format_version.is_some()),
        ("IntegrationMethod", c.integration_method.is_some()),
        ("TlsConfig", c.tls_config.is_some()),
        ("ConnectionType", c.connection_type.is_some()),
    ] {
        if set {
            err(
                field,
                format!("an AGGREGATE has no {field} of its own"),
                "remove it (each backend integration keeps its own)",
            );
        }
    }
    if let Some(t) = c.timeout_in_millis.filter(|t| !(50..=30_000).contains(t)) {
        err(
            "TimeoutInMillis",
            format!("{t} is outside 50..30000"),
            "use a value from 50 to 30000 (it bounds all the backend calls together)",
        );
    }
    let on_error = match c.on_error.as_deref() {
        None | Some("partial") => OnError::Partial,
        Some("fail") => OnError::Fail,
        Some(other) => {
            err(
                "OnError",
                format!("{other:?} is not an OnError"),
                "use \"partial\" (answer with the backends that answered) or \"fail\" (502)",
            );
            OnError::Partial
        }
    };
    let max = c.max_backend_bytes.unwrap_or(DEFAULT_MAX_BACKEND_BYTES);
    if !(1..=MAX_BACKEND_BYTES_LIMIT).contains(&max) {
        err(
            "MaxBackendBytes",
            format!("{max} is outside 1..{MAX_BACKEND_BYTES_LIMIT}"),
            "use a size in bytes up to 10 MiB (default 1 MiB)",
        );
    }
    let sequential = c.sequential.unwrap_or(false);
    let list = c.backends.as_deref().unwrap_or_default();
    if list.is_empty() {
        err(
            "Backends",
            "an AGGREGATE needs at least one backend".into(),
            "add \"Backends\": [{\"Integration\": \"integrations/<id>\"}, ...]",
        );
    }
    let mut groups: HashMap<&str, usize> = HashMap::new();
    let mut backends = Vec::new();
    for (i, b) in list.iter().enumerate() {
        let field = |name: &str| format!("Backends[{i}].{name}");
        let id = backend_id(config, r, i, b, integrations, errors);
        if let Some(g) = &b.group {
            if g.is_empty() {
                errors.push(ConfigError::new(
                    f,
                    field("Group"),
                    "an empty Group",
                    "name the key this backend's answer goes under, or remove Group",
                ));
            } else if let Some(first) = groups.insert(g, i) {
                errors.push(ConfigError::new(
                    f,
                    field("Group"),
                    format!(
                        "{g:?} is also the Group of Backends[{first}]: one would replace the other"
                    ),
                    "give each backend its own Group",
                ));
            }
        }
        let shape = shape(f, i, b, errors);
        let refs = id
            .and_then(|id| integrations.get(id))
            .map(|bi| check_refs(f, i, sequential, bi, errors))
            .unwrap_or_default();
        if let (Some(id), Some(shape)) = (id, shape) {
            backends.push((id, shape, refs));
        }
    }
    (errors.0.len() == before).then(|| CheckedAggregate {
        backends,
        sequential,
        timeout: Duration::from_millis(c.timeout_in_millis.unwrap_or(DEFAULT_TIMEOUT_MS)),
        on_error,
        max_backend_bytes: usize::try_from(max).unwrap_or(usize::MAX),
    })
}

/// The id of the integration `Backends[i]` names, if it may be a backend.
fn backend_id<'c>(
    config: &Config,
    r: &Resource<IntegrationConf>,
    i: usize,
    b: &'c AggregateBackendConf,
    integrations: &HashMap<&'c str, CheckedIntegration<'c>>,
    errors: &mut ConfigErrors,
) -> Option<&'c str> {
    let f = r.file.as_str();
    let field = format!("Backends[{i}].Integration");
    let t = &b.integration;
    let Some(id) = reference(t, "integrations") else {
        errors.push(ConfigError::new(
            f,
            field,
            format!("{t:?} is not a reference"),
            "write \"integrations/<id>\"",
        ));
        return None;
    };
    let Some(target) = integrations.get(id) else {
        // Its own file's error says what is wrong with it.
        if !config.unparsed.contains(&format!("integrations/{id}")) {
            let hint = closest(id, integrations.keys().copied())
                .map(|s| format!("did you mean integrations/{s}?"))
                .unwrap_or_else(|| format!("create integrations/{id}.json"));
            errors.push(ConfigError::new(
                f,
                field,
                format!("{t:?}: no integration {id:?} exists"),
                hint,
            ));
        }
        return None;
    };
    match target.res.conf.integration_type.as_str() {
        "HTTP_PROXY" | "AWS_PROXY" => Some(id),
        TYPE => {
            let problem = if id == r.id {
                "names this aggregate itself (a cycle)".to_string()
            } else {
                format!("{t:?} is an AGGREGATE too: aggregates do not nest (no cycles)")
            };
            errors.push(ConfigError::new(
                f,
                field,
                problem,
                "list that aggregate's backends here instead",
            ));
            None
        }
        // Its own file reports an unsupported type.
        _ => None,
    }
}

/// `Target`, `Allow`, `Deny`, `Mapping` and `Group` of `Backends[i]`, compiled.
fn shape(f: &str, i: usize, b: &AggregateBackendConf, errors: &mut ConfigErrors) -> Option<Shape> {
    let before = errors.0.len();
    let mut path = |name: &str, j: Option<usize>, text: &str| {
        let field = match j {
            Some(j) => format!("Backends[{i}].{name}[{j}]"),
            None => format!("Backends[{i}].{name}"),
        };
        Path::parse(text)
            .map_err(|problem| {
                errors.push(ConfigError::new(
                    f,
                    field,
                    problem,
                    "write field names joined by dots, like \"address.city\"",
                ))
            })
            .ok()
    };
    let target = b.target.as_deref().and_then(|t| path("Target", None, t));
    let allow: Vec<Path> = (b.allow.iter().enumerate())
        .filter_map(|(j, t)| path("Allow", Some(j), t))
        .collect();
    let deny: Vec<Path> = (b.deny.iter().enumerate())
        .filter_map(|(j, t)| path("Deny", Some(j), t))
        .collect();
    for (from, to) in &b.mapping {
        if from.is_empty() || to.is_empty() || from.contains('.') || to.contains('.') {
            errors.push(ConfigError::new(
                f,
                format!("Backends[{i}].Mapping.{from}"),
                format!("{from:?} -> {to:?}: Mapping renames top-level fields"),
                "map one field name to another, like {\"id\": \"userId\"}",
            ));
        }
    }
    (errors.0.len() == before).then(|| Shape {
        target,
        allow,
        deny,
        mapping: b
            .mapping
            .iter()
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect(),
        group: b.group.clone(),
    })
}

/// The `${backends.N.body...}` references of backend `i`'s URI: only to an earlier backend,
/// and only when the calls are sequential (else the answer read is not there yet).
fn check_refs(
    f: &str,
    i: usize,
    sequential: bool,
    backend: &CheckedIntegration<'_>,
    errors: &mut ConfigErrors,
) -> Vec<BodyRef> {
    let uri = &backend.res.conf.integration_uri;
    // A malformed one is reported at the backend's own file.
    let found = refs::find(uri).unwrap_or_default();
    let field = format!("Backends[{i}].Integration");
    for r in &found {
        if !sequential {
            errors.push(ConfigError::new(
                f,
                &field,
                format!(
                    "{}'s IntegrationUri reads ${{{}}}, but the backends are called at the same time",
                    backend.res.file, r.var
                ),
                "set \"Sequential\": true, or stop reading an earlier answer",
            ));
            break;
        }
        if r.backend >= i {
            errors.push(ConfigError::new(
                f,
                &field,
                format!(
                    "{}'s IntegrationUri reads ${{{}}}, but backend {} is not called before this one (it is #{i})",
                    backend.res.file, r.var, r.backend
                ),
                format!("read an earlier backend (0..{i}), or move this one after it"),
            ));
        }
    }
    found
}

/// Routes targeting an aggregate must have every path variable its backends' URIs use;
/// routes may not target a URI reading `${backends...}` directly (no earlier answer).
fn check_routes(
    config: &Config,
    integrations: &HashMap<&str, CheckedIntegration<'_>>,
    errors: &mut ConfigErrors,
) {
    for r in &config.routes {
        let Some(id) = r
            .conf
            .target
            .as_deref()
            .and_then(|t| reference(t, "integrations"))
        else {
            continue;
        };
        let Some(target) = integrations.get(id).map(|i| &i.res.conf) else {
            continue;
        };
        let Ok(key) = RouteKey::parse(&r.conf.route_key) else {
            continue;
        };
        let vars: Vec<&str> = key.variables().collect();
        if target.integration_uri.contains(refs::PREFIX) {
            errors.push(ConfigError::new(
                &r.file,
                "Target",
                format!("integrations/{id} reads ${{backends...}}, which only an AGGREGATE's later backend has"),
                "target the AGGREGATE that lists it among its Backends",
            ));
        }
        if target.integration_type != TYPE {
            continue;
        }
        for b in target.backends.iter().flatten() {
            let Some(bi) =
                reference(&b.integration, "integrations").and_then(|b| integrations.get(b))
            else {
                continue;
            };
            for v in uri_vars(&bi.res.conf.integration_uri) {
                if !vars.contains(&v.as_str()) {
                    errors.push(ConfigError::new(
                        &r.file,
                        "Target",
                        format!(
                            "{} (a backend of integrations/{id}) uses {{{v}}} but route key {:?} has no such variable",
                            bi.res.file, r.conf.route_key
                        ),
                        format!("add {{{v}}} to the route path or remove it from that IntegrationUri"),
                    ));
                }
            }
        }
    }
}

/// The aggregate as the stage in `stage_file` serves it: each backend compiled for the
/// stage too. `None` when one cannot be (reported).
pub(super) fn compile(
    a: &CheckedAggregate<'_>,
    i: &CheckedIntegration<'_>,
    checked: &Checked<'_>,
    stage_file: &str,
    vars: &BTreeMap<String, String>,
    errors: &mut ConfigErrors,
) -> Option<Integration> {
    let mut backends = Vec::with_capacity(a.backends.len());
    for (id, shape, refs) in &a.backends {
        let b = checked.integrations.get(id)?;
        let integration =
            super::compile::compile_integration(b, checked, stage_file, vars, errors)?;
        backends.push(Backend {
            integration: Arc::new(integration),
            shape: shape.clone(),
            refs: refs.clone(),
        });
    }
    let (request, response) = i.mappings.for_stage(vars);
    Some(Integration {
        id: i.res.id.clone(),
        kind: Kind::Aggregate(Aggregate {
            backends,
            sequential: a.sequential,
            timeout: a.timeout,
            on_error: a.on_error,
            max_backend_bytes: a.max_backend_bytes,
        }),
        request,
        response,
    })
}
