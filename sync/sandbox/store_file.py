"""The sandbox's store kept in a file across restarts (`manage.py sandbox --store PATH`).

`make run` restarts the sandbox whenever it exits. Without a file, a restarted sandbox
starts empty and counts its remote IDs from the start again, so it would hand a new contact
an ID our database already holds for another one. With a file, each emulator's
`stored_attributes` (contacts, lists, id counters, registered webhooks) are written every few
seconds when something changed, and on shutdown, and read back at start. Faults, rate limits,
switches and the request log are not kept: a restart clears them, as `/_sandbox/reset` does.

The file is JSON. The stores use int keys, sets and tuples, which JSON has not: `encode`
tags them (`{"__dict__": [[key, value], ...]}`, `{"__set__": [...]}`, `{"__tuple__": [...]}`)
and `decode` turns them back, so a restored store is the same Python values as the saved one.
"""

import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from sync.sandbox.core import Sandbox

logger = logging.getLogger(__name__)

FORMAT = 1  # the file's layout; a file of another layout is set aside, not read
DICT, SET, TUPLE = "__dict__", "__set__", "__tuple__"


def encode(value: Any) -> Any:
    """`value` as plain JSON values, with int-keyed dicts, sets and tuples tagged. Raises
    TypeError for a value of any other type (a store must hold plain data)."""
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value) and not {DICT, SET, TUPLE} & set(value):
            return {key: encode(inner) for key, inner in value.items()}
        return {DICT: [[encode(key), encode(inner)] for key, inner in value.items()]}
    if isinstance(value, list):
        return [encode(item) for item in value]
    if isinstance(value, tuple):
        return {TUPLE: [encode(item) for item in value]}
    if isinstance(value, (set, frozenset)):
        return {SET: [encode(item) for item in sorted(value, key=repr)]}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"the sandbox store holds a {type(value).__name__}: {value!r}")


def decode(value: Any) -> Any:
    """The inverse of `encode`."""
    if isinstance(value, list):
        return [decode(item) for item in value]
    if isinstance(value, dict):
        if len(value) == 1 and DICT in value:
            return {_hashable(decode(k)): decode(v) for k, v in value[DICT]}
        if len(value) == 1 and TUPLE in value:
            return tuple(decode(item) for item in value[TUPLE])
        if len(value) == 1 and SET in value:
            return {_hashable(decode(item)) for item in value[SET]}
        return {key: decode(inner) for key, inner in value.items()}
    return value


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class StoreFile:
    """Saves a Sandbox's stores to `path` and restores them from it."""

    def __init__(self, sandbox: Sandbox, path: str | os.PathLike, *, every: float = 5.0):
        self.sandbox = sandbox
        self.path = Path(path)
        self.every = every
        self.saved_at_change = -1  # `sandbox.changes` when last saved
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def restore(self) -> bool:
        """Load the file into the sandbox's emulators; False when there is none. A file that
        cannot be read is renamed `<name>.unreadable` (kept for a person to look at) and the
        sandbox starts empty."""
        if not self.path.exists():
            return False
        try:
            data = json.loads(self.path.read_text())
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, not {FORMAT}")
            platforms = decode(data["platforms"])
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            aside = self.path.with_name(self.path.name + ".unreadable")
            os.replace(self.path, aside)
            logger.warning("sandbox store %s unreadable (%s): moved to %s", self.path, err, aside)
            return False
        for slug, state in platforms.items():
            emulator = self.sandbox.emulators.get(slug)
            if emulator is not None:  # a platform no longer registered is dropped
                with emulator.lock:
                    emulator.restore_state(state)
        self.saved_at_change = self.sandbox.changes
        return True

    def save(self) -> None:
        """Write every emulator's store (each encoded under its own lock, so no half-made
        change is written), to a temporary file first and then renamed over the old one, so
        a crash mid-write leaves the previous file whole."""
        change = self.sandbox.changes
        platforms = {}
        for slug, emulator in self.sandbox.emulators.items():
            with emulator.lock:
                platforms[slug] = encode(emulator.stored_state())
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps({"format": FORMAT, "platforms": platforms}))
        os.replace(temporary, self.path)
        self.saved_at_change = change

    def save_if_changed(self) -> bool:
        if self.sandbox.changes == self.saved_at_change:
            return False
        self.save()
        return True

    def start(self) -> "StoreFile":
        """Save every `every` seconds, when something changed, in a background thread."""
        self._thread = threading.Thread(target=self._run, name="sandbox-store", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.save_if_changed()
            except OSError:
                logger.exception("sandbox store %s not saved", self.path)

    def stop(self) -> None:
        """Stop the thread, then save what changed since its last save."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.save_if_changed()
