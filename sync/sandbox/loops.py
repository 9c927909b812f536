"""Placeholder: the loops emulator is being written."""

from sync.sandbox.core import PlatformEmulator


class LoopsEmulator(PlatformEmulator):
    slug = "loops"
