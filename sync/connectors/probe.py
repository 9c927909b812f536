"""The vendor-change guard: each connector declares its probe (the cheapest documented read
calls and the shape of the answers it relies on), and this shared machinery makes the calls
and says what no longer has that shape. It names no platform.

A shape is written as the connector reads the answer:
- a type, or a tuple of types: the value is one of them (`int` never matches a bool);
- `{key: shape}`: an object holding every key (`Maybe(shape)`: the key may be absent or null);
- `[shape]`: a list whose every item has that shape (an empty list says nothing of its items);
- `OneOrMany(shape)`: that shape, or a list of them (answers that drop the list for one item);
- `ANY`: whatever is there.
A shape lists only what the connector reads: a key the platform adds is no change.
"""

from dataclasses import dataclass, field
from typing import Any

from sync.connectors.base import ConnectorError

ANY = object()
NUMBER = (int, float)


@dataclass(frozen=True)
class Maybe:
    """A key that may be absent or null; when present its value has `shape`."""

    shape: Any


@dataclass(frozen=True)
class OneOrMany:
    shape: Any


@dataclass(frozen=True)
class ProbeCall:
    """One read call of a probe and the shape its answer must keep. `name` is shown to the
    admin (the call as the vendor's document names it)."""

    name: str
    method: str
    path: str
    shape: Any
    params: dict | None = None
    json_body: Any = None


@dataclass
class ProbeOutcome:
    """One call's result: "ok", "changed" (the answer lost the shape: `changes` say where) or
    "failed" (the call itself failed: `detail` says how, a 403 included)."""

    call: str
    outcome: str
    detail: str = ""
    changes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "call": self.call,
            "outcome": self.outcome,
            "detail": self.detail,
            "changes": self.changes,
        }


MAX_CHANGES = 10  # per call: enough to name what changed, short enough for an email


def shape_changes(value: Any, shape: Any, where: str = "answer") -> list[str]:
    """Where `value` departs from `shape`, one line per place ("answer.teamName: missing")."""
    if shape is ANY:
        return []
    if isinstance(shape, Maybe):
        return [] if value is None else shape_changes(value, shape.shape, where)
    if isinstance(shape, OneOrMany):
        items = value if isinstance(value, list) else [value]
        return _first([shape_changes(v, shape.shape, f"{where}[{i}]") for i, v in enumerate(items)])
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{where}: an object expected, got {_kind(value)}"]
        changes = []
        for key, inner in shape.items():
            if key not in value:
                if not isinstance(inner, Maybe):
                    changes.append(f"{where}.{key}: missing")
                continue
            changes += shape_changes(value[key], inner, f"{where}.{key}")
        return changes
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{where}: a list expected, got {_kind(value)}"]
        return _first([shape_changes(v, shape[0], f"{where}[{i}]") for i, v in enumerate(value)])
    types = shape if isinstance(shape, tuple) else (shape,)
    if isinstance(value, bool) and bool not in types:
        return [f"{where}: {_names(types)} expected, got a boolean"]
    if not isinstance(value, types):
        return [f"{where}: {_names(types)} expected, got {_kind(value)}"]
    return []


def _first(per_item: list[list[str]]) -> list[str]:
    """The changes of the first item that has any: the others usually repeat them."""
    return next((changes for changes in per_item if changes), [])


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _names(types: tuple) -> str:
    words = {str: "a string", int: "a whole number", float: "a number", bool: "a boolean"}
    return " or ".join(dict.fromkeys(words.get(t, t.__name__) for t in types))


def run_probe(connector) -> list[ProbeOutcome]:
    """Make each of the connector's probe calls and check its answer. A call that fails (a
    403 from a key without that permission, say) is that call's failure; it never stops the
    other calls and is never a shape change."""
    outcomes = []
    for call in connector.probe_calls():
        try:
            _, data = connector.request(
                call.method, call.path, params=call.params, json_body=call.json_body
            )
        except ConnectorError as err:
            outcomes.append(ProbeOutcome(call.name, "failed", str(err)))
            continue
        changes = shape_changes(data, call.shape)[:MAX_CHANGES]
        if changes:
            outcomes.append(ProbeOutcome(call.name, "changed", "; ".join(changes), changes))
        else:
            outcomes.append(ProbeOutcome(call.name, "ok"))
    return outcomes
