"""flask plans sync: stdout is the summary, one line per plan; Stripe's per-call logs only when asked, on stderr."""
from __future__ import annotations

import io
import json
import logging

import pytest


@pytest.fixture
def app_stdout():
    """What the app's JSON log handler writes (to the process's stdout, beside the command's own output)."""
    [handler] = [h for h in logging.getLogger().handlers if getattr(h, "_saas", False)]
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


def logged(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_the_command_prints_its_summary_and_not_stripes_calls(app, runner, stripe, app_stdout):
    result = runner.invoke(args=["plans", "sync"])
    assert result.exit_code == 0, result.output
    assert [line.split(":")[0] for line in result.output.splitlines()] == ["free", "starter", "pro", "enterprise"]
    assert len(stripe.requests()) > 20  # the calls were made, just not logged
    assert [entry for entry in logged(app_stdout.getvalue()) if entry["logger"] == "stripe"] == []
    assert result.stderr == ""


def test_verbose_logs_every_call_on_stderr(app, runner, stripe, app_stdout):
    result = runner.invoke(args=["plans", "sync", "--plan", "starter", "--verbose"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].startswith("starter: created product ")
    calls = [entry for entry in logged(result.stderr) if entry["logger"] == "stripe"]
    sent = [entry for entry in calls if "Request to Stripe api" in entry["msg"]]
    assert len(sent) == len(stripe.requests()) and all(entry["level"] == "info" for entry in calls)
    assert [entry for entry in logged(app_stdout.getvalue()) if entry["logger"] == "stripe"] == []


def test_a_failure_is_still_logged_as_a_warning_and_said_by_the_command(app, runner, stripe, app_stdout):
    stripe.fail("POST", "/v1/products", status=500)
    result = runner.invoke(args=["plans", "sync"])
    assert result.exit_code == 1
    assert "Error: starter: Stripe failed (HTTP 500" in result.output
    [warning] = [entry for entry in logged(app_stdout.getvalue()) if entry["level"] == "warning"]
    assert warning["logger"] == "saas.billing.stripe_catalog" and "starter" in warning["msg"]


def test_the_sdks_logging_is_as_it_was_after_the_command(app, runner, stripe):
    stripe_logger = logging.getLogger("stripe")
    before = (stripe_logger.level, stripe_logger.propagate, list(stripe_logger.handlers))
    runner.invoke(args=["plans", "sync", "--verbose"])
    runner.invoke(args=["plans", "sync"])
    assert (stripe_logger.level, stripe_logger.propagate, list(stripe_logger.handlers)) == before
