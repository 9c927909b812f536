"""Placeholder: the yespo emulator is being written."""

from sync.sandbox.core import PlatformEmulator


class YespoEmulator(PlatformEmulator):
    slug = "yespo"
