//! Stage variables: the checks that each stage defines those its mappings read, and their
//! substitution into an IntegrationUri. Mappings substitute their own when compiled
//! (`crate::mapping`); a missing one would silently read as "", hence the checks.

use super::policies::mapping_refs;
use super::validate::reference;
use crate::config::{Config, ConfigError, ConfigErrors, PoliciesConf, StageConf};
use crate::mapping::Reference;
use std::collections::BTreeMap;

/// Reports each `$stageVariables.NAME` a mapping pair reads that the stage in
/// `stage_file` does not define (it would read as "").
pub(super) fn check_stage_references(
    file: &str,
    request: &BTreeMap<String, String>,
    response: &BTreeMap<String, BTreeMap<String, String>>,
    prefix: &str,
    stage_file: &str,
    vars: &BTreeMap<String, String>,
    errors: &mut ConfigErrors,
) {
    for (field, r) in mapping_refs(request, response, prefix) {
        if let Reference::StageVariable(name) = r {
            if !vars.contains_key(&name) {
                let (problem, fix) = undefined_stage_variable(&name, stage_file);
                errors.push(ConfigError::new(file, field, problem, fix));
            }
        }
    }
}

/// The words for a stage variable that a stage lacks.
fn undefined_stage_variable(name: &str, stage_file: &str) -> (String, String) {
    if stage_file.starts_with('(') {
        (
            format!("reads stage variable {name:?}, but there is no stage to define it ({stage_file} has none)"),
            format!("add a stages/ file with \"StageVariables\": {{\"{name}\": \"...\"}}"),
        )
    } else {
        (
            format!("reads stage variable {name:?}, which {stage_file} does not define"),
            format!("add \"{name}\" to StageVariables in {stage_file}, or stop reading it"),
        )
    }
}

/// Stage variables read by the api's, this stage's and its routes' policy mappings must be
/// defined by the stage: they are compiled per stage, where a missing one reads as "".
pub(super) fn check_policy_stage_variables(
    config: &Config,
    stage_file: &str,
    stage: &StageConf,
    errors: &mut ConfigErrors,
) {
    let vars = &stage.stage_variables;
    let mut scopes: Vec<(&str, &PoliciesConf)> = Vec::new();
    scopes.extend(config.api.policies.as_ref().map(|p| ("api.json", p)));
    scopes.extend(stage.policies.as_ref().map(|p| (stage_file, p)));
    for r in &config.routes {
        let served = match &stage.routes {
            None => true,
            Some(list) => list
                .iter()
                .any(|item| reference(item, "routes").unwrap_or(item) == r.id),
        };
        if let (true, Some(p)) = (served, &r.conf.policies) {
            scopes.push((&r.file, p));
        }
    }
    for (file, p) in scopes {
        check_stage_references(
            file,
            &p.request_parameters,
            &p.response_parameters,
            "Policies.",
            stage_file,
            vars,
            errors,
        );
    }
}

/// A stage variable value with a control character would put CR/LF into the header or
/// URL it is substituted into (RFC 9110 5.5), or be dropped there at run time: a config
/// error, said once per variable.
pub(super) fn check_stage_variable_values(
    file: &str,
    stage: &StageConf,
    errors: &mut ConfigErrors,
) {
    for (name, value) in &stage.stage_variables {
        if let Some(c) = value.chars().find(|c| c.is_control()) {
            errors.push(ConfigError::new(
                file,
                format!("StageVariables.{name}"),
                format!("the value holds the control character {c:?}"),
                "remove line breaks, tabs and other control characters from the value",
            ));
        }
    }
}

/// `${stageVariables.x}` in an IntegrationUri, substituted for the stage in `stage_file`.
pub(super) fn substitute_stage_vars(
    uri: &str,
    vars: &BTreeMap<String, String>,
    stage_file: &str,
) -> Result<String, (String, String)> {
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(start) = rest.find("${stageVariables.") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "${stageVariables.".len()..];
        let end = after.find('}').ok_or((
            "unclosed ${stageVariables.".to_string(),
            "close it: ${stageVariables.NAME}".to_string(),
        ))?;
        let name = &after[..end];
        let value = vars
            .get(name)
            .ok_or_else(|| undefined_stage_variable(name, stage_file))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The IntegrationUri with a sample value in each stage variable, to check its syntax
/// before any stage's values are known.
pub(super) fn with_sample_stage_vars(
    uri: &str,
) -> Result<String, crate::integration::http_proxy::UriError> {
    let sample = uri
        .split("${stageVariables.")
        .skip(1)
        .map(|s| s.split('}').next().unwrap_or(""))
        .map(|name| (name.to_string(), "1".to_string()))
        .collect();
    substitute_stage_vars(uri, &sample, "")
        .map_err(|(problem, fix)| crate::integration::http_proxy::UriError { problem, fix })
}
