"""The maintenance schedule rules (domain/maintenance.py) and their settings: how a schedule is
written, which slot a moment falls in, and when the next run is due after successes and failures."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tableforge.config import Settings
from tableforge.domain.maintenance import (
    MAX_ATTEMPTS_PER_SLOT,
    Schedule,
    SlotRuns,
    next_due,
    parse_duration,
    parse_schedule,
    retry_delay,
    slot_of,
)


@pytest.mark.parametrize(("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("6h", 21600.0),
                                               ("1d", 86400.0), ("1.5h", 5400.0), (" 2 M ", 120.0), (0, 0.0)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "daily", "6 hours", "-5s", "1w", "h", "nan"])
def test_bad_durations_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(("text", "expected", "canonical"), [
    ("off", Schedule(None, False), "off"),
    ("start", Schedule(None, True), "start"),
    ("6h", Schedule(21600.0, False), "6h"),
    ("Start, 360m", Schedule(21600.0, True), "start,6h"),
    ("90s", Schedule(90.0, False), "90s"),
    ("2.5s", Schedule(2.5, False), "2.5s"),
])
def test_schedules(text: str, expected: Schedule, canonical: str) -> None:
    parsed = parse_schedule(text)
    assert parsed == expected
    assert parsed.describe() == canonical
    assert parse_schedule(canonical) == parsed  # the canonical text reads back the same
    assert parsed.enabled is (canonical != "off")


@pytest.mark.parametrize(("text", "problem"), [
    ("", "empty schedule"), ("off,6h", "one interval"), ("6h,1d", "one interval"), ("start,start", "one interval"),
    ("0.5s", "between 1s and 366d"), ("400d", "between 1s and 366d"), ("weekly", "not a duration"),
])
def test_bad_schedules_are_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_schedule(text)


def test_settings_validate_and_normalize_schedules() -> None:
    settings = Settings(maintenance_optimize_schedule="START,120m", maintenance_assets_schedule="off",
                        maintenance_asset_grace="2h", maintenance_start_delay="1m")  # type: ignore[arg-type]
    assert settings.maintenance_optimize_schedule == "start,2h"
    assert settings.maintenance_schedules["optimize"] == Schedule(7200.0, True)
    assert settings.maintenance_schedules["assets"].enabled is False
    assert settings.maintenance_asset_grace == 7200.0 and settings.maintenance_start_delay == 60.0
    assert list(settings.maintenance_schedules) == ["optimize", "event_history", "sessions", "assets", "warm_catalog"]
    with pytest.raises(ValidationError) as bad:
        Settings(maintenance_sessions_schedule="hourly")
    assert bad.value.errors()[0]["loc"] == ("maintenance_sessions_schedule",)
    assert "'hourly' is not a duration" in bad.value.errors()[0]["msg"]
    with pytest.raises(ValidationError, match="greater than or equal to 60"):
        Settings(maintenance_asset_grace="30s")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        Settings(maintenance_lease_seconds=0.5)


def test_slots_are_multiples_of_the_interval_since_the_epoch() -> None:
    assert slot_of(1000.0, 60.0) == 960.0
    assert slot_of(1019.999, 60.0) == 960.0
    assert slot_of(1020.0, 60.0) == 1020.0
    assert slot_of(7.0, 2.5) == 5.0


def test_an_undone_slot_is_due_at_once_and_a_done_one_at_the_next_slot() -> None:
    now = 1_000_030.0  # 30 s into the minute slot starting at 1_000_020
    assert next_due(60.0, now, SlotRuns()) == 1_000_020.0  # overdue: due now
    assert next_due(60.0, now, SlotRuns(done=True)) == 1_000_080.0
    # the start-up delay holds back even an overdue slot
    assert next_due(60.0, now, SlotRuns(), not_before=now + 45) == now + 45
    assert next_due(60.0, now, SlotRuns(done=True), not_before=now + 90) == now + 90


def test_a_failed_slot_is_retried_after_a_pause_then_given_up() -> None:
    every, slot = 3600.0, 3600.0 * 100
    now = slot + 60
    first_failure = SlotRuns(failures=1, last_failure_end=slot + 10)
    assert retry_delay(every) == 600.0 and retry_delay(40.0) == 10.0
    assert next_due(every, now, first_failure) == slot + 10 + 600
    spent = SlotRuns(failures=MAX_ATTEMPTS_PER_SLOT, last_failure_end=slot + 20)
    assert next_due(every, now, spent) == slot + every
    # a retry that would land in the next slot waits for that slot instead
    late = SlotRuns(failures=1, last_failure_end=slot + every - 5)
    assert next_due(every, slot + every - 1, late) == slot + every
