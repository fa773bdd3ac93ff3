"""The local cluster: a real single-node Kubernetes run as processes of this machine, and the stand-in images it runs,
for a machine that reaches no image registry (root on Debian). CI runs the chart here; users try it on kind and run it
on AKS with the official images. Everything of it lives in this folder:

    cluster, images     the entry points (`make cluster-up|cluster-down|cluster-status`, `make images`)
    cluster.py          the cluster's processes, its PKI (pki.py) and hostPath provisioner (provisioner.py)
    images.py           the stand-in images and airflow-azblob:local, built without a registry
    kind_node.py        the kind node stand-in, which kind builds (for `STANDINS=1 make kind-up`, docs/kind.md)
    runc_bounded.py     the OCI runtime that lets privileged containers (kind's nodes) start where root lacks a
                        capability (registered by images.start_docker only there)
    podwatch.py         a watch of worker pods, for tests and benchmarks
    config/             the components' configuration (containerd, kubelet, kube-proxy, CoreDNS, CNI) and the go.mod
                        files that pin the Kubernetes binaries and etcd scripts/bootstrap builds
    standins/           the stand-in images' Dockerfiles (standins.yaml lists them and what each replaces)
    values.yaml         the chart values layered on config/profiles/kind.yaml here
"""
