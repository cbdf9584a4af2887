"""The portal's own Kubernetes manifests (deploy/kubernetes, issue 25 §3), offline: each
overlay rendered by a real kustomize (`kubectl kustomize`: Debian's kubernetes-client, or any
later kubectl), every object checked against the Kubernetes schemas (kubernetes-validate,
strict), the ServiceMonitor (a CRD those schemas do not know) against what it points at,
and the wiring: settings the portal reads, probes on paths it serves, Services that select
the right pods, NetworkPolicies that let through what it needs, one beat."""

import base64
import copy
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from cryptography.fernet import Fernet
from django.urls import resolve

from tests.formats.test_kubernetes_docs import VERSION
from tests.helpers import ROOT, require
from tests.project.test_docs import settings_read_by_code

DEPLOY = ROOT / "deploy" / "kubernetes"
OVERLAYS = sorted(p.name for p in (DEPLOY / "overlays").iterdir() if p.is_dir())
# Set by the manifests from Kubernetes' downward API, read by the manifests only (web.yaml
# adds the pod's address to ALLOWED_HOSTS with it).
KUBERNETES_ONLY = {"POD_IP"}
SECRET_SETTINGS = {
    "SECRET_KEY",
    "ECRPORTAL_ENCRYPTION_KEYS",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "ECRPORTAL_METRICS_TOKEN",
}
TOKEN = "metrics-token-for-the-manifest-tests-0001"
SECRETS_ENV = (
    f"SECRET_KEY=manifest-test-secret-key-{'x' * 40}\n"
    f"ECRPORTAL_ENCRYPTION_KEYS={Fernet.generate_key().decode()}\n"
    "DATABASE_URL=postgres://ecrportal:pw@postgres.db.svc:5432/ecrportal\n"
    "CELERY_BROKER_URL=redis://redis.db.svc:6379/0\n"
    f"ECRPORTAL_METRICS_TOKEN={TOKEN}\n"
)
WORKLOADS = ("Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet", "Pod")


def _kubectl() -> str:
    kubectl = shutil.which("kubectl")
    require(
        kubectl is not None,
        "kubectl is not installed (Debian: apt-get install kubernetes-client; its "
        "`kubectl kustomize` renders the overlays offline)",
    )
    return str(kubectl)


def _tree(folder: Path) -> Path:
    """A copy of deploy/kubernetes with each overlay's secrets.env written (as an operator
    writes it from secrets.env.example)."""
    copied = folder / "kubernetes"
    shutil.copytree(DEPLOY, copied, ignore=shutil.ignore_patterns("secrets.env"))
    for overlay in OVERLAYS:
        (copied / "overlays" / overlay / "secrets.env").write_text(SECRETS_ENV)
    return copied


