"""Turning queued uploads into VIID objects, field by field (docs/police-link.md lists
every field and the category that allows it).

Objects are built at send time from the rows as they are then: a snapshot purged by
retention goes without its image, a pass revoked meanwhile goes with DataStatus 1. What
we never send: resident ids, ID-card numbers (not held), face templates, face enrollment
photos, door codes, the person matched at a face capture (the platform compares faces
itself; our match is not its business).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any

from domain.access.snapshots import SnapshotStore
from domain.police.coding import image_id, viid_time
from domain.police.uploads import CAPTURE_KINDS, device_code
from models import (
    AccessEvent,
    Community,
    Device,
    DeviceKind,
    DeviceStatus,
    Membership,
    MembershipRole,
    MembershipState,
    PassState,
    PoliceAgreement,
    PoliceUpload,
    ShareCategory,
    Vehicle,
    VisitorPass,
)
from police_link import viid

log = logging.getLogger(__name__)

IMAGE_TYPE_FACE = "14"  # 人脸图 (GA/T 1400.3 image type)
IMAGE_TYPE_VEHICLE = "01"  # 车辆大图
INFO_KIND_AUTO = 1  # 自动采集
ROLE_CODE = {MembershipRole.OWNER: "1", MembershipRole.FAMILY: "2", MembershipRole.TENANT: "3"}


@dataclass
class Built:
    upload: PoliceUpload
    collection: viid.Collection
    obj: dict[str, Any]


def _source(upload: PoliceUpload) -> tuple[str, int]:
    prefix, _, rest = upload.source_key.partition(":")
    return prefix, int(rest.split(":", 1)[0])


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from the JPEG's start-of-frame marker, without decoding it;
    (0, 0) when there is none."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return 0, 0
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _SOF:
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        i += 2 + length
    return 0, 0


class ObjectBuilder:
    def __init__(self, snapshots: SnapshotStore) -> None:
        self.snapshots = snapshots

    def _image(
        self, ref: str, image: str, device: str, shot: str, kind: str
    ) -> dict[str, Any] | None:
        if not ref:
            return None
        try:
            data = self.snapshots.load(ref)
        except Exception:  # purged by retention (not found) or unreadable
            return None  # the object goes without its image
        width, height = jpeg_size(data)
        return {
            "ImageID": image,
            "EventSort": 4 if kind == IMAGE_TYPE_FACE else 1,
            "DeviceID": device,
            "StoragePath": "",
            "Type": kind,
            "FileFormat": "Jpeg",
            "ShotTime": shot,
            "Width": width,
            "Height": height,
            "Data": base64.b64encode(data).decode(),
        }

    async def build(self, agreement: PoliceAgreement, uploads: list[PoliceUpload]) -> list[Built]:
        community = await Community.get(id=agreement.community_id)
        tz = community.timezone
        ids: dict[str, list[int]] = {}
        for u in uploads:
            prefix, sid = _source(u)
            ids.setdefault(prefix, []).append(sid)

        async def load(model: Any, key: str, *related: str) -> dict[int, Any]:
            if key not in ids:
                return {}
            q = model.filter(id__in=ids[key])
            if related:
                q = q.prefetch_related(*related)
            return {r.id: r for r in await q}

        events = await load(AccessEvent, "access_event")
        device_ids = set(ids.get("ape", []) + ids.get("door", []) + ids.get("doordev", []))
        device_ids |= {e.device_id for e in events.values() if e.device_id}
        devices = {d.id: d for d in await Device.filter(id__in=list(device_ids) or [0])}
        passes = await load(VisitorPass, "visitor_pass", "room__building", "room__unit")
        members = await load(Membership, "membership", "resident", "room__building", "room__unit")
        cars = await load(Vehicle, "vehicle", "room__building", "room__unit")

        built: list[Built] = []
        for u in uploads:
            prefix, sid = _source(u)
            try:
                if prefix == "access_event" and sid in events:
                    built.append(self._capture(agreement, u, events[sid], devices, tz))
                elif prefix in ("ape", "door", "doordev") and sid in devices:
                    built.append(self._device(agreement, u, devices[sid], prefix))
                elif prefix == "visitor_pass" and sid in passes:
                    built.append(self._visitor(agreement, u, passes[sid], tz))
                elif prefix == "membership" and sid in members:
                    built.append(self._person(agreement, u, members[sid], tz))
                elif prefix == "vehicle" and sid in cars:
                    built.append(self._car(agreement, u, cars[sid]))
                else:
                    log.warning("police upload %s: source %s is gone", u.id, u.source_key)
            except Exception:
                log.exception("police upload %s could not be built", u.id)
        return built

    # -- captures ----------------------------------------------------------------------
    def _capture(
        self,
        agreement: PoliceAgreement,
        u: PoliceUpload,
        e: AccessEvent,
        devices: dict[int, Device],
        tz: str,
    ) -> Built:
        dev = device_code(agreement, e.device_id or 0)
        shot = viid_time(e.occurred_at, tz)
        image = image_id(dev, shot, e.id)
        device = devices.get(e.device_id or 0)
        place = (device.place or device.name) if device else ""
        if u.category == ShareCategory.VEHICLE_PASSAGES:
            sub = self._image(e.snapshot_ref, image, dev, shot, IMAGE_TYPE_VEHICLE)
            obj: dict[str, Any] = {
                "MotorVehicleID": u.object_id,
                "InfoKind": INFO_KIND_AUTO,
                "SourceID": image,
                "TollgateID": "",
                "DeviceID": dev,
                "StorageUrl1": "",
                "LeftTopX": 0,
                "LeftTopY": 0,
                "RightBtmX": 0,
                "RightBtmY": 0,
                "HasPlate": "1",
                "PlateClass": "99",
                "PlateColor": "99",
                "PlateNo": e.plate,
                "PassTime": shot,
                "NameOfPassedRoad": place,
                "InOut": "in",
                "CommunityID": agreement.community_code,
            }
            collection = viid.MOTOR_VEHICLES
        else:
            sub = self._image(e.snapshot_ref, image, dev, shot, IMAGE_TYPE_FACE)
            obj = {
                "FaceID": u.object_id,
                "InfoKind": INFO_KIND_AUTO,
                "SourceID": image,
                "DeviceID": dev,
                "LeftTopX": 0,
                "LeftTopY": 0,
                "RightBtmX": 0,
                "RightBtmY": 0,
                "LocationMarkTime": shot,
                "FaceAppearTime": shot,
                "FaceDisAppearTime": shot,
                "IsDriver": 0,
                "IsForeigner": 0,
                "IsSuspectedTerrorist": 0,
                "IsCriminalInvolved": 0,
                "IsDetainees": 0,
                "IsVictim": 0,
                "IsSuspiciousPerson": 0,
                "InOut": "in",
                "CommunityID": agreement.community_code,
            }
            collection = viid.FACES
        if sub is not None:
            obj["SubImageList"] = {"SubImageInfoObject": [sub]}
        return Built(u, collection, obj)

    # -- devices and doors ---------------------------------------------------------------
    def _device(self, agreement: PoliceAgreement, u: PoliceUpload, d: Device, prefix: str) -> Built:
        status = 0 if d.status == DeviceStatus.ACTIVE else 1  # DataStatus 1: removed
        if prefix == "ape":
            obj = {
                "ApeID": u.object_id,
                "Name": d.name,
                "Model": f"anxin-{d.kind.value}",
                "IPAddr": "",
                "Port": 0,
                "Longitude": 0,
                "Latitude": 0,
                "PlaceCode": "",
                "Place": d.place or d.name,
                "OrgCode": "",
                "CapDirection": 0,
                "MonitorDirection": "",
                "MonitorAreaDesc": d.place,
                "IsOnline": "1" if d.online else "2",
                "OwnerApsID": agreement.system_id,
                "FunctionType": "1" if d.kind == DeviceKind.BARRIER_GATE else "2",
                "CommunityID": agreement.community_code,
                "DataStatus": status,
            }
            return Built(u, viid.APES, obj)
        common = {
            "Name": d.name,
            "Address": d.place,
            "CommunityID": agreement.community_code,
            "DataSourceID": agreement.system_id[:10],
            "DataStatus": status,
            "DeviceNo": d.device_uid,
        }
        if prefix == "doordev":
            obj = {
                "DeviceID": u.object_id,
                **common,
                "Manufacturer": "anxin",
                "DeviceType": d.kind.value,
                "Latitude": 0,
                "Longitude": 0,
            }
            return Built(u, viid.DOOR_DEVICES, obj)
        obj = {
            "DoorID": u.object_id,
            **common,
            "DeviceID": u.object_id,
            "CapCameraID": device_code(agreement, d.id) if d.kind in CAPTURE_KINDS else "",
            "PositionType": 2 if d.unit_id else 1,  # 1 community gate, 2 unit door
            "Direction": 1,
            "Latitude": 0,
            "Longitude": 0,
        }
        return Built(u, viid.DOOR_INFOS, obj)

    # -- registrations ------------------------------------------------------------------
    @staticmethod
    def _address(room: Any) -> str:
        return f"{room.building.name}{room.unit.name}{room.number}"

    def _visitor(
        self, agreement: PoliceAgreement, u: PoliceUpload, p: VisitorPass, tz: str
    ) -> Built:
        obj = {
            "VisitorID": u.object_id,
            "Name": p.visitor_name,
            "Phone": p.visitor_phone,
            "PlateNo": p.plate,
            "VisitAddress": self._address(p.room),
            "RegisterTime": viid_time(p.created_at, tz),
            "BeginTime": viid_time(p.valid_from, tz),
            "EndTime": viid_time(p.valid_until, tz),
            "CommunityID": agreement.community_code,
            "DataSourceID": agreement.system_id[:10],
            "DataStatus": 0 if p.state == PassState.ACTIVE else 1,
        }
        return Built(u, viid.VISITOR_INFOS, obj)

    def _person(self, agreement: PoliceAgreement, u: PoliceUpload, m: Membership, tz: str) -> Built:
        r = m.resident
        obj = {
            "PersonID": u.object_id,
            "IDType": "",
            "IDNumber": "",  # not held by Anxin
            "Name": r.name,
            "Phone": r.phone or "",
            "PersonType": ROLE_CODE.get(m.role, "9"),
            "ResidenceAddress": self._address(m.room),
            "CommunityID": agreement.community_code,
            "DataSourceID": agreement.system_id[:10],
            "DataStatus": 0 if m.state == MembershipState.APPROVED else 1,
            "DataUpdateTime": viid_time(m.updated_at, tz),
        }
        return Built(u, viid.PERSON_INFOS, obj)

    def _car(self, agreement: PoliceAgreement, u: PoliceUpload, v: Vehicle) -> Built:
        obj = {
            "CarInfoID": u.object_id,
            "PlateNo": v.plate,
            "PlateClass": "",
            "PlateColor": "",
            "OwnerID": "",  # the owner is not linked: the registry carries the room only
            "ResidenceAddress": self._address(v.room),
            "CommunityID": agreement.community_code,
            "DataSourceID": agreement.system_id[:10],
            "DataStatus": 0,
        }
        return Built(u, viid.CAR_INFOS, obj)
