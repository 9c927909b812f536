"""Cendyn CRM connector (placeholder: the platform's module is being written)."""

from sync.connectors.base import BaseConnector


class CendynConnector(BaseConnector):
    slug = "cendyn"
    label = "Cendyn CRM"
    default_base_url = "https://example.invalid/"
    default_rate_limit = 10.0
