"""git-sync v4: one-shot init container then sidecar of dag-processor and triggerer, one-shot init container of
worker pods, one DAG path."""

from __future__ import annotations

import pytest

from tests.support.helm import Manifest, all_containers, env_of, render, render_error

REPO = "https://example.com/org/dags.git"
GIT_SYNC = {"dags.mode": "gitSync", "dags.gitSync.repo": REPO, "dags.gitSync.subPath": "dags", "dags.gitSync.ref": "v1"}
SSH = {
    **GIT_SYNC,
    "dags.gitSync.repo": "git@github.com:org/dags.git",
    "dags.gitSync.ssh.existingSecret": "git-ssh",
    "dags.gitSync.ssh.knownHosts": "github.com ssh-ed25519 AAAA",
}
GITSYNC_NAMES = {
    "GITSYNC_REPO",
    "GITSYNC_REF",
    "GITSYNC_ROOT",
    "GITSYNC_LINK",
    "GITSYNC_PERIOD",
    "GITSYNC_DEPTH",
    "GITSYNC_ONE_TIME",
    "GITSYNC_MAX_FAILURES",
    "GITSYNC_SSH_KEY_FILE",
    "GITSYNC_SSH_KNOWN_HOSTS",
    "GITSYNC_SSH_KNOWN_HOSTS_FILE",
    "GITSYNC_USERNAME",
    "GITSYNC_PASSWORD",
    "GITSYNC_FILTER",
    "GITSYNC_SPARSE_CHECKOUT_FILE",
}
SPARSE = {**GIT_SYNC, "dags.gitSync.sparseCheckout": True}


def pods_needing_dags(manifest: Manifest) -> dict[str, dict]:
    pods = {c: manifest.get("Deployment", c)["spec"]["template"]["spec"] for c in ("dag-processor", "triggerer")}
    pods["worker"] = manifest.worker_pod_template()["spec"]
    return pods


def git_sync(spec: dict) -> dict:
    """The sidecar where there is one, else the one-shot init container."""
    return next(c for c in [*spec["containers"], *spec.get("initContainers", [])] if c["name"].startswith("git-sync"))


def dags_folder(manifest: Manifest) -> str:
    parser = manifest.airflow_config()
    return parser["core"]["dags_folder"]


def test_dags_folder_is_root_link_subpath_in_airflow_cfg() -> None:
    assert dags_folder(render(GIT_SYNC)) == "/git/repo/dags"


def test_an_empty_subpath_means_the_repository_root() -> None:
    assert dags_folder(render({**GIT_SYNC, "dags.gitSync.subPath": ""})) == "/git/repo"


def test_every_dag_reader_mounts_the_synced_checkout_where_dags_folder_points() -> None:
    manifest = render(GIT_SYNC)
    folder = dags_folder(manifest)
    for name, spec in pods_needing_dags(manifest).items():
        sync_env = env_of(git_sync(spec))
        linked = f"{sync_env['GITSYNC_ROOT']}/{sync_env['GITSYNC_LINK']}"
        assert folder == f"{linked}/dags", name
        airflow = spec["containers"][0]
        mount = next(m for m in airflow["volumeMounts"] if m["name"] == "dags")
        sync_mount = next(m for m in git_sync(spec)["volumeMounts"] if m["name"] == "dags")
        assert mount["mountPath"] == sync_mount["mountPath"] == sync_env["GITSYNC_ROOT"], name
        assert mount["readOnly"] is True, name


def test_dag_processor_and_triggerer_sync_once_before_starting_then_run_a_sidecar_and_workers_sync_once() -> None:
    """A dag-processor that started on an empty folder would deactivate every DAG until the sidecar's first sync:
    the one-shot init container is the last one before Airflow starts, with the sidecar's settings and mounts."""
    pods = pods_needing_dags(render(GIT_SYNC))
    for name in ("dag-processor", "triggerer"):
        assert [c["name"] for c in pods[name]["containers"]] == [name, "git-sync"]
        first_sync, sidecar = pods[name]["initContainers"][-1], pods[name]["containers"][1]
        assert first_sync["name"] == "git-sync-init", name
        assert env_of(sidecar)["GITSYNC_ONE_TIME"] == "false"
        assert env_of(first_sync) == {**env_of(sidecar), "GITSYNC_ONE_TIME": "true"}, name
        assert first_sync["volumeMounts"] == sidecar["volumeMounts"], name
    assert [c["name"] for c in pods["worker"]["initContainers"]] == ["git-sync-init"]
    assert env_of(pods["worker"]["initContainers"][0])["GITSYNC_ONE_TIME"] == "true"


