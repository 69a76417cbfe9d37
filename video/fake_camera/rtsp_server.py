"""A fake gate camera: an RTSP server with a moving test pattern, from Debian packages.

Run with Debian's python3 (it needs `python3-gi` and `gir1.2-gst-rtsp-server-1.0`, which
are not on PyPI), never inside the project's virtualenv:

    /usr/bin/python3 video/fake_camera/rtsp_server.py --port 8554 --user admin --password x

It serves what a gate camera serves: a main stream and a sub-stream of H.264 (baseline
profile, as the sub-streams of Hikvision/Dahua cameras are), each behind RTSP digest/basic
credentials when given, at the paths `/main` and `/sub`. A short GOP (one keyframe per
second) keeps snapshots and clip cuts close to the moment asked for. It prints
`READY rtsp://host:port` once listening; it stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PIPELINE = (
    "( videotestsrc is-live=true pattern={pattern} "
    "! video/x-raw,width={width},height={height},framerate={fps}/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast bitrate={kbps} key-int-max={fps} "
    "! video/x-h264,profile=constrained-baseline "
    "! rtph264pay name=pay0 pt=96 config-interval=1 )"
)


def factory(width: int, height: int, fps: int, kbps: int, pattern: str) -> Gst.Element:
    f = GstRtspServer.RTSPMediaFactory()
    f.set_launch(PIPELINE.format(width=width, height=height, fps=fps, kbps=kbps, pattern=pattern))
    f.set_shared(True)  # one encoder per stream, however many clients
    return f


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8554)
    p.add_argument("--user", default="")
    p.add_argument("--password", default="")
    p.add_argument("--fps", type=int, default=15)
    p.add_argument("--pattern", default="ball", help="videotestsrc pattern (ball, smpte ...)")
    args = p.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    main_f = factory(1280, 720, args.fps, 1024, args.pattern)
    sub_f = factory(640, 360, args.fps, 384, args.pattern)
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        for f in (main_f, sub_f):
            perms = GstRtspServer.RTSPPermissions()
            perms.add_permission_for_role("viewer", "media.factory.access", True)
            perms.add_permission_for_role("viewer", "media.factory.construct", True)
            f.set_permissions(perms)
    mounts.add_factory("/main", main_f)
    mounts.add_factory("/sub", sub_f)
    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY rtsp://{args.host}:{server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
