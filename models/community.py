"""Places: a city holds communities; a community holds buildings, units and rooms."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields

from models.base import TimestampedModel


class FaceStoragePolicy(StrEnum):
    EDGE = "edge"  # faces live on the community's terminals only
    CENTRAL = "central"  # the server keeps the encrypted embedding (separate consent)


class FaceSelfEnrollment(StrEnum):
    """How a resident may enroll their own face from the phone."""

    LIVENESS = "liveness"  # the active challenge only (default); a still photo only in person
    PHOTO = "photo"  # a single still photo is also accepted (no liveness check)


class City(TimestampedModel):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64, unique=True)
    name_en = fields.CharField(max_length=64, default="")

    class Meta:
        table = "city"


class Community(TimestampedModel):
    id = fields.IntField(primary_key=True)
    city: fields.ForeignKeyRelation[City] = fields.ForeignKeyField(
        "anxin.City", related_name="communities", on_delete=fields.RESTRICT
    )
    city_id: int
    name = fields.CharField(max_length=64)
    name_en = fields.CharField(max_length=64, default="")
    address = fields.CharField(max_length=200, default="")
    timezone = fields.CharField(max_length=64, default="Asia/Shanghai")
    face_storage_policy = fields.CharEnumField(
        FaceStoragePolicy, max_length=16, default=FaceStoragePolicy.EDGE
    )
    face_self_enrollment = fields.CharEnumField(
        FaceSelfEnrollment, max_length=16, default=FaceSelfEnrollment.LIVENESS
    )
    # Ed25519 key that signs visitor passes; private half encrypted at rest.
    pass_public_key = fields.TextField(default="")
    pass_private_key_enc = fields.BinaryField(null=True)
    pass_key_id = fields.CharField(max_length=16, default="")  # "" until the first rotation

    class Meta:
        table = "community"
        unique_together = (("city", "name"),)


class Building(TimestampedModel):
    id = fields.IntField(primary_key=True)
    community: fields.ForeignKeyRelation[Community] = fields.ForeignKeyField(
        "anxin.Community", related_name="buildings", on_delete=fields.RESTRICT
    )
    community_id: int
    name = fields.CharField(max_length=32)

    class Meta:
        table = "building"
        unique_together = (("community", "name"),)


class Unit(TimestampedModel):
    id = fields.IntField(primary_key=True)
    building: fields.ForeignKeyRelation[Building] = fields.ForeignKeyField(
        "anxin.Building", related_name="units", on_delete=fields.RESTRICT
    )
    building_id: int
    # Denormalised so every scoped query is one indexed filter.
    community: fields.ForeignKeyRelation[Community] = fields.ForeignKeyField(
        "anxin.Community", related_name="units", on_delete=fields.RESTRICT
    )
    community_id: int
    name = fields.CharField(max_length=32)

    class Meta:
        table = "unit"
        unique_together = (("building", "name"),)


class Room(TimestampedModel):
    """A flat: the household that residents belong to."""

    id = fields.IntField(primary_key=True)
    unit: fields.ForeignKeyRelation[Unit] = fields.ForeignKeyField(
        "anxin.Unit", related_name="rooms", on_delete=fields.RESTRICT
    )
    unit_id: int
    building: fields.ForeignKeyRelation[Building] = fields.ForeignKeyField(
        "anxin.Building", related_name="rooms", on_delete=fields.RESTRICT
    )
    building_id: int
    community: fields.ForeignKeyRelation[Community] = fields.ForeignKeyField(
        "anxin.Community", related_name="rooms", on_delete=fields.RESTRICT
    )
    community_id: int
    number = fields.CharField(max_length=16)

    class Meta:
        table = "room"
        unique_together = (("unit", "number"),)