def test_scheduler_and_api_server_get_no_git_sync_with_the_kubernetes_executor() -> None:
    manifest = render(GIT_SYNC)
    for name in ("scheduler", "api-server"):
        names = [c["name"] for c in all_containers(manifest.get("Deployment", name)["spec"]["template"]["spec"])]
        assert "git-sync" not in names, name


@pytest.mark.parametrize("executor", ["LocalExecutor", "KubernetesExecutor,LocalExecutor"])
def test_a_scheduler_that_runs_tasks_gets_the_dags_too(executor: str) -> None:
    manifest = render({**GIT_SYNC, "executor": executor})
    spec = manifest.get("Deployment", "scheduler")["spec"]["template"]["spec"]
    assert env_of(git_sync(spec))["GITSYNC_REPO"] == REPO


def test_git_sync_gets_repo_ref_period_depth_and_failure_budget() -> None:
    values = {**GIT_SYNC, "dags.gitSync.period": 30, "dags.gitSync.depth": 5, "dags.gitSync.maxFailures": 7}
    env = env_of(git_sync(pods_needing_dags(render(values))["dag-processor"]))
    assert (env["GITSYNC_REPO"], env["GITSYNC_REF"], env["GITSYNC_PERIOD"]) == (REPO, "v1", "30s")
    assert (env["GITSYNC_DEPTH"], env["GITSYNC_MAX_FAILURES"]) == ("5", "7")


@pytest.mark.parametrize(
    "values",
    [GIT_SYNC, SSH, {**GIT_SYNC, "dags.gitSync.https.existingSecret": "git-https"}, SPARSE],
    ids=["anonymous", "ssh", "https", "sparse"],
)
def test_git_sync_reads_only_documented_v4_variables(values: dict) -> None:
    for spec in pods_needing_dags(render(values)).values():
        assert set(env_of(git_sync(spec))) <= GITSYNC_NAMES


def test_git_sync_runs_as_uid_65533_read_only_without_privileges() -> None:
    for name, spec in pods_needing_dags(render(GIT_SYNC)).items():
        ctx = git_sync(spec)["securityContext"]
        assert (ctx["runAsUser"], ctx["runAsNonRoot"], ctx["readOnlyRootFilesystem"]) == (65533, True, True), name
        assert ctx["allowPrivilegeEscalation"] is False


def test_git_sync_image_is_the_pinned_v4_release() -> None:
    image = git_sync(pods_needing_dags(render(GIT_SYNC))["triggerer"])["image"]
    assert image == "registry.k8s.io/git-sync/git-sync:v4.7.1"


def test_ssh_key_is_mounted_read_only_with_mode_0440_and_known_hosts_verified() -> None:
    manifest = render(SSH)
    for name, spec in pods_needing_dags(manifest).items():
        key_volume = next(v for v in spec["volumes"] if v["name"] == "git-ssh-key")
        assert key_volume["secret"] == {"secretName": "git-ssh", "defaultMode": 0o440}, name
        assert spec["securityContext"]["fsGroup"] == 0, "git-sync reads the 0440 key through group 0"
        env = env_of(git_sync(spec))
        assert env["GITSYNC_SSH_KEY_FILE"] == "/etc/git-secret/ssh"
        assert env["GITSYNC_SSH_KNOWN_HOSTS"] == "true"
        assert env["GITSYNC_SSH_KNOWN_HOSTS_FILE"] == "/etc/git-secret/known_hosts"
        mounts = {m["mountPath"]: m for m in git_sync(spec)["volumeMounts"]}
        assert mounts["/etc/git-secret/ssh"]["subPath"] == "gitSshKey"
        assert mounts["/etc/git-secret/known_hosts"]["readOnly"] is True
    known_hosts = manifest.get("ConfigMap", "git-known-hosts")["data"]["known_hosts"]
    assert known_hosts.strip() == "github.com ssh-ed25519 AAAA"


def test_ssh_without_known_hosts_needs_the_explicit_opt_out_and_notes_warn() -> None:
    from tests.support.helm import render_notes

    values = {**SSH, "dags.gitSync.ssh.knownHosts": "", "dags.gitSync.ssh.disableKnownHosts": True}
    env = env_of(git_sync(pods_needing_dags(render(values))["worker"]))
    assert env["GITSYNC_SSH_KNOWN_HOSTS"] == "false"
    assert "GITSYNC_SSH_KNOWN_HOSTS_FILE" not in env
    assert "SECURITY WARNING" in render_notes(values)


def test_https_credentials_come_from_a_secret() -> None:
    env = env_of(git_sync(pods_needing_dags(render({**GIT_SYNC, "dags.gitSync.https.existingSecret": "gh"}))["worker"]))
    assert env["GITSYNC_USERNAME"] == {"secretKeyRef": {"name": "gh", "key": "username"}}
    assert env["GITSYNC_PASSWORD"] == {"secretKeyRef": {"name": "gh", "key": "password"}}


