"""System checks of the sync settings: an outbound policy that would let a destination reach
what it must not is refused at start-up (sync/policy.py)."""

import ipaddress
import logging

from django.conf import settings
from django.core import checks

from sync.policy import ENV_NAME, is_reserved_name

logger = logging.getLogger("sync")


@checks.register(checks.Tags.security, deploy=False)
def outbound_policy_check(app_configs=None, **kwargs):
    problems = []
    for name in settings.SYNC_CREDENTIAL_NAMES:
        if not ENV_NAME.fullmatch(name) or is_reserved_name(name):
            problems.append(
                checks.Error(
                    f"SYNC_CREDENTIAL_NAMES lists {name!r}, which may not hold a credential "
                    "(Django's, the database's and the mail server's variables never can).",
                    id="sync.E001",
                )
            )
    for network in settings.SYNC_ALLOWED_PRIVATE_NETWORKS:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            problems.append(
                checks.Error(
                    f"SYNC_ALLOWED_PRIVATE_NETWORKS lists {network!r}, which is not a network "
                    "(write CIDRs such as 10.20.0.0/16).",
                    id="sync.E002",
                )
            )
    if settings.IS_PRODUCTION and settings.SYNC_ALLOW_LOOPBACK:
        problems.append(
            checks.Warning(
                "SYNC_ALLOW_LOOPBACK is on in production: destinations may point at this "
                "machine's loopback over plain http.",
                hint="Turn it off unless this is a benchmark against the sandbox.",
                id="sync.W001",
            )
        )
    return problems


def warn_at_start_up() -> None:
    """Processes that run no system checks (gunicorn, the worker) still say it in the log."""
    for problem in outbound_policy_check():
        logger.warning("%s: %s", problem.id, problem.msg)
