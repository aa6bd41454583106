//! The shipped deployment files (docker-compose.yml and deploy/), read as
//! they are and rewritten only where a container's path or address must
//! become one of this machine: every other field is carried along as
//! written, so a field added to a shipped file is run by the test too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use serde_norway::Value as Yaml;
use toml::{Table, Value as Toml};

use crate::support::{plugin_path, repo_root};

fn deploy_path(relative: &str) -> PathBuf {
    repo_root().join(relative)
}

fn read(relative: &str) -> String {
    let path = deploy_path(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

fn read_yaml(relative: &str) -> Yaml {
    serde_norway::from_str(&read(relative))
        .unwrap_or_else(|error| panic!("{relative} is not YAML: {error}"))
}

fn write_yaml(value: &Yaml, path: &Path) {
    let text = serde_norway::to_string(value).expect("YAML serializes");
    std::fs::write(path, text).expect("writing a rewritten file");
}

/// The topics docker-compose.yml's `kafka-topics` service creates, and
/// their partition count, from its shell command
/// (`for topic in A B C; do kafka-topics.sh --create ... --partitions N`).
pub fn compose_topics() -> (Vec<String>, i32) {
    let compose = read_yaml("docker-compose.yml");
    let command = compose["services"]["kafka-topics"]["command"][0]
        .as_str()
        .expect("kafka-topics runs one shell command");
    let list = command
        .split_once("for topic in ")
        .and_then(|(_, rest)| rest.split_once(';'))
        .map(|(list, _)| list)
        .expect("kafka-topics loops over its topics");
    let topics = list.split_whitespace().map(str::to_owned).collect();
    let partitions = command
        .split_once("--partitions ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|count| count.parse().ok())
        .expect("kafka-topics names a partition count");
    (topics, partitions)
}

/// A component path of the image (`/usr/share/runnel/plugins/NAME.wasm`)
/// becomes the plugin of that name built by this test run; a path relative
/// to its manifest (a team's own component) stays as it is.
fn built_component(path: &str) -> Toml {
    let path = Path::new(path);
    if !path.is_absolute() {
        return path.to_string_lossy().into_owned().into();
    }
    let name = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .expect("a component file name");
    plugin_path(name).to_string_lossy().into_owned().into()
}

/// Where one host's files are: its plugin directory and admin token file.
pub struct HostPaths<'a> {
    pub plugin_dir: &'a Path,
    pub admin_token_file: &'a Path,
}

/// deploy/runnel.toml for a host on this machine: the test broker, an HTTP
/// server on a free port of 127.0.0.1 (the host logs which), the plugin
/// directory and token file of `paths`, and the built plugins in place of
/// the image's. Returns the configuration's text.
pub fn host_config(brokers: &str, paths: &HostPaths) -> String {
    let mut config: Table = read("deploy/runnel.toml")
        .parse()
        .expect("deploy/runnel.toml is TOML");
    let path_value = |path: &Path| Toml::from(path.to_string_lossy().into_owned());
    set(&mut config, &["kafka", "brokers"], brokers.into());
    set(&mut config, &["http", "listen"], "127.0.0.1:0".into());
    let token = path_value(paths.admin_token_file);
    set(&mut config, &["http", "admin_token_file"], token);
    set(
        &mut config,
        &["plugins", "dir"],
        path_value(paths.plugin_dir),
    );
    let pipelines = config
        .get_mut("pipelines")
        .and_then(Toml::as_table_mut)
        .expect("deploy/runnel.toml has pipelines");
    for (_, pipeline) in pipelines.iter_mut() {
        let pipeline = pipeline.as_table_mut().expect("a pipeline is a table");
        if let Some(plugin) = pipeline.get("plugin").and_then(Toml::as_str) {
            let plugin = built_component(plugin);
            pipeline.insert("plugin".into(), plugin);
        }
    }
    toml::to_string(&config).expect("a table serializes")
}

/// Sets the value at `path` of an existing table, which must have every
/// table on the way: the shipped file names each field rewritten here.
fn set(table: &mut Table, path: &[&str], value: Toml) {
    let (last, parents) = path.split_last().expect("a non-empty path");
    let mut table = table;
    for key in parents {
        table = table
            .get_mut(*key)
            .and_then(Toml::as_table_mut)
            .unwrap_or_else(|| panic!("deploy/runnel.toml has no [{key}] table"));
    }
    assert!(
        table.contains_key(*last),
        "deploy/runnel.toml sets no {last}: the test rewrites only what it sets"
    );
    table.insert(last.to_string(), value);
}

/// Copies deploy/plugins/ into `dir`: each manifest with its component
/// rewritten as [`built_component`] does, any other file as it is.
pub fn copy_plugin_dir(dir: &Path) {
    let shipped = deploy_path("deploy/plugins");
    for entry in std::fs::read_dir(&shipped).expect("deploy/plugins is a folder") {
        let path = entry.expect("a directory entry").path();
        let target = dir.join(path.file_name().expect("a file name"));
        if path.extension().is_none_or(|extension| extension != "toml") {
            std::fs::copy(&path, &target).expect("copying a plugin file");
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("reading a manifest");
        let mut manifest: Table = text.parse().expect("a manifest is TOML");
        if let Some(component) = manifest.get("component").and_then(Toml::as_str) {
            let component = built_component(component);
            manifest.insert("component".into(), component);
        }
        let text = toml::to_string(&manifest).expect("a table serializes");
        std::fs::write(&target, text).expect("writing a manifest");
    }
}

/// How often the test's Prometheus scrapes and evaluates its rules. The
/// shipped 15 s would make the test wait minutes for two samples of each
/// series; the test takes seconds with 1 s.
const TEST_INTERVAL: &str = "1s";

/// deploy/prometheus/prometheus.yml written into `dir` for a Prometheus on
/// this machine: every scrape target `NAME:PORT` (a compose service)
/// becomes `hosts[NAME]`, the rule files the shipped ones by their full
/// path, and the intervals [`TEST_INTERVAL`]. Returns the file's path.
pub fn prometheus_config(hosts: &BTreeMap<String, String>, dir: &Path) -> PathBuf {
    let mut config = read_yaml("deploy/prometheus/prometheus.yml");
    for interval in ["scrape_interval", "evaluation_interval"] {
        config["global"][interval] = TEST_INTERVAL.into();
    }
    let shipped = deploy_path("deploy/prometheus");
    for rule_file in yaml_list(&mut config["rule_files"]) {
        let path = shipped.join(rule_file.as_str().expect("a rule file path"));
        *rule_file = path.to_string_lossy().into_owned().into();
    }
    for scrape in yaml_list(&mut config["scrape_configs"]) {
        for targets in yaml_list(&mut scrape["static_configs"]) {
            for target in yaml_list(&mut targets["targets"]) {
                let service = target.as_str().expect("a target is a string");
                let name = service.split(':').next().unwrap_or(service);
                let address = hosts
                    .get(name)
                    .unwrap_or_else(|| panic!("scrape target {service} is no host of the test"));
                *target = address.as_str().into();
            }
        }
    }
    let path = dir.join("prometheus.yml");
    write_yaml(&config, &path);
    path
}

fn yaml_list(value: &mut Yaml) -> &mut Vec<Yaml> {
    value.as_sequence_mut().expect("a YAML list")
}

/// The names of the rule groups of deploy/prometheus/alerts.yml, each with
/// how many rules it holds.
pub fn alert_groups() -> Vec<(String, usize)> {
    let alerts = read_yaml("deploy/prometheus/alerts.yml");
    alerts["groups"]
        .as_sequence()
        .expect("alerts.yml has groups")
        .iter()
        .map(|group| {
            let name = group["name"].as_str().expect("a group has a name");
            let rules = group["rules"].as_sequence().map_or(0, Vec::len);
            (name.to_owned(), rules)
        })
        .collect()
}

/// deploy/dapr/payments-binding.yaml written into `dir` with its brokers
/// the test broker's. Returns the component's name (the binding's) and the
/// file's path.
pub fn dapr_component(brokers: &str, dir: &Path) -> (String, PathBuf) {
    let mut component = read_yaml("deploy/dapr/payments-binding.yaml");
    let mut rewritten = false;
    for entry in yaml_list(&mut component["spec"]["metadata"]) {
        if entry["name"].as_str() == Some("brokers") {
            entry["value"] = brokers.into();
            rewritten = true;
        }
    }
    assert!(rewritten, "payments-binding.yaml names no brokers");
    let name = component["metadata"]["name"]
        .as_str()
        .expect("the component has a name")
        .to_owned();
    let path = dir.join(format!("{name}.yaml"));
    write_yaml(&component, &path);
    (name, path)
}

/// One query of the Grafana dashboard: the panel that shows it and its
/// PromQL, with the dashboard's variables and Grafana's interval variables
/// replaced.
#[derive(Debug, Clone)]
pub struct PanelQuery {
    pub panel: String,
    pub expr: String,
}

/// What Grafana's `$__rate_interval` and friends stand for here: a window
/// that spans the test's traffic at the test's scrape interval.
const QUERY_WINDOW: &str = "1m";

/// Every query of deploy/grafana/dashboards/runnel.json (rows' panels
/// included), each variable replaced by the value its "All" choice sends
/// (`allValue`, `.*` where unset).
pub fn dashboard_queries() -> Vec<PanelQuery> {
    let dashboard = dashboard();
    let mut variables: Vec<(String, String)> = dashboard_variables(&dashboard)
        .into_iter()
        .map(|variable| (variable.name, variable.all_value))
        .collect();
    // `$plugin_kind` before `$plugin`, should both ever be there.
    variables.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let mut queries = Vec::new();
    collect_queries(&dashboard["panels"], &variables, &mut queries);
    queries
}

fn dashboard() -> Json {
    serde_json::from_str(&read("deploy/grafana/dashboards/runnel.json"))
        .expect("the dashboard is JSON")
}

fn collect_queries(panels: &Json, variables: &[(String, String)], into: &mut Vec<PanelQuery>) {
    for panel in panels.as_array().into_iter().flatten() {
        collect_queries(&panel["panels"], variables, into);
        let title = panel["title"].as_str().unwrap_or_default();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let Some(expr) = target["expr"].as_str() else {
                continue;
            };
            into.push(PanelQuery {
                panel: title.to_owned(),
                expr: substitute(expr, variables),
            });
        }
    }
}

fn substitute(expr: &str, variables: &[(String, String)]) -> String {
    let mut expr = expr.to_owned();
    for interval in ["$__rate_interval", "$__interval", "$__range"] {
        expr = expr.replace(interval, QUERY_WINDOW);
    }
    for (name, value) in variables {
        for form in [
            format!("${{{name}}}"),
            format!("[[{name}]]"),
            format!("${name}"),
        ] {
            expr = expr.replace(&form, value);
        }
    }
    assert!(
        !expr.contains('$'),
        "a dashboard query uses a variable the dashboard does not define: {expr}"
    );
    expr
}

/// A variable of the dashboard filled by `label_values(METRIC, LABEL)`.
#[derive(Debug, Clone)]
pub struct DashboardVariable {
    pub name: String,
    pub all_value: String,
    pub metric: String,
    pub label: String,
}

pub fn variables() -> Vec<DashboardVariable> {
    dashboard_variables(&dashboard())
}

fn dashboard_variables(dashboard: &Json) -> Vec<DashboardVariable> {
    let list = dashboard["templating"]["list"].as_array();
    list.into_iter()
        .flatten()
        .map(|variable| {
            let name = variable["name"].as_str().expect("a variable has a name");
            let definition = variable["definition"].as_str().unwrap_or_default();
            let (metric, label) = definition
                .strip_prefix("label_values(")
                .and_then(|rest| rest.strip_suffix(')'))
                .and_then(|arguments| arguments.split_once(','))
                .unwrap_or_else(|| panic!("variable {name} is not label_values(METRIC, LABEL)"));
            DashboardVariable {
                name: name.to_owned(),
                all_value: variable["allValue"].as_str().unwrap_or(".*").to_owned(),
                metric: metric.trim().to_owned(),
                label: label.trim().to_owned(),
            }
        })
        .collect()
}
