//! `functions/*.json` and AWS_PROXY integrations: each function resolved to the local
//! host's running `Function` (kept warm across reloads while unchanged), each AWS_PROXY
//! `IntegrationUri` to one of them.

use crate::config::{Config, ConfigError, ConfigErrors, IntegrationConf, Resource};
use crate::integration::aws_proxy::{function_ref, PayloadFormat};
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

/// Every function that loaded, by file id and by `FunctionName`.
pub(super) fn load(config: &Config, errors: &mut ConfigErrors) -> HashMap<String, Arc<Function>> {
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
    functions: &HashMap<String, Arc<Function>>,
    errors: &mut ConfigErrors,
) -> Option<(Arc<Function>, PayloadFormat)> {
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
    let Some(func) = functions.get(name) else {
        errors.push(ConfigError::new(
            f,
            "IntegrationUri",
            format!("function {name:?} is not defined"),
            format!("add functions/{name}.json (CodeUri, Handler, Runtime)"),
        ));
        return None;
    };
    Some((func.clone(), format?))
}