def _render(tree: Path, overlay: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_kubectl(), "kustomize", str(tree / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, list[dict]]:
    tree = _tree(tmp_path_factory.mktemp("deploy"))
    out = {}
    for overlay in OVERLAYS:
        done = _render(tree, overlay)
        assert done.returncode == 0, done.stderr
        out[overlay] = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    return out


@pytest.fixture(params=OVERLAYS)
def objects(request, rendered) -> list[dict]:
    return rendered[request.param]


def _one(objects, kind: str, name: str) -> dict:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _named(objects, kind: str, prefix: str) -> dict:
    """A generated object (ConfigMap, Secret), whatever kustomize's hash suffix."""
    (found,) = [
        o
        for o in objects
        if o["kind"] == kind and re.fullmatch(rf"{prefix}(-[a-z0-9]+)?", o["metadata"]["name"])
    ]
    return found


def _component(objects, component: str) -> list[dict]:
    return [
        o
        for o in objects
        if o["kind"] in WORKLOADS
        and o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
    ]


def _pod(workload: dict) -> dict:
    """A workload's pod template: (labels, spec)."""
    return workload["spec"]["template"]


def _containers(spec: dict) -> list[dict]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def _workloads(objects) -> list[dict]:
    return [o for o in objects if o["kind"] in WORKLOADS]


def _selects(selector: dict, labels: dict) -> bool:
    """A label selector (matchLabels, matchExpressions In/NotIn/Exists) against labels."""
    if not all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        if operator == "In" and labels.get(key) not in expression["values"]:
            return False
        if operator == "NotIn" and labels.get(key) in expression["values"]:
            return False
        if operator == "Exists" and key not in labels:
            return False
    return True


# --- the schemas ------------------------------------------------------------------------


def test_every_overlay_renders_the_whole_portal(objects):
    kinds = {(o["kind"], re.sub(r"-[a-z0-9]{10}$", "", o["metadata"]["name"])) for o in objects}
    assert {
        ("Deployment", "ecrportal-web"),
        ("Deployment", "ecrportal-worker"),
        ("StatefulSet", "ecrportal-beat"),
        ("Job", "ecrportal-migrate"),
        ("Service", "ecrportal-web"),
        ("Service", "ecrportal-metrics"),
        ("Ingress", "ecrportal"),
        ("ConfigMap", "ecrportal-settings"),
        ("Secret", "ecrportal-secrets"),
        ("NetworkPolicy", "ecrportal-default-deny"),
    } <= kinds
    assert {o["metadata"].get("namespace") for o in objects} == {"ecrportal"}


def test_every_rendered_object_is_valid(objects):
    for manifest in objects:
        if manifest["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: test_the_service_monitor_scrapes_every_pod
        kubernetes_validate.validate(manifest, VERSION, strict=True)


def test_a_broken_manifest_is_caught(rendered):
    web = copy.deepcopy(_one(rendered["production"], "Deployment", "ecrportal-web"))
    _pod(web)["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, VERSION, strict=True)


def test_no_overlay_renders_without_its_secrets(tmp_path):
    """No placeholder Secret can be applied: without secrets.env, kustomize stops."""
    tree = _tree(tmp_path)
    (tree / "overlays" / "production" / "secrets.env").unlink()
    done = _render(tree, "production")
    assert done.returncode != 0
    assert "secrets.env" in done.stderr


# --- the settings -----------------------------------------------------------------------


def _settings(objects) -> tuple[dict[str, str], dict[str, str]]:
    config = _named(objects, "ConfigMap", "ecrportal-settings")["data"]
    secret = _named(objects, "Secret", "ecrportal-secrets")
    # A long value's base64 may be wrapped (kustomize 5); Kubernetes ignores the newlines.
    plain = {k: base64.b64decode("".join(v.split())).decode() for k, v in secret["data"].items()}
    return config, plain


def test_every_variable_the_manifests_set_is_a_setting_of_the_portal(objects):
    config, secret = _settings(objects)
    named = set(config) | set(secret)
    for workload in _workloads(objects):
        for container in _containers(_pod(workload)["spec"]):
            named |= {variable["name"] for variable in container.get("env", [])}
    assert named - settings_read_by_code() - KUBERNETES_ONLY == set()
    assert set(secret) == SECRET_SETTINGS
    assert not set(config) & SECRET_SETTINGS, "a secret setting in the ConfigMap"


def test_every_setting_the_compose_file_sets_is_set(objects):
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    config, secret = _settings(objects)
    assert set(compose["services"]["web"]["environment"]) <= set(config) | set(secret)
    assert config["DEBUG"] == "0"
    assert config["ECRPORTAL_BEHIND_TLS_PROXY"] == "1"
    assert urlsplit(config["ECRPORTAL_SITE_URL"]).scheme == "https"


def test_every_pod_reads_the_settings_and_names_objects_that_exist(objects):
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for workload in _workloads(objects):
        for container in _containers(_pod(workload)["spec"]):
            sources = container.get("envFrom", [])
            kinds = {("ConfigMap" if "configMapRef" in s else "Secret") for s in sources}
            assert kinds == {"ConfigMap", "Secret"}, container["name"]
            for source in sources:
                kind, ref = (
                    ("ConfigMap", source["configMapRef"])
                    if "configMapRef" in source
                    else ("Secret", source["secretRef"])
                )
                assert (kind, ref["name"]) in names


def test_web_accepts_its_site_its_ingress_and_its_own_address_as_host(objects):
    config, _ = _settings(objects)
    allowed = config["ALLOWED_HOSTS"].split(",")
    assert urlsplit(config["ECRPORTAL_SITE_URL"]).hostname in allowed
    ingress = _one(objects, "Ingress", "ecrportal")
    assert {rule["host"] for rule in ingress["spec"]["rules"]} <= set(allowed)
    (web,) = _component(objects, "web")
    env = _pod(web)["spec"]["containers"][0]["env"]
    names = [variable["name"] for variable in env]
    # Probes and Prometheus send the pod's address as Host: it is added, after POD_IP is set.
    assert names.index("POD_IP") < names.index("ALLOWED_HOSTS")
    assert env[names.index("POD_IP")]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env[names.index("ALLOWED_HOSTS")]["value"] == "$(ALLOWED_HOSTS),$(POD_IP)"


# --- the image, the processes, the probes -------------------------------------------------


def _dockerfile() -> dict:
    text = (ROOT / "Dockerfile").read_text()
    return {
        "uid": int(re.search(r"--uid (\d+)", text)[1]),
        "port": int(re.search(r"^EXPOSE (\d+)", text, re.M)[1]),
        "data": re.search(r"ECRPORTAL_DATA_DIR=(\S+)", text)[1],
    }


def test_each_component_runs_the_compose_files_command(objects):
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for component in ("web", "worker", "beat", "migrate"):
        (workload,) = _component(objects, component)
        (container,) = _pod(workload)["spec"]["containers"]
        compose = services[component]["command"]
        if component == "beat":  # no pid file: Kubernetes watches the process itself
            compose = compose[: compose.index("--pidfile")]
        assert container["command"] == compose, component
        assert container["image"] == _pod(workload)["spec"]["containers"][0]["image"]
    images = {c["image"] for w in _workloads(objects) for c in _containers(_pod(w)["spec"])}
    assert len(images) == 1, "one image for every component, as the Dockerfile says"


def test_every_pod_runs_unprivileged_on_a_read_only_root(objects):
    image = _dockerfile()
    for workload in _workloads(objects):
        spec = _pod(workload)["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == image["uid"]
        assert spec["automountServiceAccountToken"] is False
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in _containers(spec):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), container["name"]
            # What the portal writes: the data folder (metrics, beat's schedule) and /tmp.
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert {image["data"], "/tmp"} <= set(mounts), container["name"]
            assert all("emptyDir" in volumes[name] for name in mounts.values())


def _django_path(path: str) -> bool:
    """A path the portal serves without a signed-in user."""
    match = resolve(path)
    return getattr(match.func, "login_required", True) is False


def test_the_probes_point_at_paths_the_portal_serves(objects):
    (web,) = _component(objects, "web")
    (container,) = _pod(web)["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": _dockerfile()["port"]}
    paths = {}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["port"] in ports
        assert _django_path(get["path"]), get["path"]
        paths[probe] = get["path"]
    # Only /healthz: a web pod restarted while the workers or Redis are down still serves
    # the credentials it has (/readyz is checked after a rollout; docs say why).
    assert paths == {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/healthz",
    }


def test_beat_does_not_wait_for_the_migrations(objects):
    """An update replaces beat's pod at once; waiting there for a migrate Job that does not
    run (one left over, whose template cannot change) would stop the ticks."""
    (beat,) = _component(objects, "beat")
    assert not _pod(beat)["spec"].get("initContainers")


def test_a_process_that_exits_is_started_again(objects):
    """Issue 25 §2.5: every way of running the portal restarts a worker (or web, or beat)
    that exits; here, the kubelet (restartPolicy Always, the default)."""
    for component in ("web", "worker", "beat"):
        (workload,) = _component(objects, component)
        assert _pod(workload)["spec"].get("restartPolicy", "Always") == "Always"


def test_the_worker_restarts_when_it_stops_answering_its_broker(objects):
    (worker,) = _component(objects, "worker")
    (container,) = _pod(worker)["spec"]["containers"]
    probe = " ".join(container["livenessProbe"]["exec"]["command"])
    assert "inspect ping" in probe
    assert "celery@$HOSTNAME" in probe


# --- the Services, the Ingress, the metrics ------------------------------------------------


def _pods_selected(objects, service: dict) -> set[str]:
    return {
        w["metadata"]["labels"]["app.kubernetes.io/component"]
        for w in _workloads(objects)
        if w["kind"] != "Job"
        and _selects({"matchLabels": service["spec"]["selector"]}, _pod(w)["metadata"]["labels"])
    }


def _target_ports(objects, service: dict) -> None:
    """Each of the Service's named target ports is a port of every pod it selects."""
    for workload in _workloads(objects):
        labels = _pod(workload)["metadata"]["labels"]
        if workload["kind"] == "Job" or not _selects(
            {"matchLabels": service["spec"]["selector"]}, labels
        ):
            continue
        (container,) = _pod(workload)["spec"]["containers"]
        names = {p["name"] for p in container.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in names, (service["metadata"]["name"], workload)


def test_the_web_service_selects_the_web_pods_and_the_ingress_reaches_it(objects):
    service = _one(objects, "Service", "ecrportal-web")
    assert _pods_selected(objects, service) == {"web"}
    _target_ports(objects, service)
    ingress = _one(objects, "Ingress", "ecrportal")
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == "ecrportal-web"
            assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert {h for tls in ingress["spec"]["tls"] for h in tls["hosts"]} == {
        rule["host"] for rule in ingress["spec"]["rules"]
    }


def test_the_worker_and_beat_serve_their_own_metrics_on_the_metrics_service(objects):
    config, _ = _settings(objects)
    service = _one(objects, "Service", "ecrportal-metrics")
    assert service["spec"]["clusterIP"] == "None"  # each pod scraped, not one of them
    assert _pods_selected(objects, service) == {"worker", "beat"}
    _target_ports(objects, service)
    for component in ("worker", "beat"):
        (workload,) = _component(objects, component)
        (container,) = _pod(workload)["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"metrics": int(config["ECRPORTAL_METRICS_PORT"])}


def test_the_service_monitor_scrapes_every_pod(rendered):
    objects = rendered["production"]
    (monitor,) = [o for o in objects if o["kind"] == "ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    spec = monitor["spec"]
    assert set(spec) <= {"jobLabel", "selector", "endpoints", "namespaceSelector"}
    services = [
        o
        for o in objects
        if o["kind"] == "Service" and _selects(spec["selector"], o["metadata"]["labels"])
    ]
    assert {s["metadata"]["name"] for s in services} == {"ecrportal-web", "ecrportal-metrics"}
    # One job for all (the alert rules aggregate by job).
    assert {s["metadata"]["labels"][spec["jobLabel"]] for s in services} == {"ecrportal"}
    port_names = {p["name"] for s in services for p in s["spec"]["ports"]}
    secrets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Secret"}
    assert {e["port"] for e in spec["endpoints"]} == port_names
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {
            "port",
            "path",
            "interval",
            "scrapeTimeout",
            "bearerTokenSecret",
        }
        assert endpoint["path"] == "/metrics"
        assert resolve(endpoint["path"]).url_name == "metrics"
        token = endpoint["bearerTokenSecret"]
        assert token["name"] in secrets, "the token's Secret is not in the rendered set"
        assert token["key"] == "ECRPORTAL_METRICS_TOKEN"
        assert token["key"] in secrets[token["name"]]["data"]
    assert [o for o in rendered["single-node"] if o["kind"] == "ServiceMonitor"] == []


# --- one beat ------------------------------------------------------------------------------


def test_beat_is_one_pod_that_cannot_be_doubled(objects):
    (beat,) = _component(objects, "beat")
    # A StatefulSet makes the replacement only once the old pod is gone (docs: "One beat").
    assert beat["kind"] == "StatefulSet"
    assert beat["spec"]["replicas"] == 1
    assert not [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    for component in ("web", "worker"):
        (workload,) = _component(objects, component)
        assert workload["kind"] == "Deployment"
        for container in _pod(workload)["spec"]["containers"]:
            assert "beat" not in container["command"]
            assert "--beat" not in container["command"]
            assert "-B" not in container["command"]


def test_production_scales_web_and_worker(rendered):
    objects = rendered["production"]
    for component in ("web", "worker"):
        (workload,) = _component(objects, component)
        assert workload["spec"]["replicas"] >= 2, component
    budgets = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    assert {
        b["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] for b in budgets
    } == {
        "web",
        "worker",
    }


# --- the network ---------------------------------------------------------------------------


def _policies(objects, workload: dict, kind: str) -> list[dict]:
    labels = _pod(workload)["metadata"]["labels"]
    return [
        p
        for p in objects
        if p["kind"] == "NetworkPolicy"
        and kind in p["spec"]["policyTypes"]
        and _selects(p["spec"]["podSelector"], labels)
    ]


def _port_matches(rule_ports, port, container_ports: dict) -> bool:
    if not rule_ports:
        return True
    for rule in rule_ports:
        named = container_ports.get(rule["port"], rule["port"])
        if named == port and rule.get("protocol", "TCP") == "TCP":
            return True
    return False


def _egress_allowed(objects, workload: dict, port: int, protocol: str = "TCP") -> bool:
    for policy in _policies(objects, workload, "Egress"):
        for rule in policy["spec"].get("egress", []):
            ports = rule.get("ports", [])
            if not rule.get("to") and (
                not ports
                or any(p["port"] == port and p.get("protocol", "TCP") == protocol for p in ports)
            ):
                return True
    return False


def test_every_pod_is_closed_but_for_what_it_needs(objects):
    for workload in _workloads(objects):
        deny = [
            p
            for p in _policies(objects, workload, "Ingress")
            if p["metadata"]["name"] == "ecrportal-default-deny"
        ]
        assert len(deny) == 1
        assert not deny[0]["spec"].get("ingress")
        assert not deny[0]["spec"].get("egress")
        assert "Egress" in deny[0]["spec"]["policyTypes"]
        # DNS, PostgreSQL and Redis from every pod.
        assert _egress_allowed(objects, workload, 53, "UDP"), workload["metadata"]["name"]
        assert _egress_allowed(objects, workload, 5432), workload["metadata"]["name"]
        assert _egress_allowed(objects, workload, 6379), workload["metadata"]["name"]
    # AWS (and identity providers, webhooks) over HTTPS from web and worker, not beat.
    for component, allowed in (("web", True), ("worker", True), ("beat", False)):
        (workload,) = _component(objects, component)
        assert _egress_allowed(objects, workload, 443) is allowed, component


def _ingress_sources(objects, component: str, port_name: str) -> list[dict]:
    """The peers the NetworkPolicies let reach a component's named port."""
    (workload,) = _component(objects, component)
    (container,) = _pod(workload)["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    return [
        peer
        for policy in _policies(objects, workload, "Ingress")
        for rule in policy["spec"].get("ingress", [])
        if _port_matches(rule.get("ports"), ports[port_name], ports)
        for peer in rule.get("from", [])
    ]


def test_web_is_reached_from_the_ingress_controller_and_metrics_from_prometheus(objects):
    def namespaces(peers):
        return {
            p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in peers
        }

    web = _ingress_sources(objects, "web", "http")
    prometheus = namespaces(_ingress_sources(objects, "worker", "metrics"))
    assert prometheus == namespaces(_ingress_sources(objects, "beat", "metrics"))
    assert len(prometheus) == 1
    # Prometheus scrapes web's /metrics too; the Ingress controller is another namespace.
    assert prometheus < namespaces(web)
    for peers in (web, _ingress_sources(objects, "worker", "metrics")):
        assert all("ipBlock" not in peer for peer in peers), "an address block lets anyone in"
        assert all("namespaceSelector" in peer for peer in peers)
    # In the monitoring namespace, Prometheus' pods alone (not Grafana, Alertmanager…).
    for peers in (web, _ingress_sources(objects, "worker", "metrics")):
        monitoring = [
            p
            for p in peers
            if p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "monitoring"
        ]
        assert [p["podSelector"]["matchLabels"] for p in monitoring] == [
            {"app.kubernetes.io/name": "prometheus"}
        ]
    # Nothing else reaches a pod: no policy opens another port or every port.
    for workload in _workloads(objects):
        for policy in _policies(objects, workload, "Ingress"):
            for rule in policy["spec"].get("ingress", []):
                assert rule.get("ports"), policy["metadata"]["name"]
