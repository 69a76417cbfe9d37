"""The video adapter: a media backend behind one interface (`backend.MediaBackend`), the
local backend made of Debian's ffmpeg (one reader per camera into a rolling buffer) and
Janus (WebRTC), the service that takes snapshots and clips on events, and the fake camera
(`fake_camera/`, tests and the demo). The rules it follows live in `domain/video/`.
"""
