"""Loops connector (placeholder: the platform's module is being written)."""

from sync.connectors.base import BaseConnector


class LoopsConnector(BaseConnector):
    slug = "loops"
    label = "Loops"
    default_base_url = "https://example.invalid/"
    default_rate_limit = 10.0
