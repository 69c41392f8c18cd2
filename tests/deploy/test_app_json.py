"""app.json (Heroku button, review apps) agrees with the Procfile and the settings the app reads."""
from __future__ import annotations

import json
import re
from pathlib import Path

from saas import config

ROOT = Path(__file__).resolve().parents[2]


def test_app_json_matches_the_procfile_and_the_settings():
    manifest = json.loads((ROOT / "app.json").read_text())
    procfile = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines()
                            if line.strip() and not line.startswith("#"))
    assert set(manifest["formation"]) == set(procfile) - {"release"}
    assert {a["plan"] for a in manifest["addons"]} == {"heroku-postgresql", "heroku-redis"}
    assert manifest["buildpacks"] == [{"url": "heroku/python"}]
    env = manifest["env"]
    source = Path(config.__file__).read_text()
    for name in env:
        assert f'"{name}"' in source, f"app.json sets {name}, which the app never reads"
    assert env["APP_ENV"]["value"] == "production"
    assert env["SECRET_KEY"]["generator"] == "secret"
    # A generated secret is 64 hex characters, not a Fernet key: the user supplies one.
    assert "generator" not in env["TOKEN_ENCRYPTION_KEY"] and env["TOKEN_ENCRYPTION_KEY"]["required"] is True
    assert "Fernet" in env["TOKEN_ENCRYPTION_KEY"]["description"]
    for name in config.REQUIRED_IN_PRODUCTION:
        assert name == "DATABASE_URL" or name in env  # the Postgres add-on sets DATABASE_URL
    assert (ROOT / ".python-version").read_text().strip() == "3.11"
    assert re.fullmatch(r"3\.11", (ROOT / ".python-version").read_text().strip())
