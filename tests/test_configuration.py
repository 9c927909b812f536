"""Every variable the settings read is listed in `.env.example` and in README's table."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _variables_read() -> set[str]:
    source = (ROOT / "config" / "settings.py").read_text()
    return set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]*)"', source))


def test_env_example_and_readme_list_every_variable():
    variables = _variables_read()
    assert "DATABASE_URL" in variables and "SYNC_CREDENTIAL_PREFIX" in variables
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", example, re.M))
    assert variables - listed == set(), "add these to .env.example"
    assert {v for v in variables if f"`{v}`" not in readme} == set(), "add these to README"
