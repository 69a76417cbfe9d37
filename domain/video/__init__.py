"""Video rules: cameras and the doors they watch, viewing tickets, the viewing audit,
captures (snapshots and clips) on access events and alarms, and their retention.

The media itself is handled by an adapter (`video/`: a media backend behind one
interface); nothing here imports it. See docs/video.md.
"""
