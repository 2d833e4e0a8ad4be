//! Configuration that reads a client header whose name holds `_` while the gateway drops
//! such headers (`AllowUnderscoresInHeaders` off, see `request_head`): the read could never
//! see a value, so an identity source would refuse every request, a rate-limit key would
//! count every client as one and a mapping would always be empty. Said at load, with the fix,
//! instead of being found in production.

use crate::config::{Config, ConfigError, ConfigErrors, PoliciesConf};
use crate::mapping::{Side, Template, Var};
use std::collections::BTreeMap;

/// Reports every identity source, rate-limit key and mapping value that reads such a header.
pub(super) fn check(config: &Config, errors: &mut ConfigErrors) {
    if config.gateway.allow_underscores_in_headers == Some(true) {
        return;
    }
    for a in &config.authorizers {
        for (i, source) in a.conf.identity_source.iter().enumerate() {
            let field = format!("IdentitySource[{i}]");
            report(&a.file, &field, source, Side::Request, errors);
        }
    }
    if let Some(p) = &config.api.policies {
        policies("api.json", p, errors);
    }
    for s in &config.stages {
        if let Some(p) = &s.conf.policies {
            policies(&s.file, p, errors);
        }
    }
    for r in &config.routes {
        if let Some(p) = &r.conf.policies {
            policies(&r.file, p, errors);
        }
    }
    for i in &config.integrations {
        let c = &i.conf;
        parameters(
            &i.file,
            "RequestParameters",
            &c.request_parameters,
            Side::Request,
            errors,
        );
        for (status, entries) in &c.response_parameters {
            let field = format!("ResponseParameters.{status}");
            parameters(&i.file, &field, entries, Side::Response, errors);
        }
    }
}

fn policies(file: &str, p: &PoliciesConf, errors: &mut ConfigErrors) {
    if let Some(limit) = &p.rate_limit {
        report(
            file,
            "Policies.RateLimit.Key",
            &limit.key,
            Side::Request,
            errors,
        );
    }
    let field = "Policies.RequestParameters";
    parameters(file, field, &p.request_parameters, Side::Request, errors);
    for (status, entries) in &p.response_parameters {
        let field = format!("Policies.ResponseParameters.{status}");
        parameters(file, &field, entries, Side::Response, errors);
    }
}

/// The values of `remove:` keys are never read.
fn parameters(
    file: &str,
    field: &str,
    entries: &BTreeMap<String, String>,
    side: Side,
    errors: &mut ConfigErrors,
) {
    for (key, value) in entries.iter().filter(|(k, _)| !k.starts_with("remove:")) {
        report(file, &format!("{field}.{key}"), value, side, errors);
    }
}

fn report(file: &str, field: &str, value: &str, side: Side, errors: &mut ConfigErrors) {
    // A value that does not parse is reported where it is compiled.
    let Ok(template) = Template::parse(value, side, &BTreeMap::new()) else {
        return;
    };
    let underscored = |v: &Var| matches!(v, Var::RequestHeader(h) if h.as_str().contains('_'));
    if template.uses(underscored) {
        errors.push(ConfigError::new(
            file,
            field,
            format!(
                "{value:?} reads a client header whose name holds '_', which the gateway drops \
                 before anything reads it (as nginx does), so it never has a value"
            ),
            "have clients send the name with '-' instead of '_', or set \
             \"AllowUnderscoresInHeaders\": true in gateway.json",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AuthorizerConf, IntegrationConf, RateLimitConf, Resource};

    fn config(allow: Option<bool>) -> Config {
        let mut c = Config::default();
        c.gateway.allow_underscores_in_headers = allow;
        c.authorizers.push(Resource {
            id: "a".into(),
            file: "authorizers/a.json".into(),
            conf: AuthorizerConf {
                identity_source: vec![
                    "$request.header.Authorization".into(),
                    "$request.header.X_Token".into(),
                ],
                ..Default::default()
            },
        });
        c.api.policies = Some(PoliciesConf {
            rate_limit: Some(RateLimitConf {
                calls: 1,
                period_seconds: 1,
                key: "$request.header.api_key".into(),
            }),
            ..Default::default()
        });
        let integration = IntegrationConf {
            request_parameters: [
                (
                    "overwrite:header.X-A".to_string(),
                    "v=${request.header.x_a}".to_string(),
                ),
                (
                    "remove:header.X_B".to_string(),
                    "$request.header.x_b".to_string(),
                ),
                (
                    "overwrite:header.X_C".to_string(),
                    "$request.header.X-C".to_string(),
                ),
            ]
            .into(),
            ..Default::default()
        };
        c.integrations.push(Resource {
            id: "i".into(),
            file: "integrations/i.json".into(),
            conf: integration,
        });
        c
    }

    #[test]
    fn reads_of_dropped_headers_are_config_errors() {
        let mut errors = ConfigErrors::default();
        check(&config(None), &mut errors);
        let at: Vec<(&str, &str)> = errors
            .0
            .iter()
            .map(|e| (e.file.as_str(), e.field.as_str()))
            .collect();
        assert_eq!(
            at,
            [
                ("authorizers/a.json", "IdentitySource[1]"),
                ("api.json", "Policies.RateLimit.Key"),
                (
                    "integrations/i.json",
                    "RequestParameters.overwrite:header.X-A"
                ),
            ],
            "{errors}"
        );
        assert!(errors.0[0].fix.contains("AllowUnderscoresInHeaders"));
        // Setting an underscored header, or removing one, reads nothing.
        let mut errors = ConfigErrors::default();
        check(&config(Some(true)), &mut errors);
        assert!(errors.0.is_empty(), "{errors}");
    }
}
