"""A sandbox that speaks the four platforms' contracts on loopback (see server.py)."""

from sync.sandbox.cendyn import CendynEmulator
from sync.sandbox.core import Sandbox
from sync.sandbox.ivvy import IvvyEmulator
from sync.sandbox.loops import LoopsEmulator
from sync.sandbox.server import SandboxServer
from sync.sandbox.yespo import YespoEmulator


def build_sandbox(*, seed: int | None = None) -> Sandbox:
    return Sandbox([YespoEmulator(), IvvyEmulator(), CendynEmulator(), LoopsEmulator()], seed=seed)


def start_sandbox(*, port: int = 0) -> SandboxServer:
    """Start a sandbox server in a background thread; `.url` says where."""
    return SandboxServer(build_sandbox(), port=port).start()
