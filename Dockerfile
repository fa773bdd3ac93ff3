# syntax=docker/dockerfile:1
# The project's Airflow image: the official apache/airflow image plus our pinned Python packages (requirements.txt,
# installed with Airflow's constraints for this Airflow/Python version), include/ on PYTHONPATH, and the Azure Blob
# XCom backend selected by default. DAGs come from git-sync unless baked in with --build-arg BAKE_DAGS=true.
#
#   docker build -t airflow-azblob:local .
#   docker build -t airflow-azblob:local --build-arg BAKE_DAGS=true .   # the chart's "DAGs in image" mode
#
# CI has no Docker engine: tests/image rebuilds this file's Python environment in a venv (parsing the ARG, ENV,
# COPY and pip lines below), and hadolint lints it. Keep the pip line a single `pip install` of requirements.txt.
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.12
# Which of Airflow's constraint files: "constraints" (everything the release was tested with) or
# "constraints-no-providers" (core only: use it when requirements.txt pins providers newer than the release's).
ARG AIRFLOW_CONSTRAINTS=constraints
ARG BAKE_DAGS=false

# DAG sources, selected by BAKE_DAGS (only the selected stage is built): an empty folder, or this repo's dags/.
# (hadolint can't see that dags-${BAKE_DAGS} names a stage of this file, hence the DL3006 ignore.)
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION} AS dags-false
WORKDIR /dags

FROM dags-false AS dags-true
COPY dags/ /dags/

# hadolint ignore=DL3006
FROM dags-${BAKE_DAGS} AS dags

FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}
ARG AIRFLOW_VERSION
ARG PYTHON_VERSION
ARG AIRFLOW_CONSTRAINTS
ARG AIRFLOW_CONSTRAINTS_LOCATION=https://raw.githubusercontent.com/apache/airflow/constraints-${AIRFLOW_VERSION}/${AIRFLOW_CONSTRAINTS}-${PYTHON_VERSION}.txt
ARG VCS_REF=unknown
ARG SOURCE_URL=https://github.com/your-org/airflow-k8s-azblob

LABEL org.opencontainers.image.title="airflow-azblob" \
      org.opencontainers.image.description="Apache Airflow ${AIRFLOW_VERSION} with Azure Blob XComs and logs, for Kubernetes" \
      org.opencontainers.image.version="${AIRFLOW_VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}"

# The base image installs Python packages as the airflow user (uid 50000). Every pinned package ships binary wheels,
# so no compiler or apt package is ever installed: nothing is left behind but the packages themselves.
# requirements.txt is bind-mounted for the one RUN, so it isn't left in the image.
USER 50000
RUN --mount=type=bind,source=requirements.txt,target=/tmp/requirements.txt \
    pip install --no-cache-dir -r /tmp/requirements.txt --constraint "${AIRFLOW_CONSTRAINTS_LOCATION}"

COPY include/ /opt/airflow/include/
COPY --from=dags --chown=airflow:0 /dags/ /opt/airflow/dags/

# Airflow does not put AIRFLOW_HOME on sys.path: PYTHONPATH makes `include.*` importable in every container
# (scheduler, dag-processor, triggerer, api-server, worker pods), which the XCom backend setting requires.
ENV PYTHONPATH=/opt/airflow
ENV AIRFLOW__CORE__XCOM_BACKEND=include.azblob_xcom_backend.WasbXComBackend

# Runs as the image's airflow user (uid 50000, gid 0), like the base image.
USER 50000
