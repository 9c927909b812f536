"""The only code that calls connectors and writes sync state."""

from sync import selectors
from sync.connectors.base import BaseConnector
from sync.models import Destination


def destination_connector(*, destination: Destination, quick_retries: int = 0,
                          rate_limiter=None) -> BaseConnector:
    """A connector for the destination, with its credentials read from the environment.

    Raises ConnectorConfigurationError naming the variable when a credential is missing."""
    cls = destination.connector_class
    env_names = {name: getattr(destination, field) for name, field in cls.credentials.items()}
    return cls(
        base_url=destination.effective_base_url,
        credentials=cls.read_credentials(env_names),
        mapping=selectors.destination_mapping(destination),
        options={
            "account_id": destination.account_id,
            "update_if_exists": destination.update_if_exists,
        },
        timeout=destination.timeout,
        rate_limiter=rate_limiter,
        quick_retries=quick_retries,
    )
