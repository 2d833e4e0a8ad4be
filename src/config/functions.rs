//! The Lambda functions a template names, made into functions apigate runs. A SAM or
//! CloudFormation template (or an OpenAPI body inside one) says everything a local instance
//! needs (`CodeUri`, `Handler`, `Runtime`, `Environment`): such an `AWS_PROXY` integration
//! becomes a `functions/` entry and an integration that targets it, and the routes that were
//! kept aside only for it are served. An integration naming a function the document does
//! not define (a bare ARN), or whose code is not a directory here (an S3 location, a path
//! that does not exist), stays aside with its warning. `export` writes what was read, so
//! this runs only for `serve`, `check` and reloads (`load_served`).

use super::model::{FunctionConf, FunctionEnvironment, IntegrationConf, LambdaConf};
use super::{Config, Resource};

/// Promotes every pending Lambda integration whose function can run here.
pub fn serve_local(config: &mut Config) {
    let lambdas = std::mem::take(&mut config.pending.lambdas);
    let mut served = Vec::new();
    let mut served_names = Vec::new();
    for l in lambdas {
        match function(&l.conf).filter(|f| config.dir.join(&f.code_uri).is_dir()) {
            Some(function) => {
                let fid = function_id(&l.conf, &l.id);
                if !config.functions.iter().any(|f| f.id == fid) {
                    config.functions.push(Resource {
                        id: fid.clone(),
                        file: l.file.clone(),
                        conf: function,
                    });
                }
                config.integrations.push(Resource {
                    id: l.id.clone(),
                    file: l.file.clone(),
                    conf: IntegrationConf {
                        integration_type: "AWS_PROXY".into(),
                        integration_uri: format!("functions/{fid}"),
                        payload_format_version: Some(l.conf.payload_format_version.clone()),
                        timeout_in_millis: l.conf.timeout_in_millis,
                        ..IntegrationConf::default()
                    },
                });
                served.push(l.id.clone());
                served_names.push(l.conf.function_name.clone().unwrap_or(l.conf.uri.clone()));
            }
            None => config.pending.lambdas.push(l),
        }
    }
    if served.is_empty() {
        return;
    }
    let targets: Vec<String> = served
        .iter()
        .map(|id| format!("integrations/{id}"))
        .collect();
    let (now, still): (Vec<_>, Vec<_>) = std::mem::take(&mut config.pending.routes)
        .into_iter()
        .partition(|r| {
            r.conf.target.as_ref().is_some_and(|t| targets.contains(t))
                && r.conf.authorization_type.as_deref() != Some("AWS_IAM")
                && !r.conf.authorizer_id.as_ref().is_some_and(|a| {
                    config
                        .pending
                        .authorizers
                        .iter()
                        .any(|p| a.ends_with(&p.id))
                })
        });
    config.pending.routes = still;
    // Their "not served yet" warnings no longer hold.
    let stale: Vec<String> = now
        .iter()
        .map(|r| format!("route {:?} not served", r.conf.route_key))
        .chain(
            served_names
                .iter()
                .map(|n| format!("Lambda integration: not served yet (function {n})")),
        )
        .collect();
    config
        .warnings
        .retain(|w| !stale.iter().any(|k| w.problem.starts_with(k.as_str())));
    config.routes.extend(now);
}

/// The function to run, when the document says how.
fn function(l: &LambdaConf) -> Option<FunctionConf> {
    let code_uri = l.code_uri.clone()?;
    let runtime = l.runtime.clone()?;
    Some(FunctionConf {
        function_name: l.function_name.clone(),
        code_uri,
        handler: l.handler.clone().unwrap_or_default(),
        runtime,
        environment: (!l.environment.is_empty()).then(|| FunctionEnvironment {
            variables: l.environment.clone(),
        }),
        timeout: l.function_timeout_seconds,
        memory_size: l.memory_size,
        ..FunctionConf::default()
    })
}

/// A file-name-safe id for the function: its name, else the integration's id.
fn function_id(l: &LambdaConf, integration_id: &str) -> String {
    let name = l.function_name.as_deref().unwrap_or(integration_id);
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
