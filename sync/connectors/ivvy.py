"""iVvy connector (placeholder: the platform's module is being written)."""

from sync.connectors.base import BaseConnector


class IvvyConnector(BaseConnector):
    slug = "ivvy"
    label = "iVvy"
    default_base_url = "https://example.invalid/"
    default_rate_limit = 10.0
