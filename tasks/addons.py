"""Cluster add-ons (kubesmith/addons.py): manifests rendered from templates/addons/ and applied
from the control machine with kubectl server-side apply and the operator's credential (no
credential on a host is used). The phase runs on the first master for its place in the phase
table; its ops are control-side calls, made only for an add-on whose objects differ from its
template (kubectl diff, a server-side dry run) or that is turned off but still in the cluster,
so a re-run changes nothing and restarts no add-on pod."""

from __future__ import annotations

import base64
import functools
import subprocess
import sys
from collections.abc import Callable

from pyinfra.operations import python

from kubesmith import addons
from kubesmith.addons import Addon
from kubesmith.context import DeployContext
from kubesmith.kubectl import kubectl
from kubesmith.runner import DeployError, each
from tasks import _ops
from tasks.pki import DRY_PLACEHOLDER

FIELD_MANAGER = "kubesmith"
# Fields someone else changed (e.g. `kubectl scale`) are taken back: the template is the truth.
SERVER_SIDE = ("--server-side", f"--field-manager={FIELD_MANAGER}", "--force-conflicts")
# One replica per node (the template's anti-affinity) up to two.
MAX_DNS_REPLICAS = 2


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def values(ctx: DeployContext, addon: Addon) -> dict[str, object]:
    """Template values of an add-on: group data, its name and image, replicas, certificates
    (placeholders in a dry run on a fresh state, where the PKI is not made)."""
    pki = ctx.pki
    fresh = ctx.dry and not pki.path("metrics-server", "key").exists()
    pem: dict[str, bytes] = {} if fresh else {
        "ca_bundle": pki.ca_pem("kubernetes-ca"), "tls_crt": pki.cert_pem("metrics-server"),
        "tls_key": pki.key_pem("metrics-server")}
    return {
        **ctx.data,
        "addon": addon.name,
        "image": addon.image_ref(ctx.data),
        "replicas": min(MAX_DNS_REPLICAS, len(ctx.cluster.nodes)),
        **{k: _b64(pem.get(k, DRY_PLACEHOLDER.encode())) for k in ("ca_bundle", "tls_crt",
                                                                    "tls_key")},
    }


def manifest(ctx: DeployContext, addon: Addon) -> str:
    """The add-on's objects as YAML (holds key material: never printed)."""
    return _ops.render(addon.template, **values(ctx, addon))


def differs(ctx: DeployContext, addon: Addon) -> bool:
    """Whether applying the add-on would change the cluster. kubectl diff exits 0 when not, 1
    when it would; any other answer (no apiserver yet: pyinfra's CLI prepares every phase
    before running one) counts as a change."""
    result = kubectl(ctx, "diff", *SERVER_SIDE, "-f", "-", stdin=manifest(ctx, addon),
                     timeout=60)
    return result.returncode != 0


def _selector(addon: Addon | None = None) -> str:
    """The label selector of kubesmith's add-on objects (of one add-on, or of any)."""
    which = f"{addons.ADDON_LABEL}={addon.name}" if addon else addons.ADDON_LABEL
    return f"{addons.MANAGED_BY},{which}"


def present(ctx: DeployContext) -> set[str]:
    """Names of the add-ons that have objects in the cluster (empty when it cannot tell)."""
    label = addons.ADDON_LABEL.replace(".", "\\.")
    result = kubectl(ctx, "get", ",".join(addons.KINDS), "-A", "-l", _selector(), "-o",
                     f"jsonpath={{range .items[*]}}{{.metadata.labels.{label}}}{{\"\\n\"}}{{end}}")
    return set(result.stdout.split()) if result.returncode == 0 else set()


def _fail(what: str, result: subprocess.CompletedProcess) -> None:
    """Show kubectl's error (pyinfra keeps a control-side step's exception to itself), raise."""
    text = (result.stderr or result.stdout).strip()[-800:]
    print(f"  [add-ons] {what}: {text}", file=sys.stderr, flush=True)
    raise DeployError(f"{what}: {text}")


def apply(ctx: DeployContext, addon: Addon) -> None:
    """Server-side apply of the add-on's objects (an op's function, run on the control machine)."""
    result = kubectl(ctx, "apply", *SERVER_SIDE, "-f", "-", stdin=manifest(ctx, addon),
                     timeout=120)
    if result.returncode != 0:
        _fail(f"kubectl apply of add-on {addon.name}", result)


def remove(ctx: DeployContext, addon: Addon) -> None:
    """Delete every object of an add-on turned off, found by its labels."""
    result = kubectl(ctx, "delete", ",".join(addons.KINDS), "-A", "-l", _selector(addon),
                     "--ignore-not-found", timeout=120)
    if result.returncode != 0:
        _fail(f"kubectl delete of add-on {addon.name}", result)


Change = tuple[str, Callable[[DeployContext, Addon], None], Addon]


def pending(ctx: DeployContext) -> list[Change]:
    """The changes a converge makes: apply each add-on turned on whose objects differ from its
    template, remove each one turned off that is still in the cluster."""
    enabled = addons.enabled(ctx.data)
    differ = each(enabled, functools.partial(differs, ctx))  # every add-on's diff at once
    changes: list[Change] = [(f"apply add-on {a.name}", apply, a)
                             for a, different in zip(enabled, differ, strict=True) if different]
    off = addons.disabled(ctx.data)
    live = present(ctx) if off else set()
    changes += [(f"remove add-on {a.name}", remove, a) for a in off if a.name in live]
    return changes


def deploy(ctx: DeployContext) -> None:
    """An op per pending change (control-side calls; the phase's host is only its place)."""
    for name, function, addon in pending(ctx):
        python.call(name=name, function=function, ctx=ctx, addon=addon)
