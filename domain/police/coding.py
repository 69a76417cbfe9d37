"""Ids in the coding the public-security video standards use (GB/T 28181 appendix D rule
A, taken over by GA/T 1400.1): 20 digits = centre code (8, from the administrative
division, GB/T 2260) + industry code (2) + type code (3) + serial (7).

Object ids follow GA/T 1400.1: an image id is the capturing device's 20-digit id, "02",
the shot time (yyyyMMddHHmmss, local) and a 5-digit serial (41 digits); a face or motor
vehicle id is that image id, a 2-digit object type and a 5-digit serial (48 digits).
Every id is derived from the row it describes, so resending an object after a lost
answer sends the same id and the platform keeps it once.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

INDUSTRY = "00"  # 社会治安路面接入 etc. are platform-assigned; 00 unless told otherwise

# Type codes as community deployments use them (e.g. Zhejiang's /VIID/Community extension).
TYPE_APE = "121"  # capture device (face gate camera, plate camera)
TYPE_DOOR_DEVICE = "125"  # door controller; its door shares the id
TYPE_COMMUNITY = "216"  # the community as a virtual organisation
TYPE_PERSON = "701"  # a registered resident
TYPE_CAR = "702"  # a registered vehicle
TYPE_VISITOR = "703"  # a visitor registration (our extension in the same series)

OBJECT_PERSON = "01"
OBJECT_MOTOR_VEHICLE = "02"
OBJECT_FACE = "06"

_CENTER = re.compile(r"^\d{8}$")
_CODE20 = re.compile(r"^\d{20}$")


def valid_center_code(value: str) -> bool:
    return bool(_CENTER.match(value))


def valid_code20(value: str) -> bool:
    return bool(_CODE20.match(value))


def code20(center_code: str, type_code: str, serial: int) -> str:
    """A 20-digit id for our own device, person or record number `serial`."""
    if not valid_center_code(center_code):
        raise ValueError("centre code must be 8 digits")
    if not 0 <= serial < 10**7:
        raise ValueError("serial out of range for the 7-digit field")
    return f"{center_code}{INDUSTRY}{type_code}{serial:07d}"


def viid_time(when: datetime, tz: str | ZoneInfo) -> str:
    """yyyyMMddHHmmss in the community's zone (the standard's dateTime has no offset)."""
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    return when.astimezone(zone).strftime("%Y%m%d%H%M%S")


def image_id(device_code: str, shot_time: str, serial: int) -> str:
    return f"{device_code}02{shot_time}{serial % 100000:05d}"


def object_id(image: str, object_type: str, serial: int = 1) -> str:
    return f"{image}{object_type}{serial % 100000:05d}"
