"""Dynamic hostPath volumes for the local cluster: a PersistentVolumeClaim of the ``standard`` StorageClass gets a
directory of this machine (mode 0777, like kind's local-path provisioner, so any pod uid can write to it) and a
PersistentVolume bound to it; when the claim is deleted, the directory and the volume go too (reclaimPolicy Delete).

Runs as a process of the cluster (scripts/localcluster/cluster.py starts and stops it), polling the apiserver once a
second with its own client certificate (RBAC in scripts/localcluster/config/addons.yaml).

    python -m scripts.localcluster.provisioner --kubeconfig <file> --root <volumes dir>
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

PROVISIONER = "airflow-azblob.local/hostpath"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


class Provisioner:
    def __init__(self, core: Any, storage: Any, root: Path) -> None:
        self.core = core
        self.storage = storage
        self.root = root

    def our_classes(self) -> dict[str, str]:
        """StorageClass name -> reclaim policy, for the classes this provisioner serves."""
        return {
            sc.metadata.name: sc.reclaim_policy or "Delete"
            for sc in self.storage.list_storage_class().items
            if sc.provisioner == PROVISIONER
        }

    def provision(self, claim: Any, reclaim_policy: str) -> None:
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        name = f"pvc-{claim.metadata.uid}"
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)
        volume = client.V1PersistentVolume(
            metadata=client.V1ObjectMeta(name=name, annotations={PROVISIONED_BY: PROVISIONER}),
            spec=client.V1PersistentVolumeSpec(
                capacity={"storage": claim.spec.resources.requests["storage"]},
                access_modes=claim.spec.access_modes,
                persistent_volume_reclaim_policy=reclaim_policy,
                storage_class_name=claim.spec.storage_class_name,
                volume_mode=claim.spec.volume_mode or "Filesystem",
                host_path=client.V1HostPathVolumeSource(path=str(path), type="Directory"),
                claim_ref=client.V1ObjectReference(
                    kind="PersistentVolumeClaim",
                    namespace=claim.metadata.namespace,
                    name=claim.metadata.name,
                    uid=claim.metadata.uid,
                ),
            ),
        )
        try:
            self.core.create_persistent_volume(volume)
        except ApiException as error:
            if error.status != 409:  # already created by an earlier pass
                raise
            return
        log(f"provisioned {name} at {path} for {claim.metadata.namespace}/{claim.metadata.name}")

    def release(self, volume: Any) -> None:
        from kubernetes.client.rest import ApiException

        path = Path(volume.spec.host_path.path)
        if path.parent == self.root:
            shutil.rmtree(path, ignore_errors=True)
        try:
            self.core.delete_persistent_volume(volume.metadata.name)
        except ApiException as error:
            if error.status != 404:
                raise
        log(f"deleted {volume.metadata.name} and {path}")

    def reconcile(self) -> None:
        classes = self.our_classes()
        for claim in self.core.list_persistent_volume_claim_for_all_namespaces().items:
            if (
                claim.status.phase == "Pending"
                and not claim.spec.volume_name
                and claim.spec.storage_class_name in classes
            ):
                self.provision(claim, classes[claim.spec.storage_class_name])
        for volume in self.core.list_persistent_volume().items:
            ours = (volume.metadata.annotations or {}).get(PROVISIONED_BY) == PROVISIONER
            if ours and volume.status.phase == "Released" and volume.spec.persistent_volume_reclaim_policy == "Delete":
                self.release(volume)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--root", required=True, type=Path, help="directory that holds the volumes")
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)

    from kubernetes import client, config

    config.load_kube_config(config_file=args.kubeconfig)
    args.root.mkdir(parents=True, exist_ok=True)
    provisioner = Provisioner(client.CoreV1Api(), client.StorageV1Api(), args.root.resolve())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log(f"serving StorageClasses with provisioner {PROVISIONER}, volumes under {args.root}")
    while True:
        try:
            provisioner.reconcile()
        except Exception as error:  # the apiserver may be restarting: report and try again
            log(f"reconcile failed, retrying: {error}")
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
