"""uvicorn for a process that serves the web app beside other work (the daemon, the demo).

uvicorn's server wakes ten times a second to see whether it should stop and to refresh its
``Date`` header once a second; on an idle daemon those wake-ups were about half of all the CPU
it used. ``QuietServer`` wakes once a second: the header is refreshed as often, and a stop takes
at most a second longer.
"""
from __future__ import annotations

import asyncio

import uvicorn


class QuietServer(uvicorn.Server):
    async def main_loop(self) -> None:
        # uvicorn counts tenths of a second and does its per-second work on multiples of 10.
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864000
            await asyncio.sleep(1.0)
            should_exit = await self.on_tick(counter)
