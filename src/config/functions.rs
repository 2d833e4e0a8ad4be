//! The Lambda functions a template names, made into functions apigate runs. A SAM or
//! CloudFormation template (or an OpenAPI body inside one) says everything a local instance
//! needs (`CodeUri`, `Handler`, `Runtime`, `Environment`): such an `AWS_PROXY` integration
//! or Lambda authorizer becomes a `functions/` entry and an integration (authorizer) that
//! targets it, and the routes that were kept aside only for it are served. One naming a
//! function whose code is not a directory here (an S3 location, a bare ARN) is invoked
//! through `LambdaEndpoint` when one is set (`gateway.json`, `--lambda-endpoint`), and
//! otherwise stays aside with a warning that says how to serve it. `export` writes what was
//! read, so this runs only for `serve`, `check` and reloads (`crate::load`).

use super::model::{FunctionConf, FunctionEnvironment, IntegrationConf, LambdaConf};
use super::{Config, ConfigError, Resource};

/// How a function a document names is run here, if at all.
enum Runs {
    /// Its code is a local directory: a `functions/` entry with this id.
    Local(String),
    /// Through `LambdaEndpoint`, by this name.
    Remote(String),
    /// Neither: it stays aside.
    Not,
}

fn runs(config: &mut Config, l: &LambdaConf, owner: &str, file: &str) -> Runs {
    let mut l = std::borrow::Cow::Borrowed(l);
    if l.code_uri.is_none() && l.inline_code.is_some() {
        match inline::write(&config.dir, &l, &function_id(&l, owner)) {
            Ok(dir) => l.to_mut().code_uri = Some(dir),
            Err(e) => config.warnings.push(ConfigError::new(
                file,
                "Code.ZipFile",
                format!("the inline code could not be written out to run: {e}"),
                "make the template's directory writable, or give the function a CodeUri",
            )),
        }
    }
    let l = &*l;
    if let Some(function) = function(l).filter(|f| config.dir.join(&f.code_uri).is_dir()) {
        let fid = function_id(l, owner);
        if !config.functions.iter().any(|f| f.id == fid) {
            config.functions.push(Resource {
                id: fid.clone(),
                file: file.to_string(),
                conf: function,
            });
        }
        return Runs::Local(fid);
    }
    match (&config.gateway.lambda_endpoint, &l.function_name) {
        (Some(_), Some(name)) => Runs::Remote(name.clone()),
        _ => Runs::Not,
    }
}

/// Promotes every pending Lambda integration and authorizer whose function can run here,
/// and the routes that waited for them.
pub fn serve_pending(config: &mut Config) {
    let mut stale: Vec<String> = Vec::new();
    for l in std::mem::take(&mut config.pending.lambdas) {
        let uri = match runs(config, &l.conf, &l.id, &l.file) {
            Runs::Local(fid) | Runs::Remote(fid) => format!("functions/{fid}"),
            Runs::Not => {
                config.pending.lambdas.push(l);
                continue;
            }
        };
        config.integrations.push(Resource {
            id: l.id.clone(),
            file: l.file.clone(),
            conf: IntegrationConf {
                integration_type: "AWS_PROXY".into(),
                integration_uri: uri,
                payload_format_version: Some(l.conf.payload_format_version.clone()),
                timeout_in_millis: l.conf.timeout_in_millis,
                ..IntegrationConf::default()
            },
        });
        let name = l.conf.function_name.clone().unwrap_or(l.conf.uri.clone());
        stale.push(format!("Lambda integration (function {name}):"));
    }
    for mut a in std::mem::take(&mut config.pending.authorizers) {
        let uri = a.conf.authorizer_uri.clone().unwrap_or_default();
        let l = config
            .pending
            .authorizer_functions
            .get(&a.id)
            .cloned()
            .unwrap_or_else(|| LambdaConf {
                function_name: crate::integration::aws_proxy::function_ref(&uri)
                    .map(str::to_string),
                ..LambdaConf::default()
            });
        match runs(config, &l, &a.id, &a.file) {
            Runs::Local(fid) | Runs::Remote(fid) => {
                a.conf.authorizer_uri = Some(format!("functions/{fid}"));
                config.authorizers.push(a);
            }
            Runs::Not => {
                let name = l.function_name.as_deref().unwrap_or(uri.as_str());
                config.warnings.push(ConfigError::new(
                    &a.file,
                    "AuthorizerUri",
                    format!("Lambda authorizer {}: function {name:?} cannot run here (its code is not a local directory): the routes it guards are not served", a.id),
                    "give the function a local CodeUri, or pass --lambda-endpoint URL (sam local start-lambda) to invoke it",
                ));
                config.pending.authorizers.push(a);
            }
        }
    }
    serve_routes(config, stale);
}

