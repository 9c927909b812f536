"""`sync` has no import cycle, counting imports made inside functions: the engine queues
nothing (sync.services alone enqueues), tasks call the engine, services call both."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "sync"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path for path in PACKAGE.rglob("*.py") if "migrations" not in path.parts
    }


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every sync module `path` imports, wherever the import statement stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in modules)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, state, stack = [], {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target) :] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def test_sync_has_no_import_cycle():
    modules = _modules()
    graph = {name: _imports(path, set(modules)) - {name} for name, path in modules.items()}
    assert _cycles(graph) == []


def test_the_checker_sees_a_cycle_made_inside_a_function(tmp_path):
    engine = tmp_path / "engine.py"
    engine.write_text("def push():\n    from sync.services import enqueue\n")
    services = tmp_path / "services.py"
    services.write_text("from sync import engine\n")
    known = {"sync.engine", "sync.services"}
    graph = {"sync.engine": _imports(engine, known), "sync.services": _imports(services, known)}
    assert _cycles(graph) == [["sync.engine", "sync.services", "sync.engine"]]
