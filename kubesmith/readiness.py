"""Whether Kubernetes objects are ready, read from their status in one `kubectl get` (never a
blocking `kubectl wait`, whose wait would count as kubesmith's own work): a Deployment rolled out
by `kubectl rollout status`'s rules, a Node Ready, anything else (an APIService) Available."""

from __future__ import annotations

import json

from kubesmith.context import DeployContext
from kubesmith.kubectl import kubectl


def _condition(obj: dict, kind: str) -> dict:
    """The object's condition of this type (empty when it has none)."""
    for condition in obj.get("status", {}).get("conditions") or ():
        if condition.get("type") == kind:
            return condition
    return {}


def _rollout(deployment: dict) -> str | None:
    """Why a Deployment is not rolled out yet (kubectl rollout status's rules), None when it is."""
    spec, status = deployment.get("spec", {}), deployment.get("status", {})
    if deployment["metadata"].get("generation", 0) > status.get("observedGeneration", 0):
        return "its new spec not observed yet"
    progressing = _condition(deployment, "Progressing")
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return f"exceeded its progress deadline: {progressing.get('message', '')}"
    wanted, updated = spec.get("replicas", 1), status.get("updatedReplicas", 0)
    if updated < wanted:
        return f"{updated} of {wanted} updated replicas"
    if status.get("replicas", 0) > updated:
        return f"{status['replicas'] - updated} old replicas pending termination"
    if status.get("availableReplicas", 0) < updated:
        return f"{status.get('availableReplicas', 0)} of {updated} updated replicas available"
    return None


def problem(obj: dict) -> str | None:
    """Why this object is not ready, None when it is."""
    kind = obj.get("kind", "")
    if kind == "Deployment":
        return _rollout(obj)
    wanted = "Ready" if kind == "Node" else "Available"
    return None if _condition(obj, wanted).get("status") == "True" else f"not {wanted}"


def not_ready(ctx: DeployContext, names: list[str], namespace: str = "") -> str | None:
    """One `kubectl get` of these objects (kind/name): what is not ready yet, None when all
    are (kubectl's error when it cannot read them, e.g. one not made yet)."""
    scope = ("-n", namespace) if namespace else ()
    result = kubectl(ctx, "get", *scope, *names, "-o", "json")
    if result.returncode != 0:
        return (result.stderr or result.stdout).strip()[-300:] or "no answer"
    found = json.loads(result.stdout)
    items = found.get("items", [found]) if found.get("kind") == "List" else [found]
    why = [f"{name}: {reason}" for name, obj in zip(names, items, strict=True)
           if (reason := problem(obj)) is not None]
    return "; ".join(why) or None
