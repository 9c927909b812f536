"""The shared harness for connector unit tests: a mocked transport, the one connector
factory, golden files and the vendors' OpenAPI files.

connector = make_connector(YespoConnector, mapping=...)   # or (cls, transport, ...)
transport = connector.transport
transport.add(200, {"id": 1})          # queued answers, in order
transport.add_error(requests.ConnectTimeout())
connector.push(record, RemoteState())
transport.calls[0].json                 # what was sent

What every connector must do against its platform's emulator over HTTP is in
test_conformance.py; the platform modules keep what is theirs alone.
"""

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from requests.adapters import BaseAdapter

from sync.connectors.records import MappingRecord


@dataclass
class Call:
    method: str
    url: str
    headers: dict
    body: bytes

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    @property
    def path(self):
        return requests.utils.urlparse(self.url).path


class MockTransport(BaseAdapter):
    def __init__(self):
        super().__init__()
        self.answers = []
        self.calls: list[Call] = []

    def add(self, status=200, body=None, headers=None, text=None):
        self.answers.append(("response", status, body, headers or {}, text))
        return self

    def add_error(self, exception):
        self.answers.append(("error", exception))
        return self

    def send(self, request, **kwargs):
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        self.calls.append(Call(request.method, request.url, dict(request.headers), body))
        if not self.answers:
            raise AssertionError(f"unexpected call {request.method} {request.url}")
        answer = self.answers.pop(0)
        if answer[0] == "error":
            raise answer[1]
        _, status, payload, headers, text = answer
        response = requests.Response()
        response.status_code = status
        response.url = request.url
        response.request = request
        response.reason = requests.status_codes._codes.get(status, ("",))[0].upper()
        if text is not None:
            response._content = text.encode()
        elif payload is not None:
            response._content = json.dumps(payload).encode()
            headers = {"Content-Type": "application/json", **headers}
        else:
            response._content = b""
        response.headers = requests.structures.CaseInsensitiveDict(headers)
        return response

    def close(self):
        pass


FILES = Path(__file__).resolve().parents[2] / "files"
# The vendors' OpenAPI files, read from shared/ beside the checkout (the vendors' text, under
# no licence that lets us copy it into this repository).
SHARED_SPECS = Path(__file__).resolve().parents[4] / "shared" / "specs"


def golden(platform: str, name: str):
    """A golden payload: tests/files/<platform>/<name>, parsed."""
    return json.loads((FILES / platform / name).read_text())


def vendor_spec(platform: str, filename: str) -> dict:
    """A vendor's OpenAPI file from shared/specs/<platform>/; skips the test when absent."""
    path = SHARED_SPECS / platform / filename
    if not path.exists():
        pytest.skip(f"the vendor's OpenAPI file is not at {path}")
    return json.loads(path.read_text())


def resolve_refs(node, root):
    """`node` with the document's local `$ref`s inlined (the vendors' schemas have no
    cycles)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = root
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return resolve_refs(copy.deepcopy(target), root)
        return {key: resolve_refs(value, root) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve_refs(item, root) for item in node]
    return node


def make_connector(
    cls,
    transport: MockTransport | None = None,
    *,
    mapping=None,
    credentials=None,
    options=None,
    base_url="https://platform.test/",
    quick_retries=0,
    **attributes,
):
    """A connector of `cls` on a mocked transport (a new one unless given), kept as
    `.transport`. `attributes` are set on the instance (a fixed clock, short poll delays, a
    `sleep` that records instead of waiting)."""
    transport = transport if transport is not None else MockTransport()
    session = requests.Session()
    session.mount("https://", transport)
    session.mount("http://", transport)
    creds = credentials or {name: f"test-{name}-value" for name in cls.credentials}
    connector = cls(
        base_url=base_url,
        credentials=creds,
        mapping=mapping or MappingRecord(),
        options=options or {},
        timeout=5,
        quick_retries=quick_retries,
        session=session,
    )
    connector.transport = transport
    for name, value in attributes.items():
        if not hasattr(connector, name):  # a typo would otherwise test nothing
            raise AttributeError(f"{cls.__name__} has no attribute {name!r}")
        setattr(connector, name, value)
    return connector
