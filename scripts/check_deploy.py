"""Checks of the deploy files that the schema validators cannot make.

Run by scripts/check_deploy.sh after `docker-compose config` and
`kubernetes-validate`: the custom resources (Kustomization,
ServiceMonitor) against the objects they refer to, the Grafana dashboard
against the metrics the code exports, and the Dockerfile's shape.
Exits non-zero naming the file and what is wrong.
"""
import json
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
errors = []


def fail(path, message):
    errors.append(f"{path.relative_to(ROOT)}: {message}")


def load(path):
    return list(yaml.safe_load_all(path.read_text()))


def k8s():
    k8s_dir = DEPLOY / "k8s"
    kust_path = k8s_dir / "kustomization.yaml"
    kust = load(kust_path)[0]
    objects = {}
    for res in kust.get("resources", []):
        path = k8s_dir / res
        if not path.exists():
            fail(kust_path, f"lists {res}, which does not exist")
            continue
        for doc in load(path):
            objects[(doc["kind"], doc["metadata"]["name"])] = doc
    listed = {k8s_dir / r for r in kust.get("resources", [])}
    for path in k8s_dir.glob("*.yaml"):
        if path != kust_path and path not in listed:
            fail(kust_path, f"does not list {path.name}")

    sts = objects.get(("StatefulSet", "quotad"))
    if sts is None:
        fail(k8s_dir, "no StatefulSet quotad")
        return
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    container = sts["spec"]["template"]["spec"]["containers"][0]
    port_names = {p["name"] for p in container["ports"]}
    headless = objects.get(("Service", sts["spec"]["serviceName"]))
    if headless is None or headless["spec"].get("clusterIP") != "None":
        fail(k8s_dir, f"serviceName {sts['spec']['serviceName']} is not a headless Service")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        got = container.get(probe, {}).get("httpGet", {}).get("path")
        if got != path:
            fail(k8s_dir / "statefulset.yaml", f"{probe} should GET {path}, not {got}")
    config = objects.get(("ConfigMap", "quotad"))
    mounted = [v for v in sts["spec"]["template"]["spec"].get("volumes", []) if "configMap" in v]
    if config is None or not mounted:
        fail(k8s_dir, "the ConfigMap is not mounted")
    else:
        toml_text = config["data"]["quotad.toml"]
        example = (DEPLOY / "quotad.example.toml").read_text()
        known = set(re.findall(r"^#?\s*([a-z_]+)\s*=", example, re.M))
        for key in re.findall(r"^([a-z_]+)\s*=", toml_text, re.M):
            if key not in known:
                fail(k8s_dir / "configmap.yaml", f"{key} is not a quotad setting")

    services = {name: o for (kind, name), o in objects.items() if kind == "Service"}
    for name, svc in services.items():
        sel = svc["spec"].get("selector", {})
        if any(pod_labels.get(k) != v for k, v in sel.items()):
            fail(k8s_dir, f"Service {name} selects no quotad pod")
        for p in svc["spec"]["ports"]:
            if p.get("targetPort") not in port_names:
                fail(k8s_dir, f"Service {name} targets port {p.get('targetPort')}, not a container port")

    pdb = objects.get(("PodDisruptionBudget", "quotad"))
    if pdb is None or any(
        pod_labels.get(k) != v for k, v in pdb["spec"]["selector"]["matchLabels"].items()
    ):
        fail(k8s_dir, "the PodDisruptionBudget covers no quotad pod")

    sm = objects.get(("ServiceMonitor", "quotad"))
    if sm is None:
        fail(k8s_dir, "no ServiceMonitor quotad")
    else:
        wanted = sm["spec"]["selector"]["matchLabels"]
        matched = [
            s for s in services.values()
            if all(s["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
        ]
        ports = {p["name"] for s in matched for p in s["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            if ep.get("port") not in ports:
                fail(k8s_dir / "servicemonitor.yaml", f"endpoint port {ep.get('port')} is on no selected Service")
            if ep.get("path") != "/metrics":
                fail(k8s_dir / "servicemonitor.yaml", "quotad serves metrics at /metrics")


def exported_metrics():
    names = set()
    for src in list((ROOT / "engine" / "src").rglob("*.rs")) + list(
        (ROOT / "control-plane" / "src").rglob("*.rs")
    ):
        text = src.read_text()
        names.update(re.findall(r'pub const [A-Z_]+: &str = "([a-z_]+)"', text))
        names.update(re.findall(r'metrics::(?:counter|gauge|histogram)!\(\s*"([a-z_]+)"', text))
    return names


def dashboard():
    path = DEPLOY / "grafana" / "quotad-dashboard.json"
    dash = json.loads(path.read_text())
    known = exported_metrics()
    if not dash.get("panels"):
        fail(path, "no panels")
    for panel in dash.get("panels", []):
        if not panel.get("targets"):
            fail(path, f"panel {panel.get('title')!r} has no query")
        for target in panel.get("targets", []):
            expr = target["expr"]
            used = {
                m
                for m in re.findall(r"([a-z_]+)(?=[\[{)\s]|$)", expr)
                if "_" in m and not m.startswith("histogram_")
            }
            used -= {"tenant_id", "quota_type"}
            for name in used:
                base = re.sub(r"_(bucket|sum|count)$", "", name)
                if name not in known and base not in known:
                    fail(path, f"panel {panel['title']!r} queries {name}, which quotad does not export")


def dockerfile():
    path = DEPLOY / "Dockerfile"
    text = path.read_text()
    stages = re.findall(r"^FROM\s+\S+(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    if len(stages) < 2:
        fail(path, "not a multi-stage build")
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    if not user or user[-1].split(":")[0] in ("root", "0"):
        fail(path, "the runtime stage must not run as root")
    if "--locked" not in text:
        fail(path, "build with --locked, from Cargo.lock")


def compose():
    path = DEPLOY / "compose.yaml"
    services = yaml.safe_load(path.read_text())["services"]
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    nodes = {name for name in services if name.startswith("quotad-")}
    metrics_port = {
        services[n]["environment"].get("QUOTAD_METRICS_ADDR", ":8080").rsplit(":", 1)[1]
        for n in nodes
    }
    if len(metrics_port) != 1:
        fail(path, f"the nodes serve metrics on different ports: {sorted(metrics_port)}")
    if targets != {f"{n}:{p}" for n in nodes for p in metrics_port}:
        fail(DEPLOY / "prometheus" / "prometheus.yml", f"scrapes {sorted(targets)}, not every quotad node")
    for sub in ("datasources", "dashboards"):
        for f in (DEPLOY / "grafana" / "provisioning" / sub).glob("*.yaml"):
            yaml.safe_load(f.read_text())
    joins = {n: services[n]["environment"].get("QUOTAD_JOIN") for n in nodes}
    founders = [n for n, j in joins.items() if j is None]
    if len(founders) != 1:
        fail(path, f"exactly one node founds the cluster, not {founders}")


k8s()
compose()
dashboard()
dockerfile()
for e in errors:
    print(f"deploy check: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
