"""The sandbox process of `make run` keeps its stores across restarts (`--store`): contacts
pushed before a restart are still there after it, and the platforms' id counters go on from
where they were, so no remote ID is handed out twice. Real `manage.py sandbox` processes,
real pushes through the engine over HTTP."""

import json
import signal
import socket
import subprocess
import time

import pytest
import requests

from contacts.models import Contact
from sync.engine import PushContext, contact_push
from sync.models import Destination
from sync.sandbox import sandbox_destination_fields
from sync.sandbox.store_file import decode, encode
from tests.conftest import PLATFORMS
from tests.sync.processes import manage

pytestmark = pytest.mark.django_db


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SandboxProcess:
    """`manage.py sandbox --store PATH` on one port, started and stopped at will."""

    def __init__(self, store, save_every=0.2):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.store = store
        self.save_every = save_every
        self.proc = None

    def start(self) -> str:
        self.proc = manage(
            *("sandbox", "--port", str(self.port), "--store", str(self.store)),
            *("--save-every", str(self.save_every)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        said = self._read_until("Sandbox on ")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                requests.get(f"{self.url}/_sandbox/stats", timeout=1)
                return said
            except requests.ConnectionError:
                time.sleep(0.1)
        raise AssertionError(f"the sandbox did not start: {said}")

    def _read_until(self, start: str) -> str:
        """What the process printed up to its line starting with `start`."""
        lines = []
        for line in self.proc.stdout:
            if line.startswith(start):
                return "".join(lines)
            lines.append(line)
        raise AssertionError(f"the sandbox exited: {''.join(lines)}")

    def stop(self, sig=signal.SIGTERM) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)
        self.proc.stdout.close()

    def snapshot(self) -> dict:
        return requests.get(f"{self.url}/_sandbox/store", timeout=10).json()


@pytest.fixture
def sandbox_process(tmp_path):
    process = SandboxProcess(tmp_path / "sandbox-store.json")
    yield process
    if process.proc and process.proc.poll() is None:
        process.stop(signal.SIGKILL)


@pytest.fixture
def destinations(sandbox_process, sandbox_env):
    return [
        Destination.objects.create(**sandbox_destination_fields(p, sandbox_process.url))
        for p in PLATFORMS
    ]


def _push_new_contact(number: int, destinations) -> dict[str, str]:
    """A new contact pushed to every destination; its remote ID on each platform."""
    contact = Contact.objects.create(
        first_name=f"Kept{number}",
        last_name="Across",
        email=f"kept{number}@example.com",
        external_id=f"kept-{number}",
    )
    remote_ids = {}
    for destination in destinations:
        state = contact_push(
            contact_id=contact.pk, destination=destination, context=PushContext(trigger="action")
        )
        assert state.remote_id, (destination.platform, state.status, state.last_error)
        remote_ids[destination.platform] = state.remote_id
    return remote_ids


def test_contacts_and_id_counters_survive_a_restart(sandbox_process, destinations):
    said = sandbox_process.start()
    assert said.endswith("(new)\n"), said
    before = [_push_new_contact(n, destinations) for n in (1, 2)]
    held = sandbox_process.snapshot()
    sandbox_process.stop()  # TERM, as bin/run stops it: saved on the way out

    assert sandbox_process.start().endswith("(restored)\n")
    assert sandbox_process.snapshot() == held
    for platform in PLATFORMS:
        view = requests.get(f"{sandbox_process.url}/_sandbox/contact/{platform}/kept-1", timeout=5)
        assert view.status_code == 200 and view.json()["first_name"] == "Kept1", platform

    after = _push_new_contact(3, destinations)
    for platform in PLATFORMS:
        earlier = {ids[platform] for ids in before}
        assert after[platform] not in earlier, f"{platform} handed out {after[platform]} twice"
        assert len(sandbox_process.snapshot()[platform]["contacts"]) == 3, platform


def test_a_killed_sandbox_keeps_what_its_last_periodic_save_wrote(sandbox_process, destinations):
    sandbox_process.start()
    first = _push_new_contact(1, destinations)
    held = sandbox_process.snapshot()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # a save every 0.2 s when something changed
        if sandbox_process.store.exists() and _stored_contacts(sandbox_process.store) == len(
            PLATFORMS
        ):
            break
        time.sleep(0.1)
    sandbox_process.stop(signal.SIGKILL)  # no chance to save on the way out

    sandbox_process.start()
    assert sandbox_process.snapshot() == held
    second = _push_new_contact(2, destinations)
    assert all(second[p] != first[p] for p in PLATFORMS), (first, second)


def _stored_contacts(path) -> int:
    """How many platforms hold a contact in the store file (an unfinished file counts 0)."""
    try:
        platforms = json.loads(path.read_text())["platforms"]
    except ValueError:
        return 0
    return sum(1 for state in platforms.values() if decode(state["contacts"]))


def test_encoding_keeps_int_keys_sets_and_tuples():
    store = {1: {"tags": {"a", "b"}}, "x": (1, "y", None), "__set__": [1.5], "l": [{2: True}]}
    assert decode(json.loads(json.dumps(encode(store)))) == store


def test_an_unreadable_store_file_is_set_aside_and_the_sandbox_starts_empty(sandbox_process):
    sandbox_process.store.write_text("{not json")
    said = sandbox_process.start()
    assert said.endswith("(new)\n"), said
    aside = sandbox_process.store.with_name("sandbox-store.json.unreadable")
    assert "unreadable" in said and aside.read_text() == "{not json"
    assert all(not state["contacts"] for state in sandbox_process.snapshot().values())
