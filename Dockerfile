# The project's Airflow image: the official apache/airflow image plus our pinned Python packages (requirements.txt,
# resolved into requirements-image.lock with a sha256 for every file: exactly the versions the test suite runs),
# include/ on PYTHONPATH, and the Azure Blob XCom backend selected by default. DAGs come from git-sync or GitDagBundle
# unless baked in with BAKE_DAGS=true.
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
# The base image. `make images` builds a stand-in from scripts/localcluster/standins/airflow where no registry is
# reachable and passes it here; everyone else gets the official image. Its packages are not hash-checked below: pin it
# by digest for a reproducible build (--build-arg AIRFLOW_BASE_IMAGE=apache/airflow:3.3.2-python3.12@sha256:...).
ARG AIRFLOW_BASE_IMAGE=apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}
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
ARG VCS_REF=unknown
ARG SOURCE_URL=https://github.com/your-org/airflow-k8s-azblob

LABEL org.opencontainers.image.title="airflow-azblob" \
      org.opencontainers.image.description="Apache Airflow ${AIRFLOW_VERSION} with Azure Blob XComs and logs, for Kubernetes" \
      org.opencontainers.image.version="${AIRFLOW_VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${AIRFLOW_BASE_IMAGE}"

# The base image installs Python packages as the airflow user (uid 50000). pip installs requirements-image.lock (`make
# lock` writes it from requirements.txt at requirements.lock's versions) in hash-checking mode: every file it downloads
# must match a sha256 of the lock, or the build fails with "THESE PACKAGES DO NOT MATCH THE HASHES"; a package the
# lock leaves out fails it too. Wheels only: an sdist would run build code (and fetch build tools) the hashes do not
# cover, so no compiler or apt package is ever installed. Packages the base image already has at the locked version
# are kept unchecked: the base image is trusted as a whole (pin it by digest). The lock and the optional CA bundle
# (build secret ca-bundle, which pip then trusts instead of its own) are mounted for this one RUN, never stored.
USER 50000
RUN --mount=type=bind,source=requirements-image.lock,target=/tmp/requirements-image.lock \
    --mount=type=secret,id=ca-bundle,mode=0444 \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
    && pip install --no-cache-dir --require-hashes --only-binary :all: -r /tmp/requirements-image.lock

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
