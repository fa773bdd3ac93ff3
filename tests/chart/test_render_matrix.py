"""Every values combination and profile renders, validates against the Kubernetes schemas, and is well formed."""

from __future__ import annotations

import kubernetes_validate
import pytest

from tests.support import crds
from tests.support.helm import KUBE_VERSION, Manifest, all_containers, lint

SCHEMA_VERSION = ".".join(KUBE_VERSION.split(".")[:2])
LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "helm.sh/chart",
)


def _validate(obj: dict) -> None:
    if obj["kind"] in crds.CRD_KINDS:
        crds.validate(obj)
    else:
        kubernetes_validate.validate(obj, SCHEMA_VERSION, strict=True)


def test_every_rendered_object_is_valid_for_the_pinned_kubernetes_version(any_render: Manifest) -> None:
    for obj in any_render.objects:
        _validate(obj)


def test_the_worker_pod_template_is_a_valid_pod(any_render: Manifest) -> None:
    if any_render.has("ConfigMap", "pod-template"):
        _validate(any_render.worker_pod_template())


def test_the_schema_validator_rejects_an_unknown_field() -> None:
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "dataa": {}})


def test_every_object_carries_the_recommended_labels(any_render: Manifest) -> None:
    for obj in any_render.objects:
        labels = obj["metadata"].get("labels", {})
        missing = [label for label in LABELS if label not in labels]
        assert not missing, f"{obj['kind']}/{obj['metadata']['name']} lacks {missing}"


def test_selectors_are_the_immutable_name_instance_component_subset(any_render: Manifest) -> None:
    for obj in any_render.of_kind("Deployment") + any_render.of_kind("StatefulSet"):
        selector = obj["spec"]["selector"]["matchLabels"]
        assert set(selector) == {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"}
        pod_labels = obj["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= pod_labels.items()
    for service in any_render.of_kind("Service"):
        assert set(service["spec"]["selector"]) == {
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/component",
        }


def test_services_select_exactly_one_workload(any_render: Manifest) -> None:
    workloads = any_render.of_kind("Deployment") + any_render.of_kind("StatefulSet")
    for service in any_render.of_kind("Service"):
        selected = [
            w["metadata"]["name"]
            for w in workloads
            if service["spec"]["selector"].items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1, f"Service {service['metadata']['name']} selects {selected}"


def test_every_container_is_non_root_without_privilege_escalation_or_capabilities(any_render: Manifest) -> None:
    for where, spec in any_render.pod_specs():
        pod_ctx = spec.get("securityContext", {})
        assert pod_ctx.get("runAsNonRoot") is True, where
        assert pod_ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        for container in all_containers(spec):
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, f"{where} {container['name']}"
            assert ctx["capabilities"]["drop"] == ["ALL"], f"{where} {container['name']}"
            assert ctx["readOnlyRootFilesystem"] is True, f"{where} {container['name']}"


def test_every_volume_mount_refers_to_a_volume_of_its_pod(any_render: Manifest) -> None:
    for where, spec in any_render.pod_specs():
        volumes = {v["name"] for v in spec.get("volumes", [])}
        for container in all_containers(spec):
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{where} {container['name']} mounts missing volume {mount['name']}"


def test_every_referenced_configmap_is_rendered(any_render: Manifest) -> None:
    for where, spec in any_render.pod_specs():
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert any_render.has("ConfigMap", volume["configMap"]["name"]), f"{where}: {volume}"


def test_every_container_requests_resources(any_render: Manifest) -> None:
    # A namespace whose ResourceQuota covers requests refuses a pod any of whose containers (init ones too) lacks them.
    for where, spec in any_render.pod_specs():
        for container in all_containers(spec):
            requests = container.get("resources", {}).get("requests", {})
            assert {"cpu", "memory"} <= requests.keys(), f"{where} {container['name']}: {requests}"


def test_every_empty_dir_has_a_size_limit(any_render: Manifest) -> None:
    for where, spec in any_render.pod_specs():
        for volume in spec.get("volumes", []):
            if "emptyDir" in volume:
                assert volume["emptyDir"].get("sizeLimit"), f"{where}: {volume}"


def test_the_crd_validator_rejects_an_unknown_route_field() -> None:
    import jsonschema

    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "x"}}
    with pytest.raises(jsonschema.ValidationError):
        crds.validate({**route, "spec": {"parentRefs": [{"name": "gw"}], "rulez": []}})


def test_images_are_pinned(any_render: Manifest) -> None:
    for where, spec in any_render.pod_specs():
        for container in all_containers(spec):
            image = container["image"]
            assert ":" in image.rsplit("/", 1)[-1], f"{where}: {image} has no tag"
            assert not image.endswith(":latest"), f"{where}: {image}"


@pytest.mark.parametrize("profile", ["kind", "aks-example"])
def test_helm_lint_strict_passes_on_profile(profile: str) -> None:
    assert "0 chart(s) failed" in lint(profile=profile)


def test_helm_lint_strict_passes_on_defaults() -> None:
    assert "0 chart(s) failed" in lint()
