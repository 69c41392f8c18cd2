"""The flask commands: seed, create-admin, tenants create, keys create."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import delete, select

from saas.billing.catalog import DEFAULT_PLANS
from saas.billing.models import Plan, Subscription
from saas.extensions import db
from saas.messaging.models import PhoneNumber
from saas.tenants.models import ApiKey, Tenant, User
from tests.factories import count, make_tenant, row_counts

KEY = re.compile(r"^wsk_[0-9a-f]{8}_[A-Za-z0-9_-]+$")


def usage(client, key):
    return client.get("/api/v1/usage", headers={"Authorization": f"Bearer {key}"})


# -- seed ------------------------------------------------------------------------

def test_seed_on_an_empty_catalogue_creates_the_four_plans(app, runner):
    with app.app_context():
        db.session.execute(delete(Plan))
        db.session.commit()
        db.session.remove()

    result = runner.invoke(args=["seed"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "Plans created: free, starter, pro, enterprise"
    with app.app_context():
        assert sorted(db.session.scalars(select(Plan.code))) == sorted(p["code"] for p in DEFAULT_PLANS)
        db.session.remove()


def test_seed_twice_is_safe_and_the_second_run_has_nothing_to_do(app, runner):
    first = runner.invoke(args=["seed"])  # the app fixture already seeded once
    second = runner.invoke(args=["seed"])
    for result in (first, second):
        assert result.exit_code == 0, result.output
        assert "nothing to do" in result.output
    with app.app_context():
        assert count(Plan) == 4
        db.session.remove()


def test_seed_keeps_an_admins_edit_to_a_plan(app, runner):
    with app.app_context():
        plan = db.session.scalar(select(Plan).where(Plan.code == "starter"))
        plan.name = "Starter (legacy)"
        plan.included_conversations = 1234
        plan.price_cents = 1900
        plan.active = False
        db.session.commit()
        db.session.remove()

    result = runner.invoke(args=["seed"])
    assert result.exit_code == 0, result.output
    assert "nothing to do" in result.output
    with app.app_context():
        plan = db.session.scalar(select(Plan).where(Plan.code == "starter"))
        assert (plan.name, plan.included_conversations, plan.price_cents, plan.active) == \
            ("Starter (legacy)", 1234, 1900, False)
        assert count(Plan) == 4
        db.session.remove()


def test_seed_recreates_only_a_missing_plan(app, runner):
    with app.app_context():
        db.session.execute(delete(Plan).where(Plan.code == "pro"))
        db.session.commit()
        db.session.remove()
    result = runner.invoke(args=["seed"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "Plans created: pro"
    with app.app_context():
        assert count(Plan) == 4
        db.session.remove()


# -- create-admin ------------------------------------------------------------------

def test_create_admin_creates_a_platform_admin_outside_every_tenant(app, runner, client):
    result = runner.invoke(args=["create-admin", "Root@Ops.example.com", "--password", "admin password"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "Created platform admin root@ops.example.com."
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "root@ops.example.com"))
        assert user.is_platform_admin
        assert user.tenant_id is None
        assert user.password_hash != "admin password"
        assert count(Tenant) == 0
        db.session.remove()


def test_create_admin_prompts_for_a_password_when_the_user_is_new(app, runner):
    result = runner.invoke(args=["create-admin", "root@ops.example.com"], input="admin password\nadmin password\n")
    assert result.exit_code == 0, result.output
    assert "Created platform admin root@ops.example.com." in result.output
    with app.app_context():
        assert db.session.scalar(select(User.is_platform_admin).where(User.email == "root@ops.example.com"))
        db.session.remove()


def test_create_admin_promotes_an_existing_tenant_user(app, runner):
    with app.app_context():
        tenant = make_tenant(email="owner@acme.example.com")
        tenant_id = tenant.id
        db.session.remove()
    before = row_counts(app)

    result = runner.invoke(args=["create-admin", "owner@acme.example.com"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "Promoted platform admin owner@acme.example.com."
    assert row_counts(app) == before
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "owner@acme.example.com"))
        assert user.is_platform_admin
        assert user.tenant_id == tenant_id
        db.session.remove()


def test_create_admin_twice_only_promotes(app, runner):
    runner.invoke(args=["create-admin", "root@ops.example.com", "--password", "admin password"])
    again = runner.invoke(args=["create-admin", "root@ops.example.com", "--password", "another password"])
    assert again.exit_code == 0, again.output
    assert "Promoted" in again.output
    with app.app_context():
        assert count(User) == 1
        db.session.remove()


@pytest.mark.parametrize("args, message", [
    (["create-admin", "root@ops.example.com", "--password", "short"], "at least 8 characters"),
    (["create-admin", "not-an-email", "--password", "admin password"],
     "Error: An email address must have an @-sign."),
])
def test_create_admin_refuses_bad_input_and_writes_nothing(app, runner, args, message):
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output
    with app.app_context():
        assert count(User) == 0
        db.session.remove()


# -- tenants create ------------------------------------------------------------------

def test_tenants_create_makes_a_tenant_on_the_plan_and_prints_its_sandbox_number(app, runner):
    result = runner.invoke(args=["tenants", "create", "--name", "Acme Ltd", "--email", "owner@acme.example.com",
                                 "--password", "correct horse", "--plan", "starter"])
    assert result.exit_code == 0, result.output
    printed = re.search(r"sandbox phone_number_id (\d+)", result.output)
    assert printed, result.output
    assert "on plan starter" in result.output
    assert "Created tenant acme-ltd" in result.output
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "owner@acme.example.com"))
        tenant = user.tenant
        assert tenant.name == "Acme Ltd"
        subscription = db.session.scalar(select(Subscription).where(Subscription.tenant_id == tenant.id))
        assert db.session.get(Plan, subscription.plan_id).code == "starter"
        numbers = list(db.session.scalars(select(PhoneNumber.phone_number_id)
                                          .where(PhoneNumber.tenant_id == tenant.id)))
        assert numbers == [printed.group(1)]
        db.session.remove()


def test_tenants_create_defaults_to_the_free_plan(app, runner):
    result = runner.invoke(args=["tenants", "create", "--name", "Acme Ltd", "--email", "owner@acme.example.com",
                                 "--password", "correct horse"])
    assert result.exit_code == 0, result.output
    assert "on plan free" in result.output
    with app.app_context():
        plan_id = db.session.scalar(select(Subscription.plan_id))
        assert db.session.get(Plan, plan_id).code == "free"
        db.session.remove()


def test_tenants_create_with_an_unknown_plan_fails_and_writes_nothing(app, runner):
    before = row_counts(app)
    result = runner.invoke(args=["tenants", "create", "--name", "Acme Ltd", "--email", "owner@acme.example.com",
                                 "--password", "correct horse", "--plan", "gold"])
    assert result.exit_code != 0
    assert "No plan with code 'gold'" in result.output
    assert "Traceback" not in result.output
    assert row_counts(app) == before


def test_tenants_create_with_a_registered_email_fails_and_writes_nothing(app, runner):
    first = runner.invoke(args=["tenants", "create", "--name", "Acme Ltd", "--email", "owner@acme.example.com",
                                "--password", "correct horse"])
    assert first.exit_code == 0, first.output
    before = row_counts(app)

    result = runner.invoke(args=["tenants", "create", "--name", "Other Co", "--email", "OWNER@acme.example.com",
                                 "--password", "correct horse"])
    assert result.exit_code != 0
    assert "An account with this email already exists." in result.output
    assert row_counts(app) == before
    with app.app_context():
        assert db.session.scalar(select(Tenant.id).where(Tenant.name == "Other Co")) is None
        db.session.remove()


@pytest.mark.parametrize("option, value, message", [
    ("--password", "short", "Password must be at least 8 characters."),
    ("--email", "not-an-email", "Error: An email address must have an @-sign."),
    ("--name", "   ", "Company name is required."),
])
def test_tenants_create_refuses_bad_input_and_writes_nothing(app, runner, option, value, message):
    options = {"--name": "Acme Ltd", "--email": "owner@acme.example.com", "--password": "correct horse",
               option: value}
    before = row_counts(app)
    result = runner.invoke(args=["tenants", "create", *[part for pair in options.items() for part in pair]])
    assert result.exit_code != 0
    assert message in result.output
    assert row_counts(app) == before


def test_tenants_create_requires_name_email_and_password(runner):
    result = runner.invoke(args=["tenants", "create", "--name", "Acme Ltd"])
    assert result.exit_code == 2
    assert "Missing option" in result.output


# -- keys create ---------------------------------------------------------------------

@pytest.fixture
def acme(app):
    """A tenant's (owner email, slug), next to another tenant the commands must not pick."""
    with app.app_context():
        make_tenant(name="Other Co", email="owner@other.example.com")
        tenant = make_tenant(name="Acme Ltd", email="owner@acme.example.com")
        result = ("owner@acme.example.com", tenant.slug)
        db.session.remove()
    return result