/// Serves the pending routes whose integration and authorizer are now served.
fn serve_routes(config: &mut Config, mut stale: Vec<String>) {
    let served = |target: &str| {
        config
            .integrations
            .iter()
            .any(|i| target.strip_prefix("integrations/") == Some(i.id.as_str()))
    };
    let authorized = |id: &str| {
        config
            .authorizers
            .iter()
            .any(|a| id == a.id || id.strip_prefix("authorizers/") == Some(a.id.as_str()))
    };
    let (now, still): (Vec<_>, Vec<_>) = std::mem::take(&mut config.pending.routes)
        .into_iter()
        .partition(|r| {
            r.conf.target.as_deref().is_some_and(served)
                && r.conf.authorization_type.as_deref() != Some("AWS_IAM")
                && r.conf.authorizer_id.as_deref().is_none_or(authorized)
        });
    config.pending.routes = still;
    stale.extend(
        now.iter()
            .map(|r| format!("route {:?} not served", r.conf.route_key)),
    );
    // Their "not served yet" warnings no longer hold.
    config
        .warnings
        .retain(|w| !stale.iter().any(|k| w.problem.starts_with(k.as_str())));
    config.routes.extend(now);
    // A route still aside for its authorizer says so, once.
    let mut said = Vec::new();
    for r in &config.pending.routes {
        let key = format!("route {:?} not served", r.conf.route_key);
        let warned = config.warnings.iter().any(|w| w.problem.starts_with(&key));
        if let (false, Some(a)) = (warned, &r.conf.authorizer_id) {
            said.push(ConfigError::new(
                &r.file,
                "",
                format!("{key}: its Lambda authorizer {a} is not served"),
                "",
            ));
        }
    }
    config.warnings.extend(said);
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

/// A template's inline code (`Code.ZipFile`, SAM's `InlineCode`), written where a local
/// instance can load it: as CloudFormation packages it, a file named `index` with the
/// runtime's extension, under `.apigate/inline/<function>/` beside the template (as SAM
/// builds under `.aws-sam/`; never a shared temporary directory another user could plant
/// code in). Rewritten only when it changed.
mod inline {
    use super::LambdaConf;
    use std::path::Path;

    pub fn write(dir: &Path, l: &LambdaConf, id: &str) -> Result<String, String> {
        let code = l.inline_code.as_deref().unwrap_or_default();
        let runtime = l.runtime.as_deref().unwrap_or_default();
        let ext = if runtime.starts_with("python") {
            "py"
        } else if runtime.starts_with("nodejs") {
            "js"
        } else {
            return Err(format!(
                "runtime {runtime:?} takes no inline code (Python and Node.js do)"
            ));
        };
        let rel = format!(".apigate/inline/{id}");
        let code_dir = dir.join(&rel);
        let file = code_dir.join(format!("index.{ext}"));
        if std::fs::read_to_string(&file).is_ok_and(|old| old == code) {
            return Ok(rel);
        }
        std::fs::create_dir_all(&code_dir)
            .and_then(|()| std::fs::write(&file, code))
            .map_err(|e| format!("{}: {e}", file.display()))?;
        Ok(rel)
    }
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
