"""The shared harness for connector unit tests: a mocked transport.

transport = MockTransport()
connector = make_connector(YespoConnector, transport, mapping=...)
transport.add(200, {"id": 1})          # queued answers, in order
transport.add_error(requests.ConnectTimeout())
connector.push(record, RemoteState())
transport.calls[0].json                 # what was sent
"""

import json
from dataclasses import dataclass

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


def make_connector(
    cls,
    transport: MockTransport,
    *,
    mapping=None,
    credentials=None,
    options=None,
    base_url="https://platform.test/",
    quick_retries=0,
):
    session = requests.Session()
    session.mount("https://", transport)
    session.mount("http://", transport)
    creds = credentials or {name: f"test-{name}-value" for name in cls.credentials}
    return cls(
        base_url=base_url,
        credentials=creds,
        mapping=mapping or MappingRecord(),
        options=options or {},
        timeout=5,
        quick_retries=quick_retries,
        session=session,
    )
