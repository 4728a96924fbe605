"""Time slicing of compute and the token bucket of transfers, on fake clocks."""

from __future__ import annotations

import pytest

from mecllm.systems.finetune.run.pacing import Pace
from mecllm.transport.shaping import paced_chunks


class FakeClock:
    """A wall clock and a CPU clock that move only when told (or by sleeping)."""

    def __init__(self) -> None:
        self.wall = 100.0
        self.cpu = 5.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.wall += seconds

    def compute(self, seconds: float) -> None:
        self.wall += seconds
        self.cpu += seconds


def _pace(clock: FakeClock, speed: float, machine: float) -> Pace:
    return Pace(
        speed,
        machine,
        cpu_clock=lambda: clock.cpu,
        wall_clock=lambda: clock.wall,
        sleep=clock.sleep,
    )


def test_a_step_is_stretched_to_the_plan_speed() -> None:
    clock = FakeClock()
    pace = _pace(clock, speed=2e9, machine=8e9)  # a device at a quarter of the machine
    pace.restart()
    for _ in range(3):
        clock.compute(0.1)
        pace.step()
    assert clock.wall - 100.0 == pytest.approx(4 * 0.3)  # wall = cpu x 4
    assert pace.slept_s == pytest.approx(0.9)
    assert pace.reachable


def test_a_step_of_counted_flops_takes_its_time_at_the_plan_speed_on_any_machine() -> None:
    # The profile said 8 GFLOP/s, but this machine runs at 20: CPU stretching would finish
    # in 0.4 of the plan's time; counting the work holds the plan's 2 GFLOP/s all the same.
    clock = FakeClock()
    pace = _pace(clock, speed=2e9, machine=8e9)
    pace.restart()
    for _ in range(3):
        clock.compute(0.05)  # 1 GFLOP at 20 GFLOP/s
        pace.step(1e9)
    assert clock.wall - 100.0 == pytest.approx(3 * 1e9 / 2e9)
    slow = FakeClock()  # a machine slower than the plan: never sped up, never slept
    pace = _pace(slow, speed=2e9, machine=8e9)
    pace.restart()
    slow.compute(0.8)
    pace.step(1e9)
    assert slow.slept == [] and slow.wall - 100.0 == pytest.approx(0.8)
    assert pace.overrun == pytest.approx(0.8 / 0.5)  # measured in service: 1.6x the plan's time


def test_a_thread_on_time_has_no_overrun() -> None:
    clock = FakeClock()
    pace = _pace(clock, speed=2e9, machine=8e9)
    assert pace.overrun == 1.0  # before any step
    pace.restart()
    for _ in range(4):
        clock.compute(0.1)
        pace.step(1e9)
    assert pace.overrun == 1.0


def test_waiting_for_the_cpu_is_caught_up_afterwards() -> None:
    clock = FakeClock()
    pace = _pace(clock, speed=4e9, machine=8e9)
    pace.restart()
    clock.compute(0.1)
    clock.wall += 0.5  # the thread waited for a core: already past its due time
    pace.step()
    assert clock.slept == []
    clock.compute(0.3)
    pace.step()  # due 0.8 s of wall for 0.4 s of CPU; 0.9 s have passed
    assert clock.slept == []


def test_a_plan_faster_than_the_machine_runs_at_the_machine_speed() -> None:
    clock = FakeClock()
    pace = _pace(clock, speed=16e9, machine=8e9)
    pace.restart()
    clock.compute(0.2)
    pace.step()
    assert not pace.reachable and clock.slept == []
    with pytest.raises(ValueError, match="speeds must be > 0"):
        _pace(clock, speed=0.0, machine=8e9)


def test_chunks_leave_at_the_rate() -> None:
    clock = FakeClock()
    data = bytes(range(256)) * 200  # 51,200 bytes
    released = []
    for chunk in paced_chunks(
        data, 8e5, chunk_bytes=16384, clock=lambda: clock.wall, sleep=clock.sleep
    ):
        released.append((clock.wall - 100.0, len(chunk)))
    assert b"".join(c for c in paced_chunks(data, float("inf"), chunk_bytes=16384)) == data
    assert [size for _, size in released] == [16384, 16384, 16384, 2048]
    # chunk i leaves once 8 x (bytes up to it) / rate seconds have passed: 0.512 s at the end
    assert [round(t, 6) for t, _ in released] == [0.16384, 0.32768, 0.49152, 0.512]


def test_an_empty_message_is_one_empty_chunk_and_a_zero_rate_is_refused() -> None:
    assert list(paced_chunks(b"", 1e6)) == [b""]
    with pytest.raises(ValueError, match="rate_bps must be > 0"):
        list(paced_chunks(b"x", 0.0))
