//! A function as apigate runs it: where its code is, how its runtime starts (through the
//! runtime's own interface client), and the environment Lambda sets (AWS "Defined runtime
//! environment variables").

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The region local functions report; Lambda always sets one.
pub const REGION: &str = "us-east-1";
/// The account in local ARNs (AWS's documentation account).
pub const ACCOUNT: &str = "123456789012";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    pub name: Arc<str>,
    pub code_dir: PathBuf,
    pub handler: String,
    pub runtime: String,
    pub environment: BTreeMap<String, String>,
    pub timeout: Duration,
    pub memory_mb: u64,
    /// Warm instances at most (one invocation at a time each).
    pub instances: usize,
    /// `Command`: overrides how an instance starts (argv).
    pub command: Option<Vec<String>>,
}

/// Which interface client starts an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    Python,
    Node,
    Provided,
}

impl RuntimeKind {
    pub fn of(runtime: &str) -> Option<RuntimeKind> {
        if runtime.starts_with("python3") {
            Some(RuntimeKind::Python)
        } else if runtime.starts_with("nodejs") {
            Some(RuntimeKind::Node)
        } else if runtime.starts_with("provided") {
            Some(RuntimeKind::Provided)
        } else {
            None
        }
    }
}

impl FunctionSpec {
    pub fn arn(&self) -> String {
        format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{}", self.name)
    }

    fn argv(&self) -> Vec<String> {
        if let Some(c) = &self.command {
            return c.clone();
        }
        match RuntimeKind::of(&self.runtime) {
            Some(RuntimeKind::Python) => vec![
                python().to_string(),
                "-m".into(),
                "awslambdaric".into(),
                self.handler.clone(),
            ],
            Some(RuntimeKind::Node) => vec![
                "npx".into(),
                "--no-install".into(),
                "aws-lambda-ric".into(),
                self.handler.clone(),
            ],
            _ => vec![self.code_dir.join("bootstrap").display().to_string()],
        }
    }

    pub fn command(&self) -> tokio::process::Command {
        let argv = self.argv();
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }

    /// The variables Lambda sets, then the function's own (which cannot override the
    /// reserved ones, as in Lambda).
    pub fn environment(&self, runtime_api: &str) -> Vec<(String, String)> {
        let task_root = self.code_dir.display().to_string();
        let mut env: Vec<(String, String)> = self
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let reserved = [
            ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
            ("_HANDLER", self.handler.clone()),
            ("LAMBDA_TASK_ROOT", task_root.clone()),
            ("LAMBDA_RUNTIME_DIR", task_root),
            ("AWS_LAMBDA_FUNCTION_NAME", self.name.to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                self.memory_mb.to_string(),
            ),
            (
                "AWS_LAMBDA_FUNCTION_TIMEOUT",
                self.timeout.as_secs().to_string(),
            ),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", self.name),
            ),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "apigate".into()),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_DEFAULT_REGION", REGION.into()),
            ("AWS_EXECUTION_ENV", format!("AWS_Lambda_{}", self.runtime)),
            ("TZ", ":UTC".into()),
            ("PYTHONUNBUFFERED", "1".into()),
        ];
        env.retain(|(k, _)| !reserved.iter().any(|(r, _)| r == k));
        env.extend(reserved.into_iter().map(|(k, v)| (k.to_string(), v)));
        env
    }

    /// What must be installed for this runtime, checked once when the function is loaded:
    /// `Err` says what to install.
    pub fn check_runtime(&self) -> Result<(), (String, String)> {
        if self.command.is_some() {
            return Ok(());
        }
        match RuntimeKind::of(&self.runtime) {
            Some(RuntimeKind::Python) => {
                let ok = std::process::Command::new(python())
                    .args(["-c", "import awslambdaric"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    Ok(())
                } else {
                    Err((
                        format!(
                            "{} cannot import awslambdaric, the Python runtime interface client",
                            python()
                        ),
                        "pip install awslambdaric".into(),
                    ))
                }
            }
            Some(RuntimeKind::Node) => Ok(()),
            Some(RuntimeKind::Provided) => {
                let b = self.code_dir.join("bootstrap");
                if b.is_file() {
                    Ok(())
                } else {
                    Err((
                        format!("no executable {}", b.display()),
                        "build the function's bootstrap into its CodeUri".into(),
                    ))
                }
            }
            None => Err((
                format!("{:?} is not supported", self.runtime),
                "use a python3.*, nodejs* or provided* runtime, or set Command".into(),
            )),
        }
    }
}

/// The interpreter for `python3.*` runtimes: `APIGATE_PYTHON` or `python3` (one
/// interpreter for every Python version: apigate does not install Pythons).
fn python() -> String {
    std::env::var("APIGATE_PYTHON").unwrap_or_else(|_| "python3".into())
}
