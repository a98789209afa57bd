"""The add-on table: each cluster add-on kubesmith can apply, its manifest template, its image
and the objects that say it works. Group data `addons` turns them on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kubesmith.binaries import cache
from kubesmith.binaries.images import image_ref
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.errors import UserError

# Labels on every object of an add-on: what `up` selects to remove an add-on turned off.
MANAGED_BY = "app.kubernetes.io/managed-by=kubesmith"
ADDON_LABEL = "kubesmith.io/addon"
# The kinds add-on templates use, for finding and deleting an add-on's objects by label
# (tests/unit/test_addons.py checks every template's kinds are listed).
KINDS = ("apiservices.apiregistration.k8s.io", "deployments.apps",
         "poddisruptionbudgets.policy", "services", "configmaps", "secrets", "serviceaccounts",
         "rolebindings.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io",
         "clusterroles.rbac.authorization.k8s.io")


class AddonError(UserError):
    """An add-on that cannot be deployed as configured (e.g. its image is not in the cache)."""


@dataclass(frozen=True)
class Addon:
    """One add-on: its manifest template, its image component, the objects that say it works
    (Deployments rolled out, anything else Available)."""

    name: str
    template: str
    image: str
    ready: tuple[str, ...]

    def image_ref(self, data: dict[str, object]) -> str:
        """The local image name its pods run (never pulled)."""
        component = COMPONENTS[self.image]
        return image_ref(str(component.image), str(data[component.version_key]))


ADDONS = {a.name: a for a in (
    Addon("coredns", "addons/coredns.yaml.j2", "coredns", ("deployment/coredns",)),
    Addon("metrics-server", "addons/metrics-server.yaml.j2", "metrics-server",
          ("deployment/metrics-server", "apiservice/v1beta1.metrics.k8s.io")),
)}


def enabled(data: dict[str, object]) -> tuple[Addon, ...]:
    """The add-ons group data turns on, in table order (unknown names are validate's job)."""
    wanted = set(map(str, data.get("addons") or ()))
    return tuple(a for a in ADDONS.values() if a.name in wanted)


def disabled(data: dict[str, object]) -> tuple[Addon, ...]:
    """The add-ons group data leaves off (their objects are removed from the cluster)."""
    on = enabled(data)
    return tuple(a for a in ADDONS.values() if a not in on)


def image_components() -> set[str]:
    """Every add-on's image component: `up` checks those of the add-ons turned on only."""
    return {a.image for a in ADDONS.values()}


def unused_images(data: dict[str, object]) -> set[str]:
    """Image components of add-ons turned off: neither checked nor imported on the nodes."""
    return image_components() - {a.image for a in enabled(data)}


def check_images(data: dict[str, object], root: Path | None = None) -> None:
    """Verify the images of the add-ons turned on; refuse one missing from the cache in one line
    (a checksum mismatch raises as for any cached file)."""
    root = root or cache.default_root()
    for addon in enabled(data):
        component = COMPONENTS[addon.image]
        version = str(data[component.version_key])
        directory = cache.component_dir(root, component.name, version, cache.host_arch())
        try:
            cache.verify(directory, component.files)
        except cache.CacheIncomplete as error:
            raise AddonError(
                f"add-on {addon.name}: image {addon.image_ref(data)} is not in the binary cache "
                f"({directory}): run `python deploy.py binaries {component.name}`, or remove "
                f"{addon.name!r} from `addons` in group data; nothing was changed") from error
