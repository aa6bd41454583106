"""Checks that the deployment files agree with each other and with the host.

Run by scripts/validate-deploy.sh after the schema validators, with the
compose file as compose-go resolved it and the deploy-check binary that
parses PromQL:

    python check_deploy.py REPO COMPOSE_JSON DEPLOY_CHECK

Each check prints `ok: ...` or `error: ...` lines; the exit code is 1 when
any check found a problem.
"""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

# Series Prometheus adds itself: `up` per scrape target, and the target
# labels every scraped series carries.
PROMETHEUS_METRICS = {"up": {"job", "instance"}}
TARGET_LABELS = {"job", "instance"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Grafana's interval variables, given a value so that the query parses.
GRAFANA_INTERVALS = ("$__rate_interval", "$__interval", "$__range")


class Report:
    def __init__(self):
        self.problems = 0

    def ok(self, since, message):
        """Prints `ok: message` when no problem was found since `since`."""
        if self.problems == since:
            print(f"ok: {message}")

    def error(self, message):
        self.problems += 1
        print(f"error: {message}")

    def expect(self, condition, message):
        if not condition:
            self.error(message)
        return condition


def documented_metrics(repo):
    """The README's metrics table: metric name -> its labels."""
    readme = (repo / "README.md").read_text()
    section = readme.split("### Metrics", 1)[1].split("\n## ", 1)[0]
    metrics = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        metrics[cells[0].strip("`")] = set(re.findall(r"`([a-z_]+)`", cells[1]))
    return metrics


def histogram_names(repo):
    """The metrics host/src/metrics.rs registers as histograms."""
    source = (repo / "host/src/metrics.rs").read_text()
    return set(re.findall(r'histogram\(\s*"([a-z_]+)"', source))


def registered_metrics(repo):
    source = (repo / "host/src/metrics.rs").read_text()
    return set(re.findall(r'(?:counter|gauge|histogram)\(\s*"([a-z_]+)"', source))


def series_labels(name, documented, histograms):
    """The labels of series `name`, or None when the host exports no such series."""
    if name in PROMETHEUS_METRICS:
        return PROMETHEUS_METRICS[name]
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if name.endswith(suffix) and base in histograms and base in documented:
            return documented[base] | ({"le"} if suffix == "_bucket" else set())
    if name in documented and name not in histograms:
        return documented[name]
    return None


def check_metrics(repo, deploy_check, report):
    since = report.problems
    documented = documented_metrics(repo)
    histograms = histogram_names(repo)
    registered = registered_metrics(repo)
    report.expect(
        set(documented) == registered,
        "the README's metrics table and host/src/metrics.rs disagree: "
        f"only in the README {sorted(set(documented) - registered)}, "
        f"only in metrics.rs {sorted(registered - set(documented))}",
    )

    queries = []  # (where, expression)
    alerts = yaml.safe_load((repo / "deploy/prometheus/alerts.yml").read_text())
    for group in alerts["groups"]:
        for rule in group["rules"]:
            queries.append((f"alert {rule['alert']}", rule["expr"]))
    dashboard = json.loads((repo / "deploy/grafana/dashboards/runnel.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries.append((f"panel {panel['title']!r}", target["expr"]))
    label_values = []  # (where, metric expression, label)
    for variable in dashboard["templating"]["list"]:
        query = (
            variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        )
        match = re.fullmatch(r"label_values\((.+),\s*([a-zA-Z_]+)\)", query.strip())
        if report.expect(
            match,
            f"variable {variable['name']}: expected label_values(METRIC, LABEL), got {query!r}",
        ):
            label_values.append((f"variable {variable['name']}", match[1], match[2]))
            queries.append((f"variable {variable['name']}", match[1]))

    texts = []
    for _, text in queries:
        for interval in GRAFANA_INTERVALS:
            text = text.replace(interval, "5m")
        texts.append(text)
    parsed = subprocess.run(
        [deploy_check, "promql"],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=False,
    )
    if parsed.returncode != 0:
        report.error(f"PromQL: {parsed.stderr.strip()}")
        return
    uses = json.loads(parsed.stdout)

    names = set()
    for (where, _), used in zip(queries, uses):
        for selector in used["selectors"]:
            name = selector["metric"]
            names.add(name)
            labels = series_labels(name, documented, histograms)
            if not report.expect(
                labels is not None, f"{where}: metric {name} is not in the README's metrics table"
            ):
                continue
            unknown = set(selector["labels"]) - labels - TARGET_LABELS
            report.expect(not unknown, f"{where}: {name} has no label {', '.join(sorted(unknown))}")
        for grouping in used["groupings"]:
            for name in grouping["metrics"]:
                labels = series_labels(name, documented, histograms)
                if labels is None:
                    continue
                unknown = set(grouping["labels"]) - labels - TARGET_LABELS
                report.expect(
                    not unknown,
                    f"{where}: groups {name} by {', '.join(sorted(unknown))}, which it does not have",
                )
    for where, metric, label in label_values:
        labels = series_labels(metric.strip(), documented, histograms) or set()
        report.expect(label in labels | TARGET_LABELS, f"{where}: {metric} has no label {label}")
    report.ok(
        since,
        f"{len(queries)} PromQL expressions ({len(alerts_of(alerts))} alert rules, the dashboard's "
        f"queries and variables) parse and use {len(names)} metrics, each documented with its labels",
    )


def alerts_of(alerts):
    return [rule for group in alerts["groups"] for rule in group["rules"]]


def host_port(repo, report):
    """The port of the hosts' http.listen, which must be all interfaces."""
    config = tomllib.loads((repo / "deploy/runnel.toml").read_text())
    listen = config.get("http", {}).get("listen", "")
    host, _, port = listen.rpartition(":")
    report.expect(
        host in ("0.0.0.0", "[::]"),
        f"deploy/runnel.toml: http.listen is {listen!r}; a container must listen on every interface (0.0.0.0)",
    )
    return int(port or 0), config


def admin_token_dir(config):
    """The directory of http.admin_token_file, which a container mounts."""
    path = config.get("http", {}).get("admin_token_file")
    return str(Path(path).parent) if path else None


def drain_seconds(config):
    text = config.get("drain_timeout", "30s")
    match = re.fullmatch(r"(\d+)s", text)
    return int(match[1]) if match else None


def check_compose(repo, compose, port, config, report):
    since = report.problems
    services = compose["services"]
    for name, service in services.items():
        for volume in service.get("volumes") or []:
            if volume["type"] == "bind":
                report.expect(
                    Path(volume["source"]).exists(),
                    f"compose {name}: mounts {volume['source']}, which does not exist",
                )

    hosts = {
        name: s
        for name, s in services.items()
        if (s.get("build") or {}).get("context") == str(repo)
    }
    report.expect(
        len(hosts) >= 3, f"compose: {len(hosts)} Runnel hosts built from the Dockerfile, expected 3"
    )
    shapes = {
        json.dumps([s.get("command"), s.get("volumes"), s.get("environment")], sort_keys=True)
        for s in hosts.values()
    }
    report.expect(
        len(shapes) == 1, "compose: the Runnel hosts differ in command, mounts or environment"
    )
    drain = drain_seconds(config)
    for name, service in hosts.items():
        mounts = {v["target"]: v for v in service.get("volumes") or []}
        for target in ("/etc/runnel/runnel.toml", "/var/lib/runnel/plugins"):
            report.expect(
                target in mounts and mounts[target].get("read_only"),
                f"compose {name}: {target} must be mounted read-only",
            )
        token_dir = admin_token_dir(config)
        report.expect(
            token_dir is None or token_dir in mounts,
            f"compose {name}: http.admin_token_file's directory {token_dir} must be mounted",
        )
        test = " ".join((service.get("healthcheck") or {}).get("test") or [])
        report.expect(
            f":{port}/readyz" in test,
            f"compose {name}: the health check must ask /readyz on port {port}",
        )
        grace = re.fullmatch(r"(?:(\d+)m)?(\d+)s", service.get("stop_grace_period", "10s"))
        seconds = int(grace[1] or 0) * 60 + int(grace[2]) if grace else 0
        report.expect(
            drain is not None and seconds >= drain + 15,
            f"compose {name}: stop_grace_period must be at least drain_timeout + 15 s",
        )

    prometheus = yaml.safe_load((repo / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        t
        for job in prometheus["scrape_configs"]
        for c in job.get("static_configs", [])
        for t in c["targets"]
    }
    report.expect(
        targets == {f"{name}:{port}" for name in hosts},
        f"deploy/prometheus/prometheus.yml scrapes {sorted(targets)}, not the compose hosts on port {port}",
    )

    bindings = {b for p in config.get("pipelines", {}).values() for b in p.get("bindings", [])}
    components = [
        yaml.safe_load(f.read_text()) for f in sorted((repo / "deploy/dapr").glob("*.yaml"))
    ]
    for component in components:
        if component["spec"]["type"] == "bindings.kafka":
            name = component["metadata"]["name"]
            report.expect(
                name in bindings,
                f"deploy/dapr: binding {name} feeds no pipeline of deploy/runnel.toml",
            )
    sidecars = [
        s
        for s in services.values()
        if str(s.get("network_mode", "")).removeprefix("service:") in hosts
    ]
    report.expect(sidecars, "compose: no Dapr sidecar shares a Runnel host's network")
    for sidecar in sidecars:
        report.expect(
            f"--app-port={port}" in sidecar.get("command", []),
            f"compose: the Dapr sidecar's --app-port must be {port}",
        )

    datasources = yaml.safe_load(
        (repo / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    uids = {d["uid"] for d in datasources["datasources"]}
    dashboard = json.loads((repo / "deploy/grafana/dashboards/runnel.json").read_text())
    used = {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p}
    report.expect(
        used <= uids,
        f"the dashboard names datasources {sorted(used - uids)} that Grafana is not given",
    )
    ids = [p["id"] for p in dashboard["panels"]]
    report.expect(len(ids) == len(set(ids)), "the dashboard repeats a panel id")
    report.ok(
        since,
        f"compose: {len(services)} services, {len(hosts)} Runnel hosts alike, scraped by Prometheus, "
        f"{len(sidecars)} Dapr sidecar, Grafana's datasource and dashboard agree",
    )


def check_kubernetes(repo, port, config, report):
    since = report.problems
    folder = repo / "deploy/kubernetes"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    manifests = {f.name for f in folder.glob("*.yaml")} - {"kustomization.yaml"}
    report.expect(
        set(kustomization["resources"]) == manifests,
        f"kustomization.yaml lists {sorted(kustomization['resources'])}, the folder holds {sorted(manifests)}",
    )
    documents = {}
    for name in manifests:
        for document in yaml.safe_load_all((folder / name).read_text()):
            documents[(document["kind"], document["metadata"]["name"])] = document

    config_map = documents[("ConfigMap", "runnel-config")]["data"]
    report.expect(
        config_map.get("runnel.toml") == (repo / "deploy/runnel.toml").read_text(),
        "ConfigMap runnel-config differs from deploy/runnel.toml",
    )
    plugins = documents[("ConfigMap", "runnel-plugins")]["data"]
    files = {f.name: f.read_text() for f in (repo / "deploy/plugins").glob("*.toml")}
    report.expect(plugins == files, "ConfigMap runnel-plugins differs from deploy/plugins/*.toml")

    pod = documents[("Deployment", "runnel")]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    annotations = pod["metadata"].get("annotations", {})
    report.expect(
        annotations.get("prometheus.io/scrape") == "true"
        and annotations.get("prometheus.io/port") == str(port)
        and annotations.get("prometheus.io/path") == "/metrics",
        f"the pods' prometheus.io annotations must say scrape, port {port}, /metrics",
    )
    report.expect(
        [p["containerPort"] for p in container["ports"]] == [port],
        f"the container must expose port {port}",
    )
    for probe, path in (
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ):
        report.expect(
            container.get(probe, {}).get("httpGet", {}).get("path") == path,
            f"{probe} must ask {path}",
        )
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    report.expect(
        "/etc/runnel/runnel.toml" in container.get("args", []) and "/etc/runnel" in mounts,
        "the container must run /etc/runnel/runnel.toml from the mounted ConfigMap",
    )
    report.expect("/var/lib/runnel/plugins" in mounts, "the plugin directory must be mounted")
    token_dir = admin_token_dir(config)
    volumes = {v["name"]: v for v in pod["spec"].get("volumes", [])}
    token_mount = mounts.get(token_dir) if token_dir else None
    report.expect(
        token_dir is None
        or (token_mount is not None and "secret" in volumes.get(token_mount["name"], {})),
        f"http.admin_token_file's directory {token_dir} must be a mounted Secret",
    )
    drain = drain_seconds(config)
    report.expect(
        drain is not None and pod["spec"].get("terminationGracePeriodSeconds", 30) >= drain + 15,
        "terminationGracePeriodSeconds must be at least drain_timeout + 15 s",
    )
    report.ok(
        since,
        f"kubernetes: {len(manifests)} manifests in kustomization.yaml, ConfigMaps equal to deploy/, "
        f"port {port}, probes, scrape annotations and grace period agree",
    )


def main():
    repo, compose_json, deploy_check = Path(sys.argv[1]).resolve(), Path(sys.argv[2]), sys.argv[3]
    report = Report()
    port, config = host_port(repo, report)
    check_compose(repo, json.loads(compose_json.read_text()), port, config, report)
    check_kubernetes(repo, port, config, report)
    check_metrics(repo, deploy_check, report)
    if report.problems:
        print(f"{report.problems} problem(s) in the deployment files")
        sys.exit(1)


if __name__ == "__main__":
    main()
