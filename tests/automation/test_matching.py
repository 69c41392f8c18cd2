"""Matching without a database: keywords, patterns refused before they can backtrack for ever, button
payloads, conditions in the tenant's time zone, and business hours across daylight-saving changes and
holidays."""
from __future__ import annotations

import time
from datetime import datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from saas.automation.hours import Hours, HoursInvalid, checked_holidays, checked_weekly
from saas.automation.matching import TEXT_SCANNED, Context, Inbound, PatternInvalid, checked_pattern, matches

BERLIN = ZoneInfo("Europe/Berlin")


def rule(trigger="keyword", match="contains", pattern="price", conditions=None):
    return SimpleNamespace(trigger=trigger, match=match, pattern=pattern, conditions=conditions or {})


def message(text="", payload=None, at=datetime(2026, 3, 28, 10, 0), number=1):
    return Inbound(1, number, "16505551234", "wamid.x", "text", text, payload, at)


CONTEXT = Context(first=False, zone=BERLIN)


@pytest.mark.parametrize("match,pattern,text,expected", [
    ("exact", "Opening Hours", "  opening   HOURS ", True),
    ("exact", "hours", "opening hours", False),
    ("contains", "PRICE", "what's the price?", True),
    ("contains", "price", "prize", False),
    ("regex", r"order\s*#?\d{4,8}", "Where is ORDER #12345?", True),
    ("regex", r"^stop$", "please stop", False),
])
def test_keywords(match, pattern, text, expected):
    assert matches(rule(match=match, pattern=pattern), message(text), CONTEXT) is expected


@pytest.mark.parametrize("pattern", [
    r"(a+)+$", r"(a|aa)*c", r"(\w+\s?)*$", r"(a?){25}a{25}", r"(x+x+)+y", r"(.)\1", r"a*b*c*d*", r".*.*.*x",
    r".*a{0,99}.*x", "", "a" * 201, "bad\x00", "(unclosed"])
def test_patterns_that_could_backtrack_for_ever_or_are_not_patterns_are_refused(pattern):
    with pytest.raises(PatternInvalid):
        checked_pattern(pattern)


def test_an_accepted_pattern_on_hostile_text_answers_at_once():
    hostile = "a" * 100_000
    # CPU time, not wall time: a busy machine stretches the one, never the other.
    started = time.process_time()
    # The worst the checks let through: two wide repeats and a third choice, over what is scanned.
    for pattern in (r".*.*x", r"a*a+b", r"a*a*a?b", r"(ab|cd)x+y*$", r"[a-z]+\d+"):
        assert checked_pattern(pattern).search(hostile[:TEXT_SCANNED]) is None
    assert time.process_time() - started < 1.0
    assert not matches(rule(match="regex", pattern=r".*.*x"), message(hostile), CONTEXT)


def test_button_payloads_match_exactly():
    assert matches(rule("button", None, "priority_express"), message("Express", "priority_express"), CONTEXT)
    assert not matches(rule("button", None, "priority_express"), message("priority_express"), CONTEXT)


def test_first_message_trigger_reads_the_context():
    assert matches(rule("first_message", None, None), message("hi"), Context(first=True, zone=BERLIN))
    assert not matches(rule("first_message", None, None), message("hi"), CONTEXT)


