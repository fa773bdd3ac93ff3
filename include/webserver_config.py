"""FAB's settings file for the api-server under the FAB auth manager (``[fab] config_file`` names it; the chart sets
it with ``auth.manager: fab``). FAB ignores a missing file without a word, so this one holds no settings of its own:
they come from airflow.cfg's [oidc] section through include/fab_auth.py, which says what each is."""

from include.fab_auth import webserver_settings

globals().update(webserver_settings())
