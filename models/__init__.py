"""Tortoise models only: no request, MQTT or domain code here."""

from models.community import Building, City, Community, FaceStoragePolicy, Room, Unit
from models.devices import Device, DeviceKind, DeviceStatus
from models.logs import AccessEvent, AccessMethod, AccessResult, AuditLog
from models.people import (
    Membership,
    MembershipRole,
    MembershipState,
    Resident,
    StaffAccount,
    StaffRole,
    StaffRoleName,
)
from models.tokens import RefreshToken

__all__ = [
    "AccessEvent",
    "AccessMethod",
    "AccessResult",
    "AuditLog",
    "Building",
    "City",
    "Community",
    "Device",
    "DeviceKind",
    "DeviceStatus",
    "FaceStoragePolicy",
    "Membership",
    "MembershipRole",
    "MembershipState",
    "RefreshToken",
    "Resident",
    "Room",
    "StaffAccount",
    "StaffRole",
    "StaffRoleName",
    "Unit",
]
