"""Login attempts counted by one helper (saas.tenants.login_attempts), called as services with no request: the
password step, the code step, a password typed again inside a session, and signups."""
from __future__ import annotations

import pyotp
import pytest

from saas.tenants import login_attempts, twofactor
from saas.tenants.login_attempts import Refused, Throttled, attempt, confirm_password, enter_code, log_in
from tests.factories import make_tenant

EMAIL = "owner@attempts.example.com"
PASSWORD = "correct horse"
HERE, THERE = "192.0.2.1", "192.0.2.2"


@pytest.fixture
def limits(app):
    """Two failures per account or per user's codes, four per address, two signups per address, per hour: no test
    waits a window out."""
    names = ("LOGIN_ACCOUNT_LIMITS", "LOGIN_ADDRESS_LIMITS", "LOGIN_CODE_LIMITS", "SIGNUP_ADDRESS_LIMITS")
    saved = {name: app.config[name] for name in names}
    app.config.update(LOGIN_ACCOUNT_LIMITS="2/hour", LOGIN_ADDRESS_LIMITS="4/hour", LOGIN_CODE_LIMITS="2/hour",
                      SIGNUP_ADDRESS_LIMITS="2/hour")
    yield
    app.config.update(saved)


@pytest.fixture
def owner(ctx, limits):
    return make_tenant(email=EMAIL, password=PASSWORD).users[0]


def refused_login(email: str, address: str = HERE) -> None:
    with pytest.raises(Refused) as refused:
        log_in(email, "wrong horse", address=address)
    assert refused.value.message == "Invalid email or password."


def test_the_right_password_is_refused_once_the_accounts_failures_are_used_up(owner):
    refused_login(EMAIL)
    refused_login(EMAIL)
    # Another address changes nothing: the account is throttled, and its wait is the hour's.
    with pytest.raises(Throttled) as throttled:
        log_in(EMAIL, PASSWORD, address=THERE)
    assert 3500 <= throttled.value.retry_after <= 3600


def test_an_unknown_email_is_counted_like_a_known_one(owner):
    refused_login("nobody@attempts.example.com")
    refused_login(" Nobody@Attempts.example.com ")
    with pytest.raises(Throttled):
        log_in("nobody@attempts.example.com", PASSWORD, address=THERE)


def test_a_success_clears_the_accounts_count_but_not_the_addresss(owner):
    refused_login(EMAIL)
    assert log_in(EMAIL, PASSWORD, address=HERE).id == owner.id
    refused_login(EMAIL)
    assert log_in(EMAIL, PASSWORD, address=HERE).id == owner.id
    # The address kept both failures: two more (any account) use it up.
    refused_login("a@attempts.example.com")
    refused_login("b@attempts.example.com")
    with pytest.raises(Throttled):
        log_in(EMAIL, PASSWORD, address=HERE)
    assert log_in(EMAIL, PASSWORD, address=THERE).id == owner.id


def test_the_code_step_counts_per_user_and_shares_the_addresss_count(owner):
    secret = pyotp.random_base32()
    twofactor.enable(owner, secret)
    for _ in range(2):
        with pytest.raises(Refused) as refused:
            enter_code(owner, "aaaaa-aaaaa", address=HERE)
        assert refused.value.field == "code"
    # A right code from another address is refused: the user's codes are used up.
    with pytest.raises(Throttled):
        enter_code(owner, pyotp.TOTP(secret).now(), address=THERE)
    # The two wrong codes counted on the address as failed logins do.
    refused_login("a@attempts.example.com")
    refused_login("b@attempts.example.com")
    with pytest.raises(Throttled):
        log_in("c@attempts.example.com", "wrong horse", address=HERE)


def test_a_password_typed_again_counts_as_a_failed_login(owner):
    for _ in range(2):
        with pytest.raises(Refused) as refused:
            confirm_password(owner, "wrong horse", field="current_password", message="Not your password.")
        assert (refused.value.field, refused.value.message) == ("current_password", "Not your password.")
    with pytest.raises(Throttled):
        log_in(EMAIL, PASSWORD, address=THERE)


def test_signups_are_counted_per_address(ctx, limits):
    login_attempts.count_signup(HERE)
    login_attempts.count_signup(HERE)
    with pytest.raises(Throttled):
        login_attempts.count_signup(HERE)
    login_attempts.count_signup(THERE)


def test_a_throttled_attempt_does_not_run_its_proof(ctx, limits):
    counter = (login_attempts.login_per_account, "key")
    proofs = []

    def wrong():
        proofs.append("ran")
        return None

    assert attempt([counter], wrong) is None
    assert attempt([counter], wrong) is None
    with pytest.raises(Throttled):
        attempt([counter], wrong)
    assert proofs == ["ran", "ran"]
