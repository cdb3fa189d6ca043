"""One call's time for network commands: a hung backend costs a call one timeout in all.

The commands run on the simulator's loop on virtual time (a timeout elapses without waiting),
and the budget reads the same clock.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any

import pytest

from vix_ttl import _budget
from vix_ttl._budget import Budget, Commands
from vix_ttl._faults import UnsentError
from vix_ttl.sim._virtual_loop import VirtualTimeLoop
from vix_ttl.testing import FakeClock


@pytest.fixture
def loop(monkeypatch: pytest.MonkeyPatch) -> Iterator[VirtualTimeLoop]:
    made = VirtualTimeLoop()
    monkeypatch.setattr(_budget, "time", types.SimpleNamespace(monotonic=made.time))
    yield made
    made.close()


def run(loop: VirtualTimeLoop, main: Coroutine[Any, Any, Any]) -> Any:
    return loop.run_until_complete(main)


def taking(seconds: float, result: str = "done") -> Callable[[], Awaitable[str]]:
    async def command() -> str:
        await asyncio.sleep(seconds)
        return result

    return command


async def hung() -> str:
    await asyncio.Event().wait()  # a server that never answers
    raise AssertionError("unreachable")


def test_a_budget_spends_what_each_command_took_and_renews_to_a_whole_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock(100)
    monkeypatch.setattr(_budget, "time", types.SimpleNamespace(monotonic=clock))
    budget = Budget(5.0)
    clock.advance(1.5)
    budget.spend(100)
    assert budget.left == 3.5 and repr(budget) == "<Budget 3.500 s>"
    budget.spend(clock() - 4)
    assert budget.left == -0.5
    budget.renew()  # a lease holder's write: a whole timeout again
    assert budget.left == 5.0
    unbounded = Budget(None)
    unbounded.spend(0)
    assert unbounded.left is None and repr(unbounded) == "<Budget unbounded>"


def test_the_commands_of_one_call_share_one_timeout(loop: VirtualTimeLoop) -> None:
    commands, sent = Commands(5.0), []

    async def recorded() -> str:
        sent.append("sent")
        return "done"

    async def call() -> None:
        budget = commands.budget()
        assert await commands.run(taking(3), budget) == "done"
        with pytest.raises(TimeoutError, match=r"no answer within the call's timeout \(5 s\)"):
            await commands.run(hung, budget)  # gets the 2 s the first left, not 5
        assert loop.time() == 5  # the call waited one timeout in all
        with pytest.raises(UnsentError, match="the call's timeout is spent: not sending the command"):
            await commands.run(recorded, budget)

    run(loop, call())
    assert sent == []  # never sent


def test_without_a_budget_a_command_gets_a_timeout_of_its_own(loop: VirtualTimeLoop) -> None:
    commands = Commands(5.0)

    async def call() -> None:
        assert await commands.run(taking(4), None) == "done"
        assert await commands.run(taking(4), None) == "done"  # 8 s in all: each had 5
        with pytest.raises(TimeoutError):
            await commands.run(hung, None)

    run(loop, call())
    assert loop.time() == 13


def test_a_renewed_budget_gives_the_next_command_a_whole_timeout(loop: VirtualTimeLoop) -> None:
    commands = Commands(5.0)

    async def call() -> str:
        budget = commands.budget()
        await commands.run(taking(4.5), budget)
        budget.renew()
        return await commands.run(taking(4.5, "written"), budget)

    assert run(loop, call()) == "written"


def test_an_unbounded_budget_runs_the_command_untimed(loop: VirtualTimeLoop) -> None:
    commands = Commands(None)  # in-process stores: memory does not hang

    async def call() -> str:
        budget = commands.budget()
        result = await commands.run(taking(3600, "slow but there"), budget)
        assert budget.left is None
        return result

    assert run(loop, call()) == "slow but there"


def test_a_timeout_the_command_raises_itself_goes_out_as_it_was(loop: VirtualTimeLoop) -> None:
    own = TimeoutError("the client's own socket timeout")

    async def failing() -> str:
        raise own

    async def call() -> None:
        with pytest.raises(TimeoutError) as raised:
            await Commands(5.0).run(failing, None)
        assert raised.value is own

    run(loop, call())


class Pool:
    """A store's connections: one."""

    def __init__(self) -> None:
        self.slots = asyncio.Semaphore(1)

    def get(self) -> asyncio.Semaphore:
        return self.slots


def test_a_full_pool_is_waited_for_within_the_budget(loop: VirtualTimeLoop) -> None:
    pool = Pool()
    commands = Commands(5.0, slots=pool)

    async def call() -> None:
        first = asyncio.ensure_future(commands.run(taking(2, "first"), None))
        await asyncio.sleep(0)  # the first holds the one connection
        assert await commands.run(taking(1, "second"), None) == "second"  # waited for it, then ran
        assert loop.time() == 3
        assert await first == "first"
        holder = asyncio.ensure_future(commands.run(hung, None))
        await asyncio.sleep(0)
        with pytest.raises(TimeoutError):  # never freed: the wait is within the timeout
            await commands.run(taking(0), None)
        with pytest.raises(TimeoutError):
            await holder
        assert pool.slots._value == 1  # every slot taken was given back

    run(loop, call())


@pytest.mark.parametrize("detach", [False, True])
def test_a_late_command_is_cancelled_or_with_detach_left_to_finish_on_its_own(
    loop: VirtualTimeLoop, detach: bool
) -> None:
    ended: list[str] = []
    unhandled: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: unhandled.append(context))

    async def slow(fails: bool) -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise
        ended.append("finished")
        if fails:
            raise ConnectionError("a late failure")
        return "late"

    async def call(fails: bool) -> None:
        with pytest.raises(TimeoutError):
            await Commands(5.0, detach=detach).run(lambda: slow(fails), None)
        await asyncio.sleep(60)  # virtual: long enough for a detached command to end

    run(loop, call(fails=False))
    run(loop, call(fails=True))
    # aiomcache hands a cancelled command's connection back with its reply still coming: such a
    # client's commands are left to finish, and a late failure (already counted) is not reported.
    assert ended == (["finished"] * 2 if detach else ["cancelled"] * 2)
    assert unhandled == []
