"""Placeholder: the ivvy emulator is being written."""

from sync.sandbox.core import PlatformEmulator


class IvvyEmulator(PlatformEmulator):
    slug = "ivvy"
