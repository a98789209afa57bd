"""Whether Kubernetes objects are ready, read from their status in one `kubectl get` (never a
blocking `kubectl wait`, whose wait would count as kubesmith's own work): a Deployment rolled out
by `kubectl rollout status`'s rules, a Node Ready, anything else (an APIService) Available, and
a node's add-on pods probed again since its kubelet started."""

from __future__ import annotations

import json
from datetime import datetime

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


def _ready_since(pod: dict) -> float | None:
    """When a pod last turned Ready (epoch seconds, its kubelet's clock); None when not Ready."""
    ready = _condition(pod, "Ready")
    if ready.get("status") != "True":
        return None
    return datetime.fromisoformat(ready.get("lastTransitionTime") or "1970-01-01T00:00:00Z"
                                  ).timestamp()


def unprobed(pods: list[dict], started: float) -> str | None:
    """Which running pods with a readiness probe among these (`kubectl get pods`' items) have
    not turned Ready since their kubelet started (epoch seconds, the node's clock), None when
    all have. A kubelet's (re)start reports such pods NotReady until it probes them again
    (kubernetes#100277): Ready from before that is not the kubelet's word yet."""
    why = []
    for pod in pods:
        probed = any(c.get("readinessProbe") for c in pod.get("spec", {}).get("containers", []))
        if (not probed or pod["metadata"].get("deletionTimestamp")
                or pod.get("status", {}).get("phase") != "Running"):
            continue
        since = _ready_since(pod)
        if since is None:
            why.append(f"pod {pod['metadata']['name']} not Ready")
        elif since < int(started):
            why.append(f"pod {pod['metadata']['name']} not probed since its kubelet started")
    return "; ".join(why) or None


def pods_probed(ctx: DeployContext, started: dict[str, float]) -> str | None:
    """unprobed() of the add-on pods (kube-system) on each of these nodes (node name: when its
    kubelet started), all read in one `kubectl get`."""
    result = kubectl(ctx, "get", "pods", "-n", "kube-system", "-o", "json")
    if result.returncode != 0:
        return (result.stderr or result.stdout).strip()[-300:] or "no answer"
    pods = json.loads(result.stdout).get("items", [])
    why = [f"{node}: {reason}" for node, since in started.items()
           if (reason := unprobed([p for p in pods if p["spec"].get("nodeName") == node],
                                  since)) is not None]
    return "; ".join(why) or None
