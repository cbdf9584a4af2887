"""The portal's pull secrets and every manifest in docs/kubernetes.md, checked offline
against the Kubernetes schemas (kubernetes-validate, strict: unknown fields fail)."""

import re

import kubernetes_validate
import pytest
import yaml

from tasks_app.formats.registry import kubernetes_secret
from tests.helpers import ROOT

VERSION = "1.31"
DOC = ROOT / "docs" / "kubernetes.md"


def _manifests() -> list[dict]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    return [doc for block in blocks for doc in yaml.safe_load_all(block) if doc]


def test_the_doc_holds_the_promised_manifests():
    kinds = sorted(m["kind"] for m in _manifests())
    assert kinds == ["CronJob", "Pod", "Role", "RoleBinding", "Secret", "ServiceAccount"]


@pytest.mark.parametrize(
    "manifest", _manifests(), ids=lambda m: f"{m['kind']}/{m['metadata']['name']}"
)
def test_every_manifest_in_the_docs_is_valid(manifest):
    kubernetes_validate.validate(manifest, VERSION, strict=True)


def test_the_cronjobs_role_reaches_only_the_pull_secret():
    role = next(m for m in _manifests() if m["kind"] == "Role")
    (rule,) = role["rules"]
    assert rule["resourceNames"] == ["ecr-pull"]
    assert set(rule["verbs"]) <= {"get", "patch"}


@pytest.mark.parametrize("namespace", ["", "apps"])
def test_the_portals_secret_is_valid(namespace):
    secret = kubernetes_secret(
        {"111111111111.dkr.ecr.eu-west-1.amazonaws.com": "QVdTOnB3"},
        name="ecr-pull",
        namespace=namespace,
    )
    kubernetes_validate.validate(secret, VERSION, strict=True)


def test_a_broken_manifest_is_caught():
    secret = kubernetes_secret({"h": "QVdTOnB3"}, name="ecr-pull")
    secret["metadata"]["nmae"] = "typo"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(secret, VERSION, strict=True)


def test_the_yaml_writer_round_trips_any_string():
    from tasks_app.formats.registry import as_yaml

    document = {
        "a": 'quote " backslash \\ newline \n tab \t unicode \u00e9 \u2028 colon: hash #',
        "b": {"c": "", "d-e/f.g": "true", "on": "1", "No": "x", ".inf": "y", ".5": "z"},
    }
    assert yaml.safe_load(as_yaml(document)) == document
    with pytest.raises(TypeError):
        as_yaml({"a": 1})
