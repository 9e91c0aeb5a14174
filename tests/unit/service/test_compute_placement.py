"""The large lane: large requests take turns, a small one is not queued behind all of them."""

from __future__ import annotations

import asyncio
import threading
import time

from service.inference.compute_placement import LARGE_BODY_BYTES, ComputePlacement

LARGE = LARGE_BODY_BYTES + 1


def test_a_small_request_runs_between_large_ones_not_after_all_of_them() -> None:
    placement = ComputePlacement(lanes=1)
    order: list[str] = []

    async def request(name: str, body_bytes: int) -> None:
        async with placement.turn(body_bytes):
            await asyncio.sleep(0)  # the body parse / model lookup awaits
            time.sleep(0.01)  # a blocking chunk of arithmetic on the event loop
            order.append(name)

    async def scenario() -> None:
        large = [asyncio.create_task(request(f"large-{i}", LARGE)) for i in range(5)]
        await asyncio.sleep(0)  # the five large requests are all waiting or running
        small = asyncio.create_task(request("small", 100))
        await asyncio.gather(*large, small)

    asyncio.run(scenario())
    assert sorted(order) == sorted(["small", *(f"large-{i}" for i in range(5))])
    # without the lane the small request would finish after all five large ones
    assert order.index("small") <= 2, order


def test_the_lane_admits_one_large_request_per_lane() -> None:
    placement = ComputePlacement(lanes=2)
    inside = 0
    most = 0

    async def request() -> None:
        nonlocal inside, most
        async with placement.turn(LARGE):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.005)
            inside -= 1

    async def scenario() -> None:
        await asyncio.gather(*(request() for _ in range(8)))

    asyncio.run(scenario())
    assert most == 2


def test_heavy_work_leaves_the_event_loop_and_light_work_does_not() -> None:
    placement = ComputePlacement(thread_work=1000)
    loop_thread = threading.get_ident()

    async def scenario() -> tuple[int, int]:
        light = await placement.run(1000, threading.get_ident)
        heavy = await placement.run(1001, threading.get_ident)
        return light, heavy

    light, heavy = asyncio.run(scenario())
    assert light == loop_thread and heavy != loop_thread
