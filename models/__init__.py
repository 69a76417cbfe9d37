"""Tortoise models only: no request, MQTT or domain code here."""

from models.access_control import (
    AccessCard,
    Alarm,
    AlarmKind,
    AlarmState,
    BlockKind,
    BlocklistEntry,
    CommandStatus,
    DeviceCommand,
)
from models.community import Building, City, Community, FaceStoragePolicy, Room, Unit
from models.devices import Device, DeviceKind, DeviceStatus
from models.logs import AccessEvent, AccessMethod, AccessResult, AuditLog
from models.notifications import (
    Channel,
    DeliveryState,
    Notification,
    NotificationAttempt,
    NotificationDelivery,
    NotificationPreference,
    OutboxEvent,
    OutboxState,
    WeChatSubscription,
)
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
    "AccessCard",
    "Alarm",
    "AlarmKind",
    "AlarmState",
    "BlockKind",
    "BlocklistEntry",
    "CommandStatus",
    "DeviceCommand",
    "AccessEvent",
    "AccessMethod",
    "AccessResult",
    "AuditLog",
    "Building",
    "Channel",
    "City",
    "Community",
    "DeliveryState",
    "Device",
    "DeviceKind",
    "DeviceStatus",
    "FaceStoragePolicy",
    "Membership",
    "MembershipRole",
    "MembershipState",
    "Notification",
    "NotificationAttempt",
    "NotificationDelivery",
    "NotificationPreference",
    "OutboxEvent",
    "OutboxState",
    "RefreshToken",
    "Resident",
    "Room",
    "StaffAccount",
    "StaffRole",
    "StaffRoleName",
    "Unit",
    "WeChatSubscription",
]
