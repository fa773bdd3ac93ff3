"""Re-export of scripts/devstack/services.py, where the local stack and the tests share one way to start
Azurite and PostgreSQL."""

from scripts.devstack.services import *  # noqa: F403
from scripts.devstack.services import AZURITE_ACCOUNT, AZURITE_KEY, ROOT, Azurite, free_port  # noqa: F401