@pytest.mark.parametrize("which", ["email", "slug"])
def test_keys_create_prints_a_key_that_authenticates(app, runner, client, acme, which):
    identifier = acme[0] if which == "email" else acme[1]
    result = runner.invoke(args=["keys", "create", identifier, "--name", "deploy"])
    assert result.exit_code == 0, result.output
    key = result.output.strip()
    assert KEY.match(key), result.output

    response = usage(client, key)
    assert response.status_code == 200
    assert response.get_json()["plan"]["code"] == "free"
    with app.app_context():
        stored = db.session.scalar(select(ApiKey))
        assert count(ApiKey) == 1
        assert stored.name == "deploy"
        assert stored.tenant.slug == acme[1]
        assert key not in (stored.prefix, stored.secret_hash)
        db.session.remove()


def test_keys_create_names_the_key_cli_by_default(app, runner, acme):
    result = runner.invoke(args=["keys", "create", acme[1]])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalar(select(ApiKey.name)) == "CLI"
        db.session.remove()


def test_keys_create_finds_the_tenant_by_email_in_any_case(runner, client, acme):
    result = runner.invoke(args=["keys", "create", "  Owner@ACME.example.com "])
    assert result.exit_code == 0, result.output
    assert usage(client, result.output.strip()).status_code == 200


@pytest.mark.parametrize("identifier", ["no-such-tenant", "nobody@acme.example.com", ""])
def test_keys_create_for_an_unknown_tenant_fails(app, runner, acme, identifier):
    result = runner.invoke(args=["keys", "create", identifier])
    assert result.exit_code != 0
    assert "No tenant with slug or owner email" in result.output
    with app.app_context():
        assert count(ApiKey) == 0
        db.session.remove()
