//! `Table::compile` on small configurations: which errors, how often, naming what.

use super::stage_vars::{substitute_stage_vars, with_sample_stage_vars};
use super::validate::uri_vars;
use super::*;
use crate::config::Resource;
use std::collections::BTreeMap;

/// A configuration from `(file, JSON)` pairs, as `config::load` would give it.
fn config(files: &[(&str, &str)]) -> Config {
    let mut c = Config::default();
    for (rel, text) in files {
        let (kind, name) = rel.split_once('/').unwrap();
        let (id, file) = (name.trim_end_matches(".json").to_string(), rel.to_string());
        match kind {
            "routes" => c.routes.push(Resource {
                id,
                file,
                conf: serde_json::from_str(text).unwrap(),
            }),
            "integrations" => c.integrations.push(Resource {
                id,
                file,
                conf: serde_json::from_str(text).unwrap(),
            }),
            _ => {
                c.has_stages_dir = true;
                c.stages.push(Resource {
                    id,
                    file,
                    conf: serde_json::from_str(text).unwrap(),
                })
            }
        }
    }
    c
}

fn errors(files: &[(&str, &str)]) -> Vec<String> {
    match Table::compile(&config(files), None) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

const UP: &str = r#""IntegrationType":"HTTP_PROXY","IntegrationUri":"http://127.0.0.1:9""#;

#[test]
fn path_variables_of_a_mapping_are_checked_for_every_route_using_it() {
    let i =
        format!(r#"{{{UP},"RequestParameters":{{"overwrite:header.X-Id":"$request.path.id"}}}}"#);
    let e = errors(&[
        ("integrations/i.json", &i),
        (
            "routes/a.json",
            r#"{"RouteKey":"GET /a/{id}","Target":"integrations/i"}"#,
        ),
        (
            "routes/b.json",
            r#"{"RouteKey":"GET /b","Target":"integrations/i"}"#,
        ),
        (
            "routes/c.json",
            r#"{"RouteKey":"GET /c/{x}","Target":"integrations/i","Policies":{"RequestParameters":{"overwrite:header.X-Y":"$request.path.y"}}}"#,
        ),
    ]);
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(e[0].starts_with("integrations/i.json: RequestParameters.overwrite:header.X-Id: reads $request.path.id, but route key \"GET /b\" of routes/b.json"), "{e:#?}");
    assert!(e[1].contains("routes/c.json"), "{e:#?}");
    assert!(
        e[2].starts_with("routes/c.json: Policies.RequestParameters.overwrite:header.X-Y"),
        "{e:#?}"
    );
}

#[test]
fn stage_variables_of_mappings_are_checked_per_stage_and_other_errors_once() {
    let i = format!(
        r#"{{{UP},"RequestParameters":{{"overwrite:header.X-Env":"${{stageVariables.env}}","overwrite:header.Host":"h"}}}}"#
    );
    let e = errors(&[
        ("integrations/i.json", &i),
        (
            "routes/a.json",
            r#"{"RouteKey":"GET /a","Target":"integrations/i","Policies":{"RequestParameters":{"overwrite:header.X-R":"$stageVariables.r"}}}"#,
        ),
        (
            "stages/p.json",
            r#"{"Name":"p","StageVariables":{"env":"prod","r":"1"}}"#,
        ),
        ("stages/q.json", r#"{"Name":"q"}"#),
        ("stages/u.json", r#"{"Name":"u"}"#),
    ]);
    let reserved: Vec<_> = e.iter().filter(|l| l.contains("header.Host")).collect();
    assert_eq!(reserved.len(), 1, "{e:#?}");
    for stage in ["stages/q.json", "stages/u.json"] {
        for field in [
            "integrations/i.json: RequestParameters.overwrite:header.X-Env",
            "routes/a.json: Policies.RequestParameters.overwrite:header.X-R",
        ] {
            let n = e
                .iter()
                .filter(|l| l.starts_with(field) && l.contains(stage))
                .count();
            assert_eq!(n, 1, "{field} in {stage}: {e:#?}");
        }
    }
    assert_eq!(e.len(), 5, "{e:#?}");
}

#[test]
fn duplicate_routes_are_reported_once_naming_both_files() {
    let i = format!("{{{UP}}}");
    let e = errors(&[
        ("integrations/i.json", &i),
        (
            "routes/a.json",
            r#"{"RouteKey":"GET /p/{id}","Target":"integrations/i"}"#,
        ),
        (
            "routes/b.json",
            r#"{"RouteKey":"GET /p/{name}","Target":"integrations/i"}"#,
        ),
        (
            "routes/c.json",
            r#"{"RouteKey":"ANY /p/{name}","Target":"integrations/i"}"#,
        ),
        (
            "stages/s.json",
            r#"{"Name":"s","Routes":["routes/a","routes/b","routes/c"]}"#,
        ),
    ]);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0].starts_with("routes/b.json: RouteKey"), "{e:#?}");
    assert!(e[0].contains("routes/a.json"), "{e:#?}");
}

#[test]
fn route_settings_of_a_route_with_errors_are_not_reported_as_unknown() {
    let e = errors(&[
        (
            "routes/a.json",
            r#"{"RouteKey":"GET /a","Target":"integrations/gone"}"#,
        ),
        (
            "stages/s.json",
            r#"{"Name":"s","RouteSettings":{"GET /a":{"ThrottlingBurstLimit":1},"GET /b":{"ThrottlingBurstLimit":1}}}"#,
        ),
    ]);
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(e[0].starts_with("routes/a.json: Target"), "{e:#?}");
    assert!(
        e[1].starts_with("stages/s.json: RouteSettings.GET /b"),
        "{e:#?}"
    );
}

#[test]
fn helpers() {
    assert_eq!(
        uri_vars("http://h/${stageVariables.x}/{id}/{proxy+}"),
        vec!["id", "proxy"]
    );
    let vars: BTreeMap<String, String> = [("host".to_string(), "127.0.0.1:9".to_string())].into();
    assert_eq!(
        substitute_stage_vars("http://${stageVariables.host}/a", &vars, "stages/s.json").unwrap(),
        "http://127.0.0.1:9/a"
    );
    let (problem, fix) =
        substitute_stage_vars("http://${stageVariables.nope}/a", &vars, "stages/s.json")
            .unwrap_err();
    assert!(problem.contains("stages/s.json"), "{problem}");
    assert!(fix.contains("StageVariables in stages/s.json"), "{fix}");
    assert_eq!(
        with_sample_stage_vars("http://${stageVariables.h}:${stageVariables.p}/x").unwrap(),
        "http://1:1/x"
    );
    assert!(with_sample_stage_vars("http://${stageVariables.h/x").is_err());
}
