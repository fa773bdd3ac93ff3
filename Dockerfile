# The project's Airflow image: the official apache/airflow image plus our pinned Python packages (requirements.txt,
# constrained by requirements.lock: exactly the versions the test suite runs), include/ on PYTHONPATH, and the Azure
# Blob XCom backend selected by default. DAGs come from git-sync or GitDagBundle unless baked in with BAKE_DAGS=true.
#
#   docker build -t airflow-azblob:local .
#   docker build -t airflow-azblob:local --build-arg BAKE_DAGS=true .   # the chart's "DAGs in image" mode
#   docker build -t airflow-azblob:local --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt .
#                                       # behind a TLS-intercepting proxy: pip trusts this CA bundle (never stored)
#
# No `# syntax=` line on purpose: the Dockerfile frontend built into Docker (BuildKit, DOCKER_BUILDKIT=1 on Docker
# 20.10) handles every instruction here, so a build never has to pull a frontend image.
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.12
# The base image. `make images` builds a stand-in from scripts/localcluster/standins/airflow where no registry is reachable and
# passes it here; everyone else gets the official image.
ARG AIRFLOW_BASE_IMAGE=apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}
# pip constraints: a path in the build container or a URL. The default is this repository's requirements.lock
# (bind-mounted below), so the image holds the versions the tests ran. Airflow's own constraints for the release
# work too when requirements.txt pins nothing newer than they do:
#   --build-arg AIRFLOW_CONSTRAINTS_LOCATION=https://raw.githubusercontent.com/apache/airflow/constraints-3.3.2/constraints-3.12.txt
ARG AIRFLOW_CONSTRAINTS_LOCATION=/tmp/requirements.lock
ARG BAKE_DAGS=false

# DAG sources, selected by BAKE_DAGS (only the selected stage is built): an empty folder, or this repo's dags/.
# (hadolint can't see that dags-${BAKE_DAGS} names a stage of this file, hence the DL3006 ignore.)
FROM ${AIRFLOW_BASE_IMAGE} AS dags-false
WORKDIR /dags

FROM dags-false AS dags-true
COPY dags/ /dags/

# hadolint ignore=DL3006
FROM dags-${BAKE_DAGS} AS dags

FROM ${AIRFLOW_BASE_IMAGE}
ARG AIRFLOW_VERSION
ARG PYTHON_VERSION
ARG AIRFLOW_BASE_IMAGE
ARG AIRFLOW_CONSTRAINTS_LOCATION
ARG VCS_REF=unknown
ARG SOURCE_URL=https://github.com/your-org/airflow-k8s-azblob

LABEL org.opencontainers.image.title="airflow-azblob" \
      org.opencontainers.image.description="Apache Airflow ${AIRFLOW_VERSION} with Azure Blob XComs and logs, for Kubernetes" \
      org.opencontainers.image.version="${AIRFLOW_VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${AIRFLOW_BASE_IMAGE}"

# The base image installs Python packages as the airflow user (uid 50000). Every pinned package ships binary wheels,
# so no compiler or apt package is ever installed: nothing is left behind but the packages themselves.
# requirements.txt and requirements.lock are bind-mounted for the one RUN, so they aren't left in the image; so is
# the optional CA bundle (build secret ca-bundle), which pip then trusts instead of its own.
USER 50000
RUN --mount=type=bind,source=requirements.txt,target=/tmp/requirements.txt \
    --mount=type=bind,source=requirements.lock,target=/tmp/requirements.lock \
    --mount=type=secret,id=ca-bundle,mode=0444 \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
    && pip install --no-cache-dir -r /tmp/requirements.txt --constraint "${AIRFLOW_CONSTRAINTS_LOCATION}"

COPY --chown=airflow:0 include/ /opt/airflow/include/
COPY --from=dags --chown=airflow:0 /dags/ /opt/airflow/dags/

# Bytecode for everything a container imports, compiled once here. The official base image ships its packages
# without .pyc files, and the chart's read-only root filesystem keeps every process from writing them: without
# this step each component start, liveness probe and task pod compiles Airflow from source again.
RUN python -m compileall -q -j 0 /home/airflow/.local/lib /opt/airflow/include

# Airflow does not put AIRFLOW_HOME on sys.path: PYTHONPATH makes `include.*` importable in every container
# (scheduler, dag-processor, triggerer, api-server, worker pods), which the XCom backend setting requires.
ENV PYTHONPATH=/opt/airflow
ENV AIRFLOW__CORE__XCOM_BACKEND=include.azblob_xcom_backend.WasbXComBackend
# Airflow plugins (include/plugins/task_termination.py: a task whose pod gets SIGTERM fails its try and keeps its log).
ENV AIRFLOW__CORE__PLUGINS_FOLDER=/opt/airflow/include/plugins

# Runs as the image's airflow user (uid 50000, gid 0), like the base image.
USER 50000
