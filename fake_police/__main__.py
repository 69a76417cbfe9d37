"""`python -m fake_police --port 8766 --user anxin:secret`: the fake platform on loopback."""

from __future__ import annotations

import argparse

import uvicorn

from fake_police.platform import FakePolicePlatform, create_app


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake GA/T 1400 police platform")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--user", action="append", default=[], help="name:password (Digest)")
    args = parser.parse_args()
    users = dict(u.split(":", 1) for u in args.user) or {"anxin": "anxin-demo"}
    uvicorn.run(
        create_app(FakePolicePlatform(users=users)),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
