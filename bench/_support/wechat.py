"""The fake WeChat API in a process of its own, seeded with many subscribed users: the
far end of a notification benchmark (WeChat's own servers bear that cost in production,
so the process under test must not).

    python -m bench._support.wechat PORT COUNT TEMPLATE_ID

Users `bench-0` .. `bench-{COUNT-1}` exist and each accepted one message of TEMPLATE_ID.
Prints "ready" once it serves on 127.0.0.1:PORT.
"""

from __future__ import annotations

import asyncio
import sys

import uvicorn
import uvloop

from miniprogram_mock.fake_wechat import create_app


async def main(port: int, count: int, template_id: str) -> None:
    app = create_app()
    fake = app.state.wechat
    for i in range(count):
        openid = f"bench-{i}"
        fake.users[openid] = {"session_key": None, "unionid": None}
        fake.subscribe(openid, template_id, "accept", 1)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
            http="httptools",
            backlog=4096,
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(1000):  # uvicorn has no started event to wait on
        if server.started:
            break
        await asyncio.sleep(0.01)
    print("ready", flush=True)
    await task


if __name__ == "__main__":
    # uvloop, as uvicorn picks it in production: the fake must not be the bottleneck.
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
