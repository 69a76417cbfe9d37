"""Every bus channel, in one place: its name and what a message on it carries.

The bus (`anxin.bus`) is fire-and-forget between the processes of one deployment;
what must not be lost is written to the database first (outbox, access rows).
"""

# Device credentials, status or config changed: drop cached rows/keys. {device_uid}
DEVICE_CHANGED = "device.changed"
# A door decision was written. {id, community_id, device_id, method, result, reason, resident_id}
ACCESS_EVENT = "access.event"
# An alarm was raised. {id, community_id, kind, device_id, ...}
ALARM_RAISED = "alarm.raised"
# Staff blocked a resident: {id, resident_id, community_id, actor_type, actor_id}. Sessions
# and caches only (open sockets close); the block's departure ended everything else.
RESIDENT_BLOCKED = "resident.blocked"
# A membership ended (move-out): {resident_id, community_id, ...}; faces, passes and devices
# react.
MEMBERSHIP_ENDED = "membership.ended"
# A face gallery changed: {op: add|remove, community_id, enrollment_id, person_id}.
FACES_GALLERY = "faces.gallery"
# A community's pass-signing keys changed (rotation): {community_id}; drop cached keys.
PASS_KEYS_CHANGED = "pass_keys.changed"
# To residents' and staff's open sockets: {to, message}.
REALTIME_OUT = "realtime.out"
# From open sockets (besides ping), to whichever capability handles the type.
REALTIME_IN = "realtime.in"
# A camera was added, changed or removed: {camera_id}; every process re-reads it.
VIDEO_CAMERA_CHANGED = "video.camera.changed"
# An HTTP-push command sent by one API worker, for the terminal's poll on any: {device_id, cmd}
HTTP_PUSH_COMMAND = "http_push.command"
# An HTTP-push ack POSTed to a worker that did not send the command: {device_id, line}
HTTP_PUSH_ACK = "http_push.ack"
