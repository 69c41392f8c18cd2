"""Sessions that end, password strength, and the account changes that need the password again.

Sessions: the login session holds "user id:session version" (User.get_id);
bumping the version ends every session of the user at once, in every
browser, including copies of a cookie taken before (Flask's sessions are
signed cookies, so the server keeps no list of them: the version is what it
can revoke).

Passwords and codes typed to prove who one is are counted in
saas.tenants.login_attempts, here as at login.
"""
from __future__ import annotations

from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash

from saas.extensions import db
from saas.tenants import login_attempts, twofactor
from saas.tenants.login_attempts import Refused
from saas.tenants.models import User

PASSWORD_RULE = "At least 8 characters, and not easy to guess: a few uncommon words make a good password."
# Used when zxcvbn cannot be imported: the passwords every guesser tries first.
COMMON_PASSWORDS = frozenset("""
password password1 password12 password123 passw0rd 12345678 123456789 1234567890 qwertyuiop qwerty123
11111111 00000000 12341234 87654321 iloveyou sunshine letmein welcome1 welcome123 football baseball
princess dragon123 monkey123 abc12345 abcd1234 trustno1 superman starwars whatever computer internet
administrator changeme secret123 qwerty12 1q2w3e4r 1qaz2wsx zaq12wsx aa123456 asdfghjkl
""".split())


# --- sessions ---------------------------------------------------------------------------------------------

def end_sessions(user: User) -> None:
    """End every login session of ``user`` (the current one too, unless it logs in again). Commits."""
    user.session_version = (user.session_version or 1) + 1
    db.session.commit()


# --- passwords --------------------------------------------------------------------------------------------

def password_problem(password: str, user_inputs: tuple[str, ...] = ()) -> str | None:
    """Why ``password`` is too weak, in words for the form, or None.

    zxcvbn's estimate must reach PASSWORD_MIN_SCORE (0-4); its feedback is
    the message. Only the first 100 characters are estimated (the estimate's
    cost grows with the length; 100 characters are strong or not by then).
    """
    from saas.tenants.services import MIN_PASSWORD

    password = password or ""
    if len(password) < MIN_PASSWORD:
        return f"Password must be at least {MIN_PASSWORD} characters."
    try:
        from zxcvbn import zxcvbn
    except ImportError:  # pragma: no cover - zxcvbn is pinned in requirements.txt
        if password.lower() in COMMON_PASSWORDS:
            return "This is a commonly used password. Add another word or two; uncommon words are better."
        return None
    inputs = [part for part in user_inputs if part][:10]
    result = zxcvbn(password[:100], user_inputs=[value[:100] for value in inputs])
    if result["score"] >= current_app.config["PASSWORD_MIN_SCORE"]:
        return None
    feedback = result.get("feedback") or {}
    words = [feedback.get("warning") or "This password is easy to guess."]
    words += feedback.get("suggestions") or ["Add another word or two; uncommon words are better."]
    return " ".join(word.strip() for word in words if word)


def change_password(user: User, current: str, new: str) -> None:
    """Replace ``user``'s password and end all its sessions. Raises Throttled, Refused (login_attempts). Commits."""
    login_attempts.confirm_password(user, current, field="current_password",
                                    message="That is not your current password.")
    problem = password_problem(new, (user.email, user.email.split("@")[0]))
    if problem:
        raise Refused("new_password", problem)
    if check_password_hash(user.password_hash, new):
        raise Refused("new_password", "The new password is the one you have now.")
    user.password_hash = generate_password_hash(new)
    end_sessions(user)


# --- two-factor ---------------------------------------------------------------------------------------------

def turn_off_two_factor(user: User, password: str, code: str) -> None:
    """Turn ``user``'s two-factor login off, given the password and a current or recovery code. Commits.

    Both are counted like the login's: the password on the account's login throttle, the code on the code
    throttle. Raises Throttled (nothing checked) while either is used up, Refused ("password" or "code")
    for a wrong one.
    """
    # Nothing is looked at, the password neither, while the codes are used up.
    login_attempts.login_code_per_account.check(login_attempts.code_key(user))
    login_attempts.confirm_password(user, password, field="password", message="That is not your password.")
    login_attempts.confirm_code(user, code)
    twofactor.disable(user)
