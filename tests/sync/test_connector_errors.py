"""A connector error explains itself (as django-anymail's do): the platform, the request as it
was made and what came back, with no credential in any of it."""

import pytest

from sync.connectors import get_class_list
from sync.connectors.base import ConnectorError
from sync.connectors.records import ContactRecord, RemoteState
from tests.sync.connectors.harness import MockTransport, make_connector


@pytest.mark.parametrize("cls", get_class_list(), ids=lambda cls: cls.slug)
def test_an_error_carries_the_request_and_the_response(cls):
    transport = MockTransport()
    for _ in range(4):  # a lookup before the write, on some platforms
        transport.add(422, {"message": "the platform refused it", "error": "refused"})
    connector = make_connector(cls, transport, options={"account_id": "acct-1"})
    secret = next(iter(connector.secrets.values()))
    record = ContactRecord(
        id=1, external_id="e-1", email="ada@example.com", first_name="Ada", last_name="L"
    )
    with pytest.raises(ConnectorError) as raised:
        connector.push(record, RemoteState())
    err = raised.value
    assert err.platform == cls.label and err.status == 422
    assert err.exchange is not None, "the failed call is attached"
    assert err.exchange.url.startswith("https://platform.test/")
    text = err.describe()
    assert text.startswith(str(err))
    assert f"Request: {err.exchange.method} https://platform.test/" in text
    assert "Response: HTTP 422" in text and "the platform refused it" in text
    assert secret not in text


def test_an_error_raised_before_any_call_says_just_what_it_is():
    cls = get_class_list()[0]
    err = ConnectorError(cls.label, "the contact has no external ID to match on")
    assert err.exchange is None and err.describe() == str(err)
