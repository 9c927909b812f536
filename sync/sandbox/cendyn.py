"""Placeholder: the cendyn emulator is being written."""

from sync.sandbox.core import PlatformEmulator


class CendynEmulator(PlatformEmulator):
    slug = "cendyn"
