"""The local development stack (make up): Azurite, a metadata DB, a Git repository of DAGs and the Airflow
components on one machine, configured from the same source as the Helm chart."""
