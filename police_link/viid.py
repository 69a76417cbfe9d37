"""The GA/T 1400.4 (视图库, VIID) wire format as this link speaks it: paths, list
envelopes, the object id field of each collection, and `ResponseStatusObject`.

Status codes (GA/T 1400.4 appendix): 0 OK, 1 other error, 2 device busy, 3 device error,
4 invalid operation, 5 invalid XML format, 6 invalid XML content, 7 invalid JSON format,
8 invalid JSON content, 9 reboot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from models import ShareCategory

CONTENT_TYPE = "application/VIID+JSON;charset=UTF-8"

REGISTER = "/VIID/System/Register"
UNREGISTER = "/VIID/System/UnRegister"
KEEPALIVE = "/VIID/System/Keepalive"
TIME = "/VIID/System/Time"
SUBSCRIBES = "/VIID/Subscribes"
SUBSCRIBE_NOTIFICATIONS = "/VIID/SubscribeNotifications"
DISPOSITION_NOTIFICATIONS = "/VIID/DispositionNotifications"

OK = 0
OTHER_ERROR = 1
INVALID_OPERATION = 4
INVALID_JSON_FORMAT = 7
INVALID_JSON_CONTENT = 8


@dataclass(frozen=True)
class Collection:
    path: str
    list_name: str
    object_name: str
    id_field: str


APES = Collection("/VIID/APEs", "APEListObject", "APEObject", "ApeID")
FACES = Collection("/VIID/Faces", "FaceListObject", "FaceObject", "FaceID")
MOTOR_VEHICLES = Collection(
    "/VIID/MotorVehicles", "MotorVehicleListObject", "MotorVehicleObject", "MotorVehicleID"
)
# Community extensions, in the shape Zhejiang's community platforms take them.
DOOR_DEVICES = Collection(
    "/VIID/Community/DoorDevices", "DoorDeviceListObject", "DoorDeviceObject", "DeviceID"
)
DOOR_INFOS = Collection(
    "/VIID/Community/DoorInfos", "DoorInfoListObject", "DoorInfoObject", "DoorID"
)
PERSON_INFOS = Collection(
    "/VIID/Community/PersonInfos", "PersonInfoListObject", "PersonInfoObject", "PersonID"
)
CAR_INFOS = Collection("/VIID/Community/CarInfos", "CarInfoList", "CarInfo", "CarInfoID")
VISITOR_INFOS = Collection(
    "/VIID/Community/VisitorInfos", "VisitorInfoListObject", "VisitorInfoObject", "VisitorID"
)
COLLECTIONS = (
    APES,
    FACES,
    MOTOR_VEHICLES,
    DOOR_DEVICES,
    DOOR_INFOS,
    PERSON_INFOS,
    CAR_INFOS,
    VISITOR_INFOS,
)
BY_PATH = {c.path: c for c in COLLECTIONS}

CATEGORY_COLLECTIONS: dict[ShareCategory, tuple[Collection, ...]] = {
    ShareCategory.APES: (APES,),
    ShareCategory.DOORS: (DOOR_DEVICES, DOOR_INFOS),
    ShareCategory.FACE_CAPTURES: (FACES,),
    ShareCategory.VEHICLE_PASSAGES: (MOTOR_VEHICLES,),
    ShareCategory.VISITOR_REGISTRATIONS: (VISITOR_INFOS,),
    ShareCategory.RESIDENT_REGISTRY: (PERSON_INFOS,),
    ShareCategory.VEHICLE_REGISTRY: (CAR_INFOS,),
}


def envelope(collection: Collection, objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {collection.list_name: {collection.object_name: objects}}


def unwrap(collection: Collection, body: Any) -> list[dict[str, Any]]:
    """The objects of a list body, or ValueError for a body of another shape."""
    try:
        objects = body[collection.list_name][collection.object_name]
    except (KeyError, TypeError):
        raise ValueError(f"expected {collection.list_name}.{collection.object_name}") from None
    if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
        raise ValueError("objects must be a list of objects")
    return objects


def local_time(now: datetime) -> str:
    return now.strftime("%Y%m%d%H%M%S")


def status(
    object_id: str, url: str, code: int = OK, text: str = "OK", now: datetime | None = None
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "RequestURL": url,
        "StatusCode": code,
        "StatusString": text,
        "Id": object_id,
    }
    if now is not None:
        obj["LocalTime"] = local_time(now)
    return obj


def status_reply(obj: dict[str, Any]) -> dict[str, Any]:
    return {"ResponseStatusObject": obj}


def status_list_reply(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"ResponseStatusListObject": {"ResponseStatusObject": objs}}


@dataclass(frozen=True)
class Status:
    id: str
    code: int
    text: str


def parse_statuses(body: Any) -> list[Status]:
    """Every ResponseStatusObject in a reply (one, or a list)."""
    if not isinstance(body, dict):
        raise ValueError("reply is not a JSON object")
    if "ResponseStatusListObject" in body:
        raw = body["ResponseStatusListObject"].get("ResponseStatusObject", [])
    elif "ResponseStatusObject" in body:
        raw = [body["ResponseStatusObject"]]
    else:
        raise ValueError("reply carries no ResponseStatusObject")
    if isinstance(raw, dict):
        raw = [raw]
    return [
        Status(
            str(r.get("Id", "")),
            int(r.get("StatusCode", OTHER_ERROR)),
            str(r.get("StatusString", "")),
        )
        for r in raw
    ]
