"""The portal's shape: one blueprint per page module, nested under ``portal``; page modules import helpers, never
one another, the admin console or the app factory; and every portal page answers with the policy its header's
Stripe forms need."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import saas.portal

PORTAL = Path(saas.portal.__file__).parent


def _imports(path: Path) -> set[str]:
    """The modules ``path`` imports (a ``from package import name`` counts as package.name too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _modules() -> dict[str, set[str]]:
    return {f"saas.portal.{path.stem}": _imports(path) for path in PORTAL.glob("*.py") if path.stem != "__init__"}


def _page_modules() -> set[str]:
    """The modules that define a blueprint of their own (``bp = Blueprint(...)``), the registry excepted."""
    return {f"saas.portal.{path.stem}" for path in PORTAL.glob("*.py")
            if "bp = Blueprint(" in path.read_text() and path.stem != "routes"}


def test_every_portal_view_sits_on_the_blueprint_of_its_own_module(app):
    seen = set()
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if not view.__module__.startswith("saas.portal."):
            continue
        parent, module, name = rule.endpoint.split(".")
        assert (parent, f"saas.portal.{module}") == ("portal", view.__module__), rule.endpoint
        seen.add(view.__module__)
    assert seen == _page_modules()


def _names_from_the_factory(path: Path) -> set[str]:
    """What ``path`` takes from the package ``saas`` itself that is not a module of it (the app factory's names)."""
    saas_dir = PORTAL.parent
    return {alias.name for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module == "saas" for alias in node.names
            if not (saas_dir / f"{alias.name}.py").exists() and not (saas_dir / alias.name).is_dir()}


def test_no_page_module_imports_another_or_the_admin_console_or_the_factory():
    modules, pages = _modules(), _page_modules()
    for name, imported in modules.items():
        if name != "saas.portal.routes":
            assert not imported & pages, f"{name} imports a page module: {sorted(imported & pages)}"
        assert not {m for m in imported if m == "saas.admin" or m.startswith("saas.admin.")}, name
        assert not _names_from_the_factory(PORTAL / f"{name.rpartition('.')[2]}.py"), name


def test_the_portal_modules_import_no_cycle():
    modules = _modules()
    graph = {name: {m for m in imported if m in modules} for name, imported in modules.items()}
    done, path = set(), []

    def visit(name):
        assert name not in path, " -> ".join(path[path.index(name):] + [name])
        if name in done:
            return
        path.append(name)
        for other in graph[name]:
            visit(other)
        path.pop()
        done.add(name)

    for name in graph:
        visit(name)


@pytest.mark.parametrize("path", ["/login", "/signup", "/billing", "/templates", "/webhooks", "/team"])
def test_portal_pages_let_forms_end_on_stripes_pages(auth, path):
    """The header's "Update your card" form (every page) and the billing forms post to us and are redirected to
    Stripe: browsers apply form-action to that redirect."""
    if path not in ("/login", "/signup"):
        auth.signup()
    policy = auth.client.get(path).headers["Content-Security-Policy"]
    assert "form-action 'self' https://checkout.stripe.com https://billing.stripe.com" in policy


def test_other_faces_keep_the_strict_form_action(client):
    policy = client.get("/admin/").headers["Content-Security-Policy"]
    assert "form-action 'self';" in policy
