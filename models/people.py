"""People: residents (WeChat identities), their memberships of rooms, and property staff."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields

from models.base import TimestampedModel


class MembershipRole(StrEnum):
    OWNER = "owner"
    FAMILY = "family"
    TENANT = "tenant"


class MembershipState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    ENDED = "ended"
    # Approved, but the resident is blocked in this community (ResidentBlock): it counts
    # for nothing until the block is lifted, when it is approved again.
    SUSPENDED = "suspended"


class StaffRoleName(StrEnum):
    ADMIN = "admin"  # manages the community tree, staff, devices
    APPROVER = "approver"  # approves bindings and face enrollments
    GUARD = "guard"  # reads the access log, handles alarms and visitors
    # 治安保卫: police alerts and outsider tracing; the only role that sees either.
    SECURITY = "security"


class Resident(TimestampedModel):
    id = fields.IntField(primary_key=True)
    openid = fields.CharField(max_length=64, unique=True, null=True)
    unionid = fields.CharField(max_length=64, null=True, db_index=True)
    name = fields.CharField(max_length=64, default="")
    phone = fields.CharField(max_length=20, null=True, db_index=True)
    birth_date = fields.DateField(null=True)
    language = fields.CharField(max_length=8, default="zh")
    # The resident deleted their account: personal fields erased, every token refused.
    deleted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "resident"


class ResidentBlock(TimestampedModel):
    """Staff of one community blocked a resident there. A block belongs to (resident,
    community): the account and the resident's homes elsewhere are untouched."""

    id = fields.IntField(primary_key=True)
    resident: fields.ForeignKeyRelation[Resident] = fields.ForeignKeyField(
        "anxin.Resident", related_name="blocks", on_delete=fields.CASCADE
    )
    community: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "anxin.Community", related_name="resident_blocks", on_delete=fields.CASCADE
    )
    reason = fields.CharField(max_length=200, default="")
    blocked_by: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "anxin.StaffAccount", related_name=None, null=True, on_delete=fields.SET_NULL
    )
    resident_id: int
    community_id: int
    blocked_by_id: int | None

    class Meta:
        table = "resident_block"
        unique_together = (("resident", "community"),)


class Membership(TimestampedModel):
    id = fields.IntField(primary_key=True)
    resident: fields.ForeignKeyRelation[Resident] = fields.ForeignKeyField(
        "anxin.Resident", related_name="memberships", on_delete=fields.RESTRICT
    )
    resident_id: int
    room: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "anxin.Room", related_name="memberships", on_delete=fields.RESTRICT
    )
    room_id: int
    community: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "anxin.Community", related_name="memberships", on_delete=fields.RESTRICT
    )
    community_id: int
    role = fields.CharEnumField(MembershipRole, max_length=16)
    state = fields.CharEnumField(MembershipState, max_length=16, default=MembershipState.PENDING)
    note = fields.CharField(max_length=200, default="")
    decision_reason = fields.CharField(max_length=200, default="")
    decided_by: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "anxin.StaffAccount", related_name=None, null=True, on_delete=fields.SET_NULL
    )
    decided_by_id: int | None
    decided_at = fields.DatetimeField(null=True)
    move_in = fields.DateField(null=True)
    move_out = fields.DateField(null=True)
    ended_at = fields.DatetimeField(null=True)

    class Meta:
        table = "membership"
        indexes = (("community_id", "state"), ("resident_id", "state"))


class StaffAccount(TimestampedModel):
    id = fields.IntField(primary_key=True)
    username = fields.CharField(max_length=64, unique=True)
    password_hash = fields.CharField(max_length=256)
    display_name = fields.CharField(max_length=64, default="")
    is_active = fields.BooleanField(default=True)
    # A city operator sees every community (face-data register, filings).
    is_operator = fields.BooleanField(default=False)
    roles: fields.ReverseRelation[StaffRole]

    class Meta:
        table = "staff_account"


class StaffRole(TimestampedModel):
    id = fields.IntField(primary_key=True)
    staff: fields.ForeignKeyRelation[StaffAccount] = fields.ForeignKeyField(
        "anxin.StaffAccount", related_name="roles", on_delete=fields.CASCADE
    )
    staff_id: int
    community: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "anxin.Community", related_name="staff_roles", on_delete=fields.CASCADE
    )
    community_id: int
    role = fields.CharEnumField(StaffRoleName, max_length=16)

    class Meta:
        table = "staff_role"
        unique_together = (("staff", "community", "role"),)


class InvitationState(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"  # by staff


class Invitation(TimestampedModel):
    """Staff (usually by import) invite whoever holds a phone number into a room. It gives
    nothing until the resident, logged in with that phone bound, accepts it: an import
    never approves a membership for an account on its own."""

    id = fields.IntField(primary_key=True)
    community: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "anxin.Community", related_name="invitations", on_delete=fields.CASCADE
    )
    room: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "anxin.Room", related_name="invitations", on_delete=fields.CASCADE
    )
    phone = fields.CharField(max_length=20)
    name = fields.CharField(max_length=64, default="")
    role = fields.CharEnumField(MembershipRole, max_length=16)
    move_in = fields.DateField(null=True)
    state = fields.CharEnumField(InvitationState, max_length=16, default=InvitationState.PENDING)
    invited_by: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "anxin.StaffAccount", related_name=None, null=True, on_delete=fields.SET_NULL
    )
    expires_at = fields.DatetimeField()
    decided_at = fields.DatetimeField(null=True)
    # Who accepted or declined it, and the membership an acceptance made.
    resident: fields.ForeignKeyNullableRelation[Resident] = fields.ForeignKeyField(
        "anxin.Resident", related_name="invitations", null=True, on_delete=fields.CASCADE
    )
    membership: fields.ForeignKeyNullableRelation[Membership] = fields.ForeignKeyField(
        "anxin.Membership", related_name=None, null=True, on_delete=fields.SET_NULL
    )
    community_id: int
    room_id: int
    invited_by_id: int | None
    resident_id: int | None
    membership_id: int | None

    class Meta:
        table = "invitation"
        indexes = (("phone", "state"), ("community_id", "state"))
