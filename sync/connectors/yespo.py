"""Yespo connector (placeholder: the platform's module is being written)."""

from sync.connectors.base import BaseConnector


class YespoConnector(BaseConnector):
    slug = "yespo"
    label = "Yespo"
    default_base_url = "https://example.invalid/"
    default_rate_limit = 10.0
