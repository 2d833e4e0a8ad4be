//! `Policies` blocks, and the mapping pairs in them and in integrations, compiled once when
//! checked and reused by every stage. Only a mapping that reads stage variables is compiled
//! again per stage: the stage's values are part of its compiled form.

use super::Policies;
use crate::config::{ConfigErrors, PoliciesConf};
use crate::mapping::{mapping_references, Reference, RequestMapping, ResponseMapping};
use crate::policy::ipfilter::IpFilter;
use crate::policy::ratelimit::RateLimit;
use crate::policy::ratelimit::{self, KeySource};
use std::collections::BTreeMap;
use std::sync::Arc;

type RequestConf = BTreeMap<String, String>;
type ResponseConf = BTreeMap<String, BTreeMap<String, String>>;

/// A `RequestParameters` and `ResponseParameters` pair, compiled without stage variables.
pub(super) struct MappingPair<'c> {
    file: &'c str,
    /// Before the field names: "" in an integration, "Policies." in a `Policies` block.
    prefix: &'static str,
    request_conf: &'c RequestConf,
    response_conf: &'c ResponseConf,
    request: RequestMapping,
    response: ResponseMapping,
    /// Some value reads `$stageVariables.NAME`: each stage compiles its own.
    reads_stage_vars: bool,
}

impl<'c> MappingPair<'c> {
    /// Compiles the pair, reporting its errors.
    pub fn compile(
        file: &'c str,
        prefix: &'static str,
        request_conf: &'c RequestConf,
        response_conf: &'c ResponseConf,
        errors: &mut ConfigErrors,
    ) -> Self {
        let no_vars = BTreeMap::new();
        let request = compile_request(file, prefix, request_conf, &no_vars, errors);
        let response = compile_response(file, prefix, response_conf, &no_vars, errors);
        let reads_stage_vars = mapping_refs(request_conf, response_conf, prefix)
            .iter()
            .any(|(_, r)| matches!(r, Reference::StageVariable(_)));
        MappingPair {
            file,
            prefix,
            request_conf,
            response_conf,
            request,
            response,
            reads_stage_vars,
        }
    }

    /// The pair as the stage with `vars` uses it.
    pub fn for_stage(&self, vars: &BTreeMap<String, String>) -> (RequestMapping, ResponseMapping) {
        if !self.reads_stage_vars {
            return (self.request.clone(), self.response.clone());
        }
        // `compile` reported the errors; this pass only fills in the stage's values.
        let mut reported = ConfigErrors::default();
        let (file, prefix) = (self.file, self.prefix);
        (
            compile_request(file, prefix, self.request_conf, vars, &mut reported),
            compile_response(file, prefix, self.response_conf, vars, &mut reported),
        )
    }
}

/// The api's or a route's `Policies`, checked and compiled once for every stage.
pub(super) struct PolicyBlock<'c> {
    pub ip_filter: Option<IpFilter>,
    /// Its scope is given per stage (see `for_stage`).
    rate_limit: Option<RateLimit>,
    mappings: MappingPair<'c>,
}

impl<'c> PolicyBlock<'c> {
    /// Compiles `conf` (from `file`), reporting its errors.
    pub fn compile(file: &'c str, conf: &'c PoliciesConf, errors: &mut ConfigErrors) -> Self {
        let rate_limit = rate_limit(file, conf, "", errors);
        let ip_filter = ip_filter(file, conf, errors);
        let mappings = MappingPair::compile(
            file,
            "Policies.",
            &conf.request_parameters,
            &conf.response_parameters,
            errors,
        );
        PolicyBlock {
            ip_filter,
            rate_limit,
            mappings,
        }
    }

    /// The block as the stage with `vars` uses it, its rate limit counted under `scope`.
    pub fn for_stage(&self, scope: &str, vars: &BTreeMap<String, String>) -> Policies {
        let (request, response) = self.mappings.for_stage(vars);
        Policies {
            ip_filter: self.ip_filter.clone(),
            rate_limit: self.rate_limit.as_ref().map(|r| RateLimit {
                scope: Arc::from(scope),
                ..r.clone()
            }),
            request,
            response,
        }
    }
}

/// A stage's own `Policies`: compiled once, with its stage variables, reporting errors.
pub(super) fn compile_stage_policies(
    file: &str,
    conf: &PoliciesConf,
    vars: &BTreeMap<String, String>,
    scope: &str,
    errors: &mut ConfigErrors,
) -> Policies {
    let rate_limit = rate_limit(file, conf, scope, errors);
    Policies {
        rate_limit,
        ip_filter: ip_filter(file, conf, errors),
        request: compile_request(file, "Policies.", &conf.request_parameters, vars, errors),
        response: compile_response(file, "Policies.", &conf.response_parameters, vars, errors),
    }
}

/// The block's `RateLimit`, `None` when it has errors (reported).
fn rate_limit(
    file: &str,
    conf: &PoliciesConf,
    scope: &str,
    errors: &mut ConfigErrors,
) -> Option<RateLimit> {
    let r = conf.rate_limit.as_ref()?;
    let before = errors.0.len();
    ratelimit::validate(file, "Policies.RateLimit", r, errors);
    let key = KeySource::parse(&r.key)?;
    (errors.0.len() == before).then(|| RateLimit {
        scope: Arc::from(scope),
        calls: r.calls,
        period_secs: r.period_seconds,
        key,
    })
}

fn ip_filter(file: &str, conf: &PoliciesConf, errors: &mut ConfigErrors) -> Option<IpFilter> {
    let f = conf.ip_filter.as_ref()?;
    IpFilter::compile(file, "Policies.IpFilter", f, errors)
}

fn compile_request(
    file: &str,
    prefix: &str,
    map: &RequestConf,
    vars: &BTreeMap<String, String>,
    errors: &mut ConfigErrors,
) -> RequestMapping {
    let field = format!("{prefix}RequestParameters");
    RequestMapping::compile(file, &field, map, vars, errors)
}

fn compile_response(
    file: &str,
    prefix: &str,
    map: &ResponseConf,
    vars: &BTreeMap<String, String>,
    errors: &mut ConfigErrors,
) -> ResponseMapping {
    let field = format!("{prefix}ResponseParameters");
    ResponseMapping::compile(file, &field, map, vars, errors)
}

/// Each `(field, reference)` in a pair of `RequestParameters` and `ResponseParameters`,
/// fields spelled as in the file (`prefix` for a `Policies` block).
pub(super) fn mapping_refs(
    request: &RequestConf,
    response: &ResponseConf,
    prefix: &str,
) -> Vec<(String, Reference)> {
    let request = request
        .iter()
        .map(|(k, v)| (format!("{prefix}RequestParameters.{k}"), k, v));
    let response = response.iter().flat_map(|(status, entries)| {
        entries
            .iter()
            .map(move |(k, v)| (format!("{prefix}ResponseParameters.{status}.{k}"), k, v))
    });
    mapping_references(request.chain(response))
}