def test_conditions_in_the_tenant_time_zone():
    # 2026-03-28 is a Saturday; 10:00 UTC is 11:00 in Berlin (before the change to summer time).
    weekend_morning = rule(conditions={"weekdays": [5, 6], "from": "11:00", "to": "12:00"})
    assert matches(weekend_morning, message("price", at=datetime(2026, 3, 28, 10, 0)), CONTEXT)
    assert not matches(weekend_morning, message("price", at=datetime(2026, 3, 28, 11, 0)), CONTEXT)
    # The next day clocks go forward: 10:00 UTC is 12:00 in Berlin, outside the window.
    assert not matches(weekend_morning, message("price", at=datetime(2026, 3, 29, 10, 0)), CONTEXT)
    assert matches(weekend_morning, message("price", at=datetime(2026, 3, 29, 9, 30)), CONTEXT)
    night = rule(conditions={"from": "22:00", "to": "06:00"})  # across midnight
    assert matches(night, message("price", at=datetime(2026, 3, 28, 23, 30)), CONTEXT)
    assert not matches(night, message("price", at=datetime(2026, 3, 28, 12, 0)), CONTEXT)
    labelled = rule(conditions={"labels": ["vip"], "numbers": [2]})
    assert not matches(labelled, message("price", number=2), CONTEXT)
    assert matches(labelled, message("price", number=2), Context(False, frozenset({"vip", "x"}), zone=BERLIN))
    assert not matches(labelled, message("price", number=1), Context(False, frozenset({"vip"}), zone=BERLIN))


def office(zone="Europe/Berlin", holidays=()):
    return Hours(ZoneInfo(zone), checked_weekly({str(d): [["09:00", "17:00"]] for d in range(7)}),
                 frozenset(checked_holidays(list(holidays))))


def test_business_hours_keep_the_wall_clock_across_daylight_saving_changes():
    berlin = office()
    # Saturday before the change (UTC+1): 08:30 UTC is 09:30 local, open; 16:30 UTC is 17:30, closed.
    assert berlin.open_at(datetime(2026, 3, 28, 8, 30)) and not berlin.open_at(datetime(2026, 3, 28, 16, 30))
    # Monday after it (UTC+2): 07:30 UTC is 09:30 local, open; the same UTC hour on Saturday was 08:30, closed.
    assert berlin.open_at(datetime(2026, 3, 30, 7, 30)) and not berlin.open_at(datetime(2026, 3, 28, 7, 30))
    assert not berlin.open_at(datetime(2026, 3, 30, 15, 30))  # 17:30 local
    new_york = office("America/New_York")
    # Clocks go back on 2026-11-01: 13:30 UTC is 09:30 local (EST) after, 09:30 EDT was 13:30 UTC before too.
    assert new_york.open_at(datetime(2026, 11, 2, 14, 0)) and not new_york.open_at(datetime(2026, 11, 2, 13, 30))
    assert new_york.open_at(datetime(2026, 10, 30, 13, 30))
    away = rule("outside_hours", None, None)
    assert matches(away, message(at=datetime(2026, 3, 30, 15, 30)), Context(False, hours=berlin, zone=BERLIN))
    assert not matches(away, message(at=datetime(2026, 3, 30, 7, 30)), Context(False, hours=berlin, zone=BERLIN))
    assert not matches(away, message(at=datetime(2026, 3, 30, 3, 0)), Context(False, hours=None, zone=BERLIN))


def test_holidays_are_closed_all_day_by_the_local_date():
    la = office("America/Los_Angeles", holidays=["2026-12-25"])
    assert not la.open_at(datetime(2026, 12, 25, 18, 0))   # 10:00 on the 25th in Los Angeles
    assert la.open_at(datetime(2026, 12, 25, 1, 0)) is False  # 17:00 on the 24th: after hours
    assert la.open_at(datetime(2026, 12, 24, 23, 0))       # 15:00 on the 24th: open (UTC already says 25th)


@pytest.mark.parametrize("weekly,holidays", [
    ({"7": [["09:00", "17:00"]]}, []), ({"0": [["17:00", "09:00"]]}, []), ({"0": [["9:00", "17:00"]]}, []),
    ({"0": [["09:00", "24:01"]]}, []), ({"0": "09:00-17:00"}, []), ({}, ["2026-02-30"]), ({}, ["x" * 5000]),
    ({}, "2026-12-25"), ({"0": [["09:00", "10:00"]] * 5}, []),
])
def test_bad_hours_are_refused(weekly, holidays):
    with pytest.raises(HoursInvalid):
        checked_weekly(weekly)
        checked_holidays(holidays)