def test_sparse_checkout_fetches_no_file_contents_and_checks_out_the_dag_folder_alone() -> None:
    manifest = render(SPARSE)
    for name, spec in pods_needing_dags(manifest).items():
        container = git_sync(spec)
        env = env_of(container)
        assert env["GITSYNC_FILTER"] == "blob:none", name
        assert env["GITSYNC_SPARSE_CHECKOUT_FILE"] == "/etc/git-sync/sparse-checkout", name
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/etc/git-sync")
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        assert volume["configMap"]["name"].endswith("-git-sparse-checkout"), name
    patterns = manifest.get("ConfigMap", "git-sparse-checkout")["data"]["sparse-checkout"].split()
    assert patterns == ["/*", "!/*/", "/dags/"]
    assert "GITSYNC_FILTER" not in env_of(git_sync(pods_needing_dags(render(GIT_SYNC))["worker"]))


def test_a_nested_dag_folder_keeps_its_parents_files_in_cone_form() -> None:
    manifest = render({**SPARSE, "dags.gitSync.subPath": "/airflow/dags/"})
    patterns = manifest.get("ConfigMap", "git-sparse-checkout")["data"]["sparse-checkout"].split()
    assert patterns == ["/*", "!/*/", "/airflow/", "!/airflow/*/", "/airflow/dags/"]


def test_sparse_checkout_of_the_repository_root_is_refused_saying_what_to_set() -> None:
    error = render_error({**SPARSE, "dags.gitSync.subPath": ""})
    assert "dags.gitSync.sparseCheckout" in error
    assert "set dags.gitSync.subPath" in error


def test_a_changed_dag_folder_rolls_the_pods_that_sync() -> None:
    annotation = "checksum/git-sparse-checkout"
    before = render(SPARSE).get("Deployment", "dag-processor")["spec"]["template"]["metadata"]["annotations"]
    after = render({**SPARSE, "dags.gitSync.subPath": "other"}).get("Deployment", "dag-processor")
    assert before[annotation] != after["spec"]["template"]["metadata"]["annotations"][annotation]


def test_kind_profile_syncs_main_from_the_dev_git_server(kind: Manifest) -> None:
    env = env_of(git_sync(pods_needing_dags(kind)["worker"]))
    assert (env["GITSYNC_REPO"], env["GITSYNC_REF"]) == ("git://dags-git:9418/dags.git", "main")
    assert env["GITSYNC_FILTER"] == "blob:none"  # the dev Git server serves partial clones
    assert dags_folder(kind) == "/git/repo/dags"


def test_git_bundle_mode_configures_gitdagbundle_without_a_sidecar() -> None:
    import json

    values = {
        "dags.mode": "gitBundle",
        "dags.gitBundle.repoUrl": REPO,
        "dags.gitBundle.trackingRef": "main",
        "dags.gitBundle.subdir": "dags",
        "dags.gitBundle.connectionId": "git_dags",
        "dags.gitBundle.connectionSecret": "git-conn",
    }
    manifest = render(values)
    parser = manifest.airflow_config()
    bundles = json.loads(parser["dag_processor"]["dag_bundle_config_list"])
    assert bundles == [
        {
            "name": "dags",
            "classpath": "airflow.providers.git.bundles.git.GitDagBundle",
            "kwargs": {
                "repo_url": REPO,
                "tracking_ref": "main",
                "subdir": "dags",
                "git_conn_id": "git_dags",
                "refresh_interval": 60,
            },
        }
    ]
    for where, spec in manifest.pod_specs():
        assert not any("git-sync" in c["image"] for c in all_containers(spec)), where
    worker_env = env_of(manifest.worker_pod_template()["spec"]["containers"][0])
    assert worker_env["AIRFLOW_CONN_GIT_DAGS"] == {"secretKeyRef": {"name": "git-conn", "key": "connection"}}


def test_git_bundle_config_builds_a_real_gitdagbundle() -> None:
    import json

    from airflow.providers.git.bundles.git import GitDagBundle

    manifest = render({"dags.mode": "gitBundle", "dags.gitBundle.repoUrl": REPO})
    parser = manifest.airflow_config()
    (bundle,) = json.loads(parser["dag_processor"]["dag_bundle_config_list"])
    assert bundle["classpath"] == f"{GitDagBundle.__module__}.{GitDagBundle.__name__}"
    built = GitDagBundle(name=bundle["name"], **bundle["kwargs"])
    assert (built.repo_url, built.tracking_ref) == (REPO, "main")
