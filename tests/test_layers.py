"""The layers of saas/ as .importlinter writes them: every module is in a layer, and an import that points
up a layer fails `lint-imports` (the check CI runs)."""
from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def layered_modules() -> set[str]:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    layers = config["importlinter:contract:layers"]["layers"]
    return set(re.findall(r"saas\.\w+", layers))


def lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache", str(tree / ".importlinter")], cwd=tree, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"})


def test_every_module_and_area_of_saas_is_in_a_layer():
    package = ROOT / "saas"
    modules = {f"saas.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    areas = {f"saas.{p.parent.name}" for p in package.glob("*/__init__.py")}
    assert modules | areas <= layered_modules(), sorted((modules | areas) - layered_modules())


def copy_of_the_code(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "saas", tmp_path / "saas", ignore=shutil.ignore_patterns("static", "__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def test_the_layers_hold_and_an_upward_import_breaks_them(tmp_path):
    tree = copy_of_the_code(tmp_path)
    assert lint(tree).returncode == 0, lint(tree).stdout

    twofactor = tree / "saas" / "tenants" / "twofactor.py"
    twofactor.write_text(twofactor.read_text() + "\nfrom saas.messaging.numbers.phone_numbers import phone_numbers  # noqa\n")
    broken = lint(tree)
    assert broken.returncode != 0
    assert "saas.tenants is not allowed to import saas.messaging" in broken.stdout, broken.stdout


def test_faces_do_not_import_one_another(tmp_path):
    tree = copy_of_the_code(tmp_path)
    billing = tree / "saas" / "portal" / "billing.py"
    billing.write_text(billing.read_text() + "\nfrom saas.admin import plans  # noqa\n")
    broken = lint(tree)
    assert broken.returncode != 0
    assert "saas.portal is not allowed to import saas.admin" in broken.stdout, broken.stdout
