//! Every `--conf` into one table: each path read (a template may hold several APIs), each
//! API compiled, their ids checked, and `domains/` read over them. `check`, start-up and
//! reloads all come through here, so they accept and refuse the same things.

use crate::config::{self, cloudformation::Params, Config, ConfigError, ConfigErrors};
use crate::table::Table;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What loading says besides errors: features read but not served (`warnings`) and what
/// AWS's import ignores (`ignored`), each once even when several APIs of one template
/// repeat it. `check` prints them; `serve` and reloads log the warnings.
#[derive(Debug, Default)]
pub struct Notes {
    pub warnings: Vec<ConfigError>,
    pub ignored: Vec<ConfigError>,
}

fn push_new(list: &mut Vec<ConfigError>, e: ConfigError) {
    if !list.contains(&e) {
        list.push(e);
    }
}

/// What to load: every `--conf`, a template's parameter values, and `--lambda-endpoint`
/// (which wins over each configuration's `LambdaEndpoint`). Kept for every reload.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub paths: Vec<PathBuf>,
    pub params: Params,
    pub lambda_endpoint: Option<String>,
}

/// The loaded gateway: the first API's table (holding the others and the dispatcher).
pub struct Loaded {
    pub table: Table,
    /// How many APIs it serves.
    pub apis: usize,
    /// Routes read but not served yet (their features are in the warnings).
    pub pending_routes: usize,
}

/// Loads and compiles every API of `paths`, reporting every error of every document at
/// once. `previous` is the running table on reload: each API gets its predecessor by
/// position, so rate-limit counters and caches carry over. `open_logs`: open the access
/// log files (created if absent) – what a table about to serve needs, and `check` skips.
pub fn load(
    inputs: &Inputs,
    previous: Option<&Table>,
    open_logs: bool,
    notes: &mut Notes,
) -> Result<Loaded, ConfigErrors> {
    let paths = &inputs.paths;
    if paths.is_empty() {
        return Err(ConfigErrors(vec![ConfigError::new(
            "--conf",
            "",
            "no configuration given",
            "pass --conf DIR_OR_FILE",
        )]));
    }
    let several_paths = paths.len() > 1;
    let mut errors = ConfigErrors::default();
    // Every API, with the path it came from.
    let mut apis: Vec<(&Path, Config)> = Vec::new();
    for path in paths {
        match config::load_all_with(path, &inputs.params) {
            Ok(configs) => {
                for mut c in configs {
                    if let Some(url) = &inputs.lambda_endpoint {
                        c.gateway.lambda_endpoint = Some(url.clone());
                    }
                    config::functions::serve_pending(&mut c);
                    apis.push((path.as_path(), c));
                }
            }
            Err(e) => extend(&mut errors, e, several_paths.then_some(path.as_path())),
        }
    }
    let before: Vec<&Table> = previous.map_or_else(Vec::new, |p| {
        std::iter::once(p)
            .chain(p.apis.iter().flat_map(|a| a.others().iter().map(|t| &**t)))
            .collect()
    });
    let mut tables = Vec::with_capacity(apis.len());
    for (i, (path, config)) in apis.iter().enumerate() {
        for w in &config.warnings {
            push_new(&mut notes.warnings, w.clone());
        }
        for w in &config.ignored {
            push_new(&mut notes.ignored, w.clone());
        }
        let compiled = Table::compile(config, before.get(i).copied()).and_then(|t| {
            if open_logs {
                open_access_logs(&t)?;
            }
            Ok(t)
        });
        match compiled {
            Ok(t) => {
                for w in t.warnings(config) {
                    push_new(&mut notes.warnings, w);
                }
                tables.push((api_id(config, &t, path), t));
            }
            Err(e) => extend(&mut errors, e, several_paths.then_some(*path)),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    check_ids(&tables, &apis)?;
    let count = tables.len();
    let pending_routes = apis.iter().map(|(_, c)| c.pending.routes.len()).sum();
    let mut tables = tables.into_iter();
    let Some((first_id, mut table)) = tables.next() else {
        return Err(errors);
    };
    let dir = apis
        .first()
        .map_or(Path::new("."), |(_, c)| c.dir.as_path());
    let has_domains = dir.join("domains").is_dir();
    if count == 1 && !has_domains {
        return Ok(Loaded {
            table,
            apis: 1,
            pending_routes,
        });
    }
    let mut ids = vec![first_id];
    let mut stages = vec![stage_names(&table)];
    let mut others = Vec::with_capacity(count - 1);
    for (id, mut t) in tables {
        ids.push(id);
        stages.push(stage_names(&t));
        // The first API's gateway.json holds the process settings every API shares.
        t.settings = table.settings.clone();
        others.push(Arc::new(t));
    }
    let apis = crate::dispatch::Apis::build(dir, ids, others, &stages)?;
    if !apis.is_trivial() {
        table.apis = Some(Box::new(apis));
    }
    Ok(Loaded {
        table,
        apis: count,
        pending_routes,
    })
}

/// Adds `more` to `errors`; with several `--conf`, each error says which one it is from
/// (errors name their file relative to its own `--conf`).
fn extend(errors: &mut ConfigErrors, more: ConfigErrors, path: Option<&Path>) {
    for mut e in more.0 {
        if let Some(p) = path {
            if !e.file.starts_with(&*p.to_string_lossy()) {
                e.file = format!("{}: {}", p.display(), e.file);
            }
        }
        if !errors.0.contains(&e) {
            errors.push(e);
        }
    }
}

fn open_access_logs(table: &Table) -> Result<(), ConfigErrors> {
    let mut errors = ConfigErrors::default();
    for log in table.stages().filter_map(|s| s.access_log.as_ref()) {
        if let Err(e) = log.open() {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Two APIs with one id could not be told apart by `Host`, domain mappings, metrics or
/// access logs.
fn check_ids(tables: &[(String, Table)], apis: &[(&Path, Config)]) -> Result<(), ConfigErrors> {
    let mut errors = ConfigErrors::default();
    for (i, (id, _)) in tables.iter().enumerate() {
        if let Some(j) = tables[..i].iter().position(|(other, _)| other == id) {
            let (first, second) = (apis[j].0.display(), apis[i].0.display());
            errors.push(ConfigError::new(
                second.to_string(),
                "Name",
                format!("two APIs are named {id:?} (in {first} and in {second})"),
                "give each API its own Name (api.json Name, or the template's Name property)",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// An API's id in domain mappings: what the document decides (`Config::api_id`), else
/// `api.json` Name, else the file or directory name.
fn api_id(config: &Config, table: &Table, path: &Path) -> String {
    if let Some(id) = &config.api_id {
        return id.clone();
    }
    table.api_name().map(str::to_string).unwrap_or_else(|| {
        path.file_stem()
            .map_or(String::new(), |s| s.to_string_lossy().into_owned())
    })
}

fn stage_names(table: &Table) -> Vec<String> {
    table.stages().map(|s| s.name.to_string()).collect()
}
