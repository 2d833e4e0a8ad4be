//! `functions/*.json` and AWS_PROXY integrations: each function resolved to the local
//! host's running `Function` (kept warm across reloads while unchanged), each AWS_PROXY
//! `IntegrationUri` to one of them, or to `LambdaEndpoint` when none is defined locally.

use crate::config::{Config, ConfigError, ConfigErrors, IntegrationConf, Resource};
use crate::integration::aws_proxy::{function_ref, PayloadFormat, Target};
use crate::lambda::remote::{Endpoint, RemoteFunction};
use crate::lambda::{Function, FunctionSpec};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Lambda's defaults and limits (AWS "Lambda quotas").
const DEFAULT_TIMEOUT_S: u64 = 3;
const MAX_TIMEOUT_S: u64 = 900;
const DEFAULT_MEMORY_MB: u64 = 128;
const DEFAULT_INSTANCES: usize = 4;
const MAX_INSTANCES: usize = 256;

/// The functions an AWS_PROXY integration may name.
pub(super) struct Functions {
    /// Every function that loaded, by file id and by `FunctionName`.
    pub local: HashMap<String, Arc<Function>>,
    /// `gateway.json` `LambdaEndpoint`, for every other name.
    pub remote: Option<Arc<Endpoint>>,
}

/// Every local function, and the remote endpoint.
pub(super) fn load(config: &Config, errors: &mut ConfigErrors) -> Functions {
    let remote = config.gateway.lambda_endpoint.as_deref().and_then(|url| {
        crate::lambda::remote::endpoint(url)
            .map_err(|(problem, fix)| {
                errors.push(ConfigError::new(
                    "gateway.json",
                    "LambdaEndpoint",
                    problem,
                    fix,
                ))
            })
            .ok()
    });
    Functions {
        local: load_local(config, errors),
        remote,
    }
}

/// Lambda's function names (`[A-Za-z0-9_-]`, 1 to 64 characters): what a remote Invoke API
/// path can carry without escaping.
fn is_function_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn load_local(config: &Config, errors: &mut ConfigErrors) -> HashMap<String, Arc<Function>> {
    let mut out = HashMap::new();
    for r in &config.functions {
        let c = &r.conf;
        let f = r.file.as_str();
        let name = c.function_name.clone().unwrap_or_else(|| r.id.clone());
        let timeout = c.timeout.unwrap_or(DEFAULT_TIMEOUT_S);
        if !(1..=MAX_TIMEOUT_S).contains(&timeout) {
            errors.push(ConfigError::new(
                f,
                "Timeout",
                format!("{timeout} is outside 1..900"),
                "use a number of seconds from 1 to 900 (Lambda's limits)",
            ));
            continue;
        }
        let instances = c.instances.unwrap_or(DEFAULT_INSTANCES);
        if !(1..=MAX_INSTANCES).contains(&instances) {
            errors.push(ConfigError::new(
                f,
                "Instances",
                format!("{instances} is outside 1..{MAX_INSTANCES}"),
                "use a number of warm instances from 1 to 256",
            ));
            continue;
        }
        let code_dir = config.dir.join(&c.code_uri);
        let Ok(code_dir) = code_dir.canonicalize() else {
            errors.push(ConfigError::new(
                f,
                "CodeUri",
                format!("{} is not a directory", code_dir.display()),
                "set CodeUri to the function's code directory, relative to the configuration",
            ));
            continue;
        };
        if c.command.as_ref().is_some_and(|c| c.is_empty()) {
            errors.push(ConfigError::new(
                f,
                "Command",
                "is empty",
                "give the program and its arguments, or remove Command",
            ));
            continue;
        }
        let spec = FunctionSpec {
            name: Arc::from(name.as_str()),
            code_dir,
            handler: c.handler.clone(),
            runtime: c.runtime.clone(),
            environment: c
                .environment
                .as_ref()
                .map(|e| e.variables.clone())
                .unwrap_or_default(),
            timeout: Duration::from_secs(timeout),
            memory_mb: c.memory_size.unwrap_or(DEFAULT_MEMORY_MB),
            instances,
            command: c.command.clone(),
        };
        match crate::lambda::function(spec) {
            Ok(func) => {
                out.insert(r.id.clone(), func.clone());
                out.insert(name, func);
            }
            Err((problem, fix)) => errors.push(ConfigError::new(f, "Runtime", problem, fix)),
        }
    }
    out
}

/// An AWS_PROXY integration, checked: its function and payload format.
pub(super) fn check_integration(
    r: &Resource<IntegrationConf>,
    functions: &Functions,
    errors: &mut ConfigErrors,
) -> Option<(Target, PayloadFormat)> {
    let c = &r.conf;
    let f = r.file.as_str();
    let format = match c.payload_format_version.as_deref() {
        None | Some("2.0") => Some(PayloadFormat::V2),
        Some("1.0") => Some(PayloadFormat::V1),
        Some(v) => {
            errors.push(ConfigError::new(
                f,
                "PayloadFormatVersion",
                format!("{v:?} is not a Lambda payload format"),
                "use \"2.0\" or \"1.0\"",
            ));
            None
        }
    };
    let Some(name) = function_ref(&c.integration_uri) else {
        errors.push(ConfigError::new(
            f,
            "IntegrationUri",
            format!("{:?} names no Lambda function", c.integration_uri),
            "use functions/<id>, arn:aws:lambda:REGION:ACCOUNT:function:NAME or its apigateway invocation URI",
        ));
        return None;
    };
    match functions.resolve(name) {
        Ok(target) => Some((target, format?)),
        Err((problem, fix)) => {
            errors.push(ConfigError::new(f, "IntegrationUri", problem, fix));
            None
        }
    }
}

impl Functions {
    /// The function `name` stands for: defined locally, else behind `LambdaEndpoint`.
    /// `Err`: (problem, fix).
    pub(super) fn resolve(&self, name: &str) -> Result<Target, (String, String)> {
        if let Some(func) = self.local.get(name) {
            return Ok(Target::Local(func.clone()));
        }
        let Some(endpoint) = &self.remote else {
            return Err((
                format!("function {name:?} is not defined"),
                format!("add functions/{name}.json (CodeUri, Handler, Runtime), or set LambdaEndpoint (gateway.json or --lambda-endpoint) to invoke it remotely"),
            ));
        };
        if !is_function_name(name) {
            return Err((
                format!("{name:?} is not a Lambda function name"),
                "use 1 to 64 letters, digits, '-' or '_'".into(),
            ));
        }
        let remote = RemoteFunction::new(name, endpoint.clone());
        Ok(Target::Remote(Arc::new(remote)))
    }
}
