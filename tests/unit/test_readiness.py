"""Readiness read from objects' status (kubectl faked): rollout rules, conditions, one get."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime

import pytest

from kubesmith import readiness


def _deployment(generation: int = 1, observed: int = 1, replicas: int = 2, updated: int = 2,
                total: int = 2, available: int = 2, conditions: tuple = ()) -> dict:
    return {"kind": "Deployment", "metadata": {"name": "coredns", "generation": generation},
            "spec": {"replicas": replicas},
            "status": {"observedGeneration": observed, "updatedReplicas": updated,
                       "replicas": total, "availableReplicas": available,
                       "conditions": list(conditions)}}


@pytest.mark.parametrize(("deployment", "why"), [
    (_deployment(), None),
    (_deployment(generation=2), "its new spec not observed yet"),
    (_deployment(updated=1, total=1, available=1), "1 of 2 updated replicas"),
    (_deployment(total=3), "1 old replicas pending termination"),
    (_deployment(available=1), "1 of 2 updated replicas available"),
    (_deployment(available=1, conditions=({"type": "Progressing", "message": "too slow",
                                           "reason": "ProgressDeadlineExceeded"},)),
     "exceeded its progress deadline: too slow"),
])
def test_a_deployment_is_ready_when_rolled_out(deployment: dict, why: str | None) -> None:
    assert readiness.problem(deployment) == why


def test_a_node_is_ready_on_its_ready_condition_and_others_on_available() -> None:
    def obj(kind: str, kind_of_condition: str, status: str) -> dict:
        return {"kind": kind, "status": {"conditions": [{"type": kind_of_condition,
                                                         "status": status}]}}
    assert readiness.problem(obj("Node", "Ready", "True")) is None
    assert readiness.problem(obj("Node", "Ready", "False")) == "not Ready"
    assert readiness.problem(obj("Node", "Available", "True")) == "not Ready"
    assert readiness.problem(obj("APIService", "Available", "True")) is None
    assert readiness.problem({"kind": "APIService", "status": {}}) == "not Available"


def test_one_get_names_what_is_not_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    listed = {"kind": "List", "items": [
        _deployment(available=1),
        {"kind": "APIService", "status": {"conditions": [{"type": "Available",
                                                          "status": "True"}]}}]}

    def fake(_ctx: object, *args: str, **_kw: object) -> subprocess.CompletedProcess:
        calls.append(args)
        return subprocess.CompletedProcess(args, 0, json.dumps(listed), "")
    monkeypatch.setattr(readiness, "kubectl", fake)
    names = ["deployment/coredns", "apiservice/v1beta1.metrics.k8s.io"]
    assert readiness.not_ready(None, names, "kube-system") == (
        "deployment/coredns: 1 of 2 updated replicas available")
    assert calls == [("get", "-n", "kube-system", *names, "-o", "json")]
    listed["items"][0] = _deployment()
    assert readiness.not_ready(None, names, "kube-system") is None


def test_kubectls_error_is_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readiness, "kubectl", lambda *_a, **_k: subprocess.CompletedProcess(
        (), 1, "", 'Error from server (NotFound): nodes "lab-2" not found\n'))
    assert readiness.not_ready(None, ["node/lab-2"]) == (
        'Error from server (NotFound): nodes "lab-2" not found')
    node = {"kind": "Node", "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    monkeypatch.setattr(readiness, "kubectl", lambda *_a, **_k: subprocess.CompletedProcess(
        (), 0, json.dumps(node), ""))
    assert readiness.not_ready(None, ["node/lab-2"]) is None


def _pod(name: str, ready: str | None, since: str = "2026-12-04T04:50:05Z", probe: bool = True,
         phase: str = "Running", node: str = "lab-2") -> dict:
    container = {"name": "c", **({"readinessProbe": {"periodSeconds": 2}} if probe else {})}
    conditions = [{"type": "Ready", "status": ready, "lastTransitionTime": since}] if ready else []
    return {"metadata": {"name": name}, "spec": {"containers": [container], "nodeName": node},
            "status": {"phase": phase, "conditions": conditions}}


def test_a_node_s_probed_pods_must_be_ready_since_its_kubelet_started() -> None:
    started = datetime.fromisoformat("2026-12-04T04:50:05.6Z").timestamp()
    assert readiness.unprobed([
        _pod("coredns-a", "True"),  # the same second as the start: taken as since
        _pod("job", "True", "2026-12-04T04:00:00Z", probe=False),  # nothing to probe
        _pod("done", "False", phase="Succeeded"),
    ], started) is None
    assert readiness.unprobed([
        _pod("metrics-server-b", "True", "2026-12-04T04:50:04Z"),  # its kubelet's last word
        _pod("coredns-a", "False"),
    ], started) == ("pod metrics-server-b not probed since its kubelet started; "
                     "pod coredns-a not Ready")


def test_the_pods_of_every_recently_started_node_are_read_in_one_kubectl_get(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, ...]] = []
    pods = {"kind": "List", "items": [
        _pod("coredns-a", "True", node="lab-2"),
        _pod("metrics-server-b", "True", "2026-12-04T04:50:04Z", node="lab-3"),
        _pod("coredns-c", "True", "2026-12-04T04:00:00Z", node="lab-4"),  # lab-4: not asked
    ]}

    def kubectl(_ctx: object, *args: str, **_kwargs: object) -> subprocess.CompletedProcess:
        calls.append(args)
        return subprocess.CompletedProcess((), 0, json.dumps(pods), "")

    monkeypatch.setattr(readiness, "kubectl", kubectl)
    started = datetime.fromisoformat("2026-12-04T04:50:05.6Z").timestamp()
    assert readiness.pods_probed(None, {"lab-2": started, "lab-3": started}) == (
        "lab-3: pod metrics-server-b not probed since its kubelet started")
    assert calls == [("get", "pods", "-n", "kube-system", "-o", "json")]
    assert readiness.pods_probed(None, {"lab-2": started}) is None
