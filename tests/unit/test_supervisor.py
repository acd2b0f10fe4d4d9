"""The restart rules of `grassroots up`, on their own: backoff, its reset, the crash loop."""

from __future__ import annotations

from shared.tools.supervisor import Child, RestartPolicy, exit_text, summary

POLICY = RestartPolicy(first=1.0, cap=4.0, stable=10.0, deaths=3, window=60.0)


def test_the_backoff_doubles_up_to_its_cap() -> None:
    child, now, delays = Child(), 0.0, []
    for _ in range(4):
        child.started_now(1, now)
        now += 1.0  # dies a second after each start
        delays.append(child.died(1, now, POLICY, counts=False))
        assert child.restart_at == now + delays[-1]
    assert delays == [1.0, 2.0, 4.0, 4.0]


def test_the_backoff_starts_afresh_after_staying_up() -> None:
    child = Child()
    child.started_now(1, 0.0)
    assert child.died(1, 1.0, POLICY) == 1.0
    child.started_now(2, 2.0)
    assert child.died(1, 3.0, POLICY) == 2.0
    child.started_now(3, 4.0)
    assert child.died(1, 4.0 + POLICY.stable, POLICY) == 1.0


def test_a_crash_loop_is_so_many_counted_deaths_within_the_window() -> None:
    child = Child()
    for now in (0.0, 1.0):
        child.started_now(1, now)
        child.died(-9, now + 0.5, POLICY)
    assert not child.crash_looping(POLICY)
    child.started_now(1, 2.0)
    child.died(-9, 2.5, POLICY, counts=False)  # the broker was down: not its fault
    assert not child.crash_looping(POLICY)
    child.started_now(1, 70.0)
    child.died(-9, 70.5, POLICY)  # the first two are out of the window by now
    assert not child.crash_looping(POLICY)
    for now in (71.0, 72.0):
        child.started_now(1, now)
        child.died(1, now + 0.5, POLICY)
    assert child.crash_looping(POLICY)


def test_exits_read_as_people_say_them() -> None:
    assert exit_text(-9) == "signal SIGKILL" and exit_text(1) == "exit code 1"
    assert exit_text(None) == "exit"
    child = Child()
    child.started_now(7, 0.0)
    assert summary(child.state()) == "restarts 0"
    child.died(-15, 3.0, POLICY)
    state = child.state()
    assert state["pid"] is None and state["last_exit"]["signal"] == "SIGTERM"
    assert state["last_exit"]["uptime_s"] == 3.0
    assert summary(state) == (f"restarts 0, last exit signal SIGTERM at "
                              f"{state['last_exit']['at']}, waiting to restart")
