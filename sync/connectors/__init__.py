"""The connector registry: platform slug -> connector class.

Adding a platform is its connector module in this package, its sandbox module, one line in
`CONNECTORS`, its test module and goldens, its lines in `.env.example` and a README section:
nothing else (ADDING_A_PLATFORM.md is the checklist). Everything else reads what a connector
declares. The Destination's platform field takes its choices from `as_choices()`, so the
values stored in the database stay in step with the code.
"""

from sync.connectors.base import BaseConnector
from sync.connectors.cendyn import CendynConnector
from sync.connectors.ivvy import IvvyConnector
from sync.connectors.loops import LoopsConnector
from sync.connectors.yespo import YespoConnector

CONNECTORS: dict[str, type[BaseConnector]] = {
    cls.slug: cls for cls in (YespoConnector, IvvyConnector, CendynConnector, LoopsConnector)
}


def get_class(slug: str) -> type[BaseConnector]:
    """The connector class for a platform slug; KeyError names the unknown slug."""
    try:
        return CONNECTORS[slug]
    except KeyError:
        raise KeyError(f"no connector for platform {slug!r}") from None


def get_class_list() -> list[type[BaseConnector]]:
    return list(CONNECTORS.values())


def as_choices() -> list[tuple[str, str]]:
    return [(slug, cls.label) for slug, cls in CONNECTORS.items()]
