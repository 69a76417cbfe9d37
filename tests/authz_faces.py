"""Authz matrix entries for faces (consent, enrollment, staff review, terminal libraries)
and privacy (data export, deletion report, processing records, face count), merged into
tests/authz_table.py TABLE.

Residents act for themselves (a newcomer has no household here: "not found"); staff
review and enroll in person as admin or approver, read terminal libraries as admin or
guard, and only admins see the privacy reports. The face engine runs only where a call
is allowed to enroll: one JPEG (and its head-turn frames) is built once per module.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import numpy as np

from anxin.clock import utcnow
from domain.faces import consent
from domain.faces.store import encrypt_embeddings, encrypt_photo
from face_engine import get_engine
from face_engine.imaging import encode_jpeg
from models import (
    ConsentGiver,
    EnrollmentMethod,
    EnrollmentState,
    FaceConsent,
    FaceEnrollment,
    MembershipState,
)
from tests.authz_table import (
    ADMIN,
    APPROVER,
    GUARD,
    NEWCOMER,
    OUTSIDER,
    RESIDENT,
    RESIDENTS,
    V1,
    Call,
    Ctx,
    Rule,
    no_args,
    no_probing,
    stranger_membership,
    swap_body,
    swap_param,
)
from tests.face_data import act, photo_bytes
from tests.helpers import items

ME = frozenset({RESIDENT})
NO_HOUSEHOLD = {NEWCOMER: 404}  # the newcomer lives nowhere here
REVIEWERS = frozenset({ADMIN, APPROVER})  # FACE_REVIEW, FACE_ENROLL_IN_PERSON
AG = frozenset({ADMIN, GUARD})  # DEVICE_READ
ADMINS = frozenset({ADMIN})  # PRIVACY_REPORT

_IMAGES: dict[str, bytes] = {}


def _images(ctx: Ctx) -> dict[str, bytes]:
    """A frontal face JPEG and the same face acting out every liveness move, built once."""
    if not _IMAGES:
        engine = get_engine(ctx.stack.settings)
        img = engine.decode(photo_bytes("obama"))
        face = engine.detect(img)[0]
        _IMAGES["front"] = encode_jpeg(img)
        for action in ("turn_left", "turn_right", "nod", "look_up"):
            _IMAGES[action] = encode_jpeg(act(img, face, action))
    return _IMAGES


def _policy(ctx: Ctx) -> Any:
    return ctx.world.community.face_storage_policy


async def _consented(ctx: Ctx, resident_id: int) -> list[FaceConsent]:
    texts = {t.purpose: t for t in await consent.current_texts()}
    return [
        await consent.give(
            resident_id, ctx.world.community.id, p, texts[p].version, ConsentGiver.SELF
        )
        for p in consent.required_purposes(_policy(ctx))
    ]


async def _pending(ctx: Ctx) -> FaceEnrollment:
    """A stranger of the community, consented, with a pending self-enrollment (no engine:
    a random unit template, so it matches nobody)."""
    m = await stranger_membership(ctx, MembershipState.APPROVED)
    await _consented(ctx, m.resident_id)
    e = await FaceEnrollment.create(
        resident_id=m.resident_id,
        community_id=ctx.world.community.id,
        submitted_by_type="resident",
        submitted_by_id=m.resident_id,
        method=EnrollmentMethod.PHOTO,
        storage_policy=_policy(ctx).value,
        backend=ctx.stack.settings.face_backend,
    )
    vec = np.random.default_rng().standard_normal(512).astype(np.float32)
    keyring = ctx.stack.runtime.keyring
    e.person_id = f"f{e.id}"
    e.photo_enc = encrypt_photo(keyring, e, b"\xff\xd8\xff" + secrets.token_bytes(64))
    e.embedding_enc = encrypt_embeddings(
        keyring, e, {ctx.stack.settings.face_backend: vec / np.linalg.norm(vec)}
    )
    await e.save(update_fields=["person_id", "photo_enc", "embedding_enc"])
    return e


# --- prepare ---------------------------------------------------------------------------


async def p_give_consent(ctx: Ctx, role: str) -> Call:
    # Take the resident's consents back first, so an allowed call really records new ones.
    cid = ctx.world.community.id
    await FaceConsent.filter(
        resident_id=ctx.resident_id, community_id=cid, withdrawn_at=None
    ).update(withdrawn_at=utcnow())
    texts = await consent.current_texts()
    wanted = {p.value for p in consent.required_purposes(_policy(ctx))}
    items = [{"purpose": t.purpose.value, "version": t.version} for t in texts]
    return Call(
        json={"community_id": cid, "consents": [i for i in items if i["purpose"] in wanted]}
    )


async def p_withdraw(ctx: Ctx, role: str) -> Call:
    rows = await _consented(ctx, ctx.resident_id)
    return Call(params={"consent_id": rows[0].id})


async def p_challenge(ctx: Ctx, role: str) -> Call:
    await _consented(ctx, ctx.resident_id)
    return Call(json={"community_id": ctx.world.community.id})


async def p_enroll_photo(ctx: Ctx, role: str) -> Call:
    await _consented(ctx, ctx.resident_id)
    return Call(
        files=[
            ("community_id", (None, str(ctx.world.community.id))),
            ("photo", ("me.jpg", _images(ctx)["front"], "image/jpeg")),
        ]
    )


async def p_enroll_liveness(ctx: Ctx, role: str) -> Call:
    """A challenge the resident started; for anyone else it is not theirs."""
    await _consented(ctx, ctx.resident_id)
    r = await ctx.stack.client.post(
        f"{V1}/me/face/challenges",
        json={"community_id": ctx.world.community.id},
        headers=ctx.headers[RESIDENT],
    )
    assert r.status_code == 201, r.text
    images = _images(ctx)
    frames = [images["front"]] + [images[a] for a in r.json()["actions"]]
    return Call(
        files=[("challenge_id", (None, r.json()["challenge_id"]))]
        + [("frames", (f"{i}.jpg", f, "image/jpeg")) for i, f in enumerate(frames)],
        state={"actions": r.json()["actions"]},
    )


async def p_community(ctx: Ctx, role: str) -> Call:
    return Call(params={"community_id": ctx.world.community.id})


async def p_queue(ctx: Ctx, role: str) -> Call:
    e = await _pending(ctx)
    return Call(params={"community_id": ctx.world.community.id}, state={"enrollment_id": e.id})


async def p_enrollment(ctx: Ctx, role: str) -> Call:
    return Call(params={"enrollment_id": (await _pending(ctx)).id}, json={"reason": ""})


async def p_reject(ctx: Ctx, role: str) -> Call:
    return Call(params={"enrollment_id": (await _pending(ctx)).id}, json={"reason": "照片不清晰"})


async def p_in_person(ctx: Ctx, role: str) -> Call:
    m = await stranger_membership(ctx, MembershipState.APPROVED)
    return Call(
        params={"community_id": ctx.world.community.id},
        files=[
            ("resident_id", (None, str(m.resident_id))),
            ("consent_confirmed", (None, "true")),
            ("photo", ("p.jpg", _images(ctx)["front"], "image/jpeg")),
        ],
        state={"resident_id": m.resident_id},
    )


# --- verify ----------------------------------------------------------------------------


async def v_consents_given(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert {c["resident_id"] for c in items(r)} == {ctx.resident_id}
    cid = ctx.world.community.id
    assert not await consent.missing(ctx.resident_id, cid, _policy(ctx))


async def v_my_consents(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    me = ctx.resident_id if role == RESIDENT else ctx.newcomer_id
    assert all(me in (c["resident_id"], c["guardian_id"]) for c in items(r))


async def v_withdrawn(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert (await FaceConsent.get(id=call.params["consent_id"])).withdrawn_at is not None


async def v_challenge(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    actions = r.json()["actions"]
    assert len(actions) == 3 and set(actions) <= {"turn_left", "turn_right", "nod", "look_up"}


async def v_enrolled(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    e = await FaceEnrollment.get(id=r.json()["id"])
    assert (e.resident_id, e.community_id) == (ctx.resident_id, ctx.world.community.id)
    assert e.state == EnrollmentState.PENDING and e.photo_enc is not None


async def v_my_enrollments(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    me = ctx.resident_id if role == RESIDENT else ctx.newcomer_id
    assert all(me in (e["resident_id"], e["submitted_by"]["id"]) for e in items(r)), (
        "someone else's enrollment listed"
    )


async def v_queue(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert call.state["enrollment_id"] in {e["id"] for e in items(r)}
    assert {e["community_id"] for e in items(r)} == {ctx.world.community.id}


async def v_photo(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert r.content.startswith(b"\xff\xd8\xff") and r.headers["cache-control"] == "no-store"


def v_decided(state: EnrollmentState) -> Any:
    async def verify(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
        e = await FaceEnrollment.get(id=call.params["enrollment_id"])
        assert e.state == state and r.json()["state"] == state.value
        assert e.photo_enc is None  # gone once decided

    return verify


async def v_in_person(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    e = await FaceEnrollment.get(id=r.json()["id"])
    assert e.resident_id == call.state["resident_id"]
    assert e.community_id == ctx.world.community.id and e.method == EnrollmentMethod.IN_PERSON
    # Approved at once, or left pending when it looks like someone else's face.
    assert e.state == EnrollmentState.APPROVED or e.duplicate_of


async def v_library(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    assert r.json()["community_id"] == ctx.world.community.id


async def v_export(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    me = ctx.resident_id if role == RESIDENT else ctx.newcomer_id
    body = r.json()
    assert body["resident"]["id"] == me
    assert all(e["resident_id"] == me for e in body["face_enrollments"])
    assert all(c["community_id"] for c in body["face_consents"])
    assert "photo_enc" not in r.text and "embedding_enc" not in r.text


async def v_community_report(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    body = r.json()
    rows = body["deletions"] if "deletions" in body else body["items"]
    assert all(row["community_id"] == ctx.world.community.id for row in rows)


async def v_face_count(ctx: Ctx, call: Call, role: str, r: httpx.Response) -> None:
    home = ctx.other if role == OUTSIDER else ctx.world
    assert r.json()["scope"] == [home.community.id], "counted another community's faces"


RULES: dict[tuple[str, str], Rule] = {
    # consent
    ("GET", f"{V1}/faces/consent-texts"): Rule("resident", RESIDENTS, no_args),
    ("GET", f"{V1}/me/face/consents"): Rule("resident", RESIDENTS, verify=v_my_consents),
    ("POST", f"{V1}/me/face/consents"): Rule(
        "resident", ME, p_give_consent, ok=201, deny=NO_HOUSEHOLD, verify=v_consents_given
    ),
    ("POST", f"{V1}/me/face/consents/{{consent_id}}/withdraw"): Rule(
        "resident", ME, p_withdraw, deny=NO_HOUSEHOLD, verify=v_withdrawn
    ),
    # enrollment from the phone
    ("POST", f"{V1}/me/face/challenges"): Rule(
        "resident", ME, p_challenge, ok=201, deny=NO_HOUSEHOLD, verify=v_challenge
    ),
    ("POST", f"{V1}/me/face/enrollments"): Rule(
        "resident", ME, p_enroll_photo, ok=201, deny=NO_HOUSEHOLD, verify=v_enrolled
    ),
    ("POST", f"{V1}/me/face/enrollments/liveness"): Rule(
        "resident", ME, p_enroll_liveness, ok=201, deny=NO_HOUSEHOLD, verify=v_enrolled
    ),
    ("GET", f"{V1}/me/face/enrollments"): Rule("resident", RESIDENTS, verify=v_my_enrollments),
    # staff review
    ("GET", f"{V1}/staff/communities/{{community_id}}/face-enrollments"): Rule(
        "staff", REVIEWERS, p_queue, verify=v_queue
    ),
    ("GET", f"{V1}/staff/face-enrollments/{{enrollment_id}}/photo"): Rule(
        "staff", REVIEWERS, p_enrollment, verify=v_photo
    ),
    ("POST", f"{V1}/staff/face-enrollments/{{enrollment_id}}/approve"): Rule(
        "staff", REVIEWERS, p_enrollment, verify=v_decided(EnrollmentState.APPROVED)
    ),
    ("POST", f"{V1}/staff/face-enrollments/{{enrollment_id}}/reject"): Rule(
        "staff", REVIEWERS, p_reject, verify=v_decided(EnrollmentState.REJECTED)
    ),
    ("POST", f"{V1}/staff/communities/{{community_id}}/face-enrollments/in-person"): Rule(
        "staff", REVIEWERS, p_in_person, ok=201, verify=v_in_person
    ),
    ("GET", f"{V1}/staff/communities/{{community_id}}/face-library"): Rule(
        "staff", AG, p_community, verify=v_library
    ),
    # privacy
    ("GET", f"{V1}/me/data-export"): Rule("resident", RESIDENTS, verify=v_export),
    ("GET", f"{V1}/staff/communities/{{community_id}}/privacy/deletions"): Rule(
        "staff", ADMINS, p_community, verify=v_community_report
    ),
    ("GET", f"{V1}/staff/communities/{{community_id}}/privacy/records"): Rule(
        "staff", ADMINS, p_community, verify=v_community_report
    ),
    # Not community-scoped: an admin anywhere counts their own communities' faces.
    ("GET", f"{V1}/staff/privacy/face-count"): Rule(
        "staff", ADMINS | {OUTSIDER}, verify=v_face_count
    ),
}

# Outsiders and residents must not tell another community's rows from missing ones.
no_probing(
    RULES,
    {
        ("POST", f"{V1}/me/face/consents"): swap_body("community_id"),
        ("POST", f"{V1}/me/face/consents/{{consent_id}}/withdraw"): swap_param("consent_id"),
        ("POST", f"{V1}/me/face/challenges"): swap_body("community_id"),
        ("GET", f"{V1}/staff/communities/{{community_id}}/face-enrollments"): swap_param(
            "community_id"
        ),
        ("GET", f"{V1}/staff/face-enrollments/{{enrollment_id}}/photo"): swap_param(
            "enrollment_id"
        ),
        ("POST", f"{V1}/staff/face-enrollments/{{enrollment_id}}/approve"): swap_param(
            "enrollment_id"
        ),
        ("POST", f"{V1}/staff/face-enrollments/{{enrollment_id}}/reject"): swap_param(
            "enrollment_id"
        ),
        ("POST", f"{V1}/staff/communities/{{community_id}}/face-enrollments/in-person"): (
            swap_param("community_id")
        ),
        ("GET", f"{V1}/staff/communities/{{community_id}}/face-library"): swap_param(
            "community_id"
        ),
        ("GET", f"{V1}/staff/communities/{{community_id}}/privacy/deletions"): swap_param(
            "community_id"
        ),
        ("GET", f"{V1}/staff/communities/{{community_id}}/privacy/records"): swap_param(
            "community_id"
        ),
    },
    RESIDENTS | {OUTSIDER},
)
