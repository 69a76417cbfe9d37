"""Face engine on real photos: detection, alignment, embeddings, 1:N, quality, liveness."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from face_engine import (
    DualEngine,
    FaceEngine,
    Gallery,
    ModelIntegrityError,
    estimate_pose,
    get_engine,
    verify_model_file,
)
from face_engine.imaging import encode_jpeg
from face_engine.models import insightface_model_paths, sface_model_paths, strip_unused_inputs
from face_engine.quality import REASONS
from face_engine.types import EnrollmentAnalysis, QualityReport
from tests import face_data
from tests.face_data import photo_bytes


@pytest.fixture(scope="module")
def arc() -> FaceEngine:
    engine = FaceEngine("insightface")
    engine.warmup()
    return engine


@pytest.fixture(scope="module")
def sface(tmp_path_factory) -> FaceEngine:
    engine = FaceEngine("sface", data_dir=tmp_path_factory.mktemp("data"))
    engine.warmup()
    return engine


@pytest.fixture(scope="module")
def embeddings(arc: FaceEngine) -> dict[str, np.ndarray]:
    out = {}
    for names in face_data.IDENTITIES.values():
        for name in names:
            img = arc.decode(photo_bytes(name))
            out[name] = arc.embed(img, arc.detect(img)[0])
    return out


def _img(engine: FaceEngine, name: str) -> np.ndarray:
    return engine.decode(photo_bytes(name))


# -- detection, alignment, embedding -----------------------------------------------------


def test_detects_one_face_with_landmarks_inside_the_box(arc):
    img = _img(arc, "obama")
    faces = arc.detect(img)
    assert len(faces) == 1
    face = faces[0]
    x1, y1, x2, y2 = face.bbox
    assert face.score > 0.6 and 150 < face.width < 400
    assert face.landmarks5.shape == (5, 2)
    assert np.all((face.landmarks5[:, 0] > x1) & (face.landmarks5[:, 0] < x2))
    assert np.all((face.landmarks5[:, 1] > y1) & (face.landmarks5[:, 1] < y2))
    eye_l, eye_r, nose, mouth_l, mouth_r = face.landmarks5
    assert eye_l[0] < eye_r[0] and mouth_l[0] < mouth_r[0]  # image-left first
    assert eye_l[1] < nose[1] < mouth_l[1]


def test_group_photo_finds_everyone(arc):
    assert len(arc.detect(_img(arc, "solvay"))) >= 27  # 29 people, some half hidden


def test_alignment_puts_eyes_on_the_template(arc):
    img = _img(arc, "obama")
    crop = arc.align(img, arc.detect(img)[0])
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    again = arc.detect(cv2.copyMakeBorder(crop, 56, 56, 56, 56, cv2.BORDER_CONSTANT))
    assert again, "the aligned crop still holds a face"
    eyes = again[0].landmarks5[:2] - 56
    assert np.abs(eyes - np.array([[38.3, 51.7], [73.5, 51.5]])).max() < 6


def test_embedding_is_512d_unit_norm(arc, embeddings):
    assert arc.dim == 512
    for vec in embeddings.values():
        assert vec.shape == (512,) and vec.dtype == np.float32
        assert abs(float(np.linalg.norm(vec)) - 1.0) < 1e-4


def test_same_person_across_photos_and_years_matches(arc, embeddings):
    for a, b in face_data.genuine_pairs():
        score = arc.similarity(embeddings[a], embeddings[b])
        assert score >= arc.threshold, (a, b, score)


def test_different_people_do_not_match(arc, embeddings):
    for a, b in face_data.impostor_pairs():
        score = arc.similarity(embeddings[a], embeddings[b])
        assert score < arc.threshold - 0.1, (a, b, score)


# -- gallery -------------------------------------------------------------------------------


def test_gallery_open_set_search(arc, embeddings):
    g = Gallery(512, threshold=arc.threshold, margin=arc.margin)
    g.add("obama", np.stack([embeddings["obama"], embeddings["obama2"]]))
    g.add("macron", embeddings["person_a_2"])
    g.add("ardern", embeddings["person_b_1"])
    g.add("biden", embeddings["biden"])
    assert len(g) == 5 and g.person_count == 4
    hit = g.search(embeddings["obama_senate"])
    assert hit.person_id == "obama" and hit.reason == "match"
    assert hit.second_score < hit.score - arc.margin  # second is another person, not obama2
    assert g.search(embeddings["person_b_2"]).person_id == "ardern"
    miss = g.search(embeddings["sunak"])
    assert miss.person_id is None and miss.reason == "below_threshold"
    # A very strict margin turns a clear match into "ambiguous" rather than a guess.
    strict = g.search(embeddings["obama_senate"], margin=hit.score - hit.second_score + 0.01)
    assert strict.person_id is None and strict.reason == "ambiguous"
    assert strict.candidate_id == "obama"


def test_gallery_remove_and_replace_keep_rows_consistent():
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(50, 64)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    g = Gallery(64, threshold=0.9, margin=0.0, capacity=4)
    for i in range(50):
        g.add(f"p{i % 10}", vecs[i])
    assert len(g) == 50 and g.person_count == 10
    assert g.remove("p3") == 5 and "p3" not in g and len(g) == 45
    assert g.search(vecs[3]).person_id is None  # p3's rows are gone
    for i in range(50):
        if i % 10 != 3:
            assert g.search(vecs[i]).person_id == f"p{i % 10}"
    g.replace("p4", vecs[3])
    assert g.search(vecs[3]).person_id == "p4" and g.search(vecs[4]).person_id is None
    m = g.matrix()
    assert m.dtype == np.float32 and m.flags.c_contiguous and m.shape == (41, 64)
    assert g.remove("nobody") == 0
    assert Gallery(64).search(vecs[0]).reason == "empty_gallery"
    with pytest.raises(ValueError):
        g.add("x", np.zeros(64))


# -- enrollment quality gate ----------------------------------------------------------------


def _reason(engine: FaceEngine, img: np.ndarray) -> str | None:
    return engine.analyze_enrollment(encode_jpeg(img)).reason


def test_good_portrait_is_accepted_with_embedding(arc):
    result = arc.analyze_enrollment(photo_bytes("obama"))
    assert result.ok and result.reason is None
    assert result.embedding.shape == (512,)
    assert result.quality.face_px > 150
    result.raise_for_quality()  # no-op when accepted


def test_quality_reasons(arc):
    img = _img(arc, "obama")
    face = arc.detect(img)[0]
    assert _reason(arc, np.full((600, 600, 3), 128, np.uint8)) == "no_face"
    assert _reason(arc, _img(arc, "t1")) == "multiple_faces"
    small = cv2.resize(img, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    assert _reason(arc, small) == "face_too_small"
    assert _reason(arc, cv2.GaussianBlur(img, (0, 0), 6)) == "too_blurry"
    dark = (img.astype(np.float32) * 0.25).astype(np.uint8)
    assert _reason(arc, dark) == "too_dark"
    bright = np.clip(img.astype(np.float32) * 3.0, 0, 255).astype(np.uint8)
    assert _reason(arc, bright) == "too_bright"
    shades = img.copy()
    for x, y in face.landmarks5[:2].astype(int):
        cv2.rectangle(shades, (x - 40, y - 22), (x + 40, y + 22), (20, 20, 20), -1)
    assert _reason(arc, shades) == "eyes_not_visible"
    # A face turned well past the limit (the gdp.jpg speaker, yaw ~ 48 degrees).
    gdp = _img(arc, "gdp")
    speaker = max(arc.detect(gdp), key=lambda f: abs(estimate_pose(f.landmarks5).yaw))
    x1, y1, x2, y2 = (int(v) for v in speaker.bbox)
    pad = int(speaker.width)
    crop = gdp[max(0, y1 - pad) : y2 + pad, max(0, x1 - pad) : x2 + pad]
    crop = cv2.resize(crop, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    assert arc.analyze_enrollment(encode_jpeg(crop)).reason in ("head_turned", "multiple_faces")


def test_refusal_becomes_a_face_engine_error_with_both_languages(arc):
    from api.errors import http_status
    from face_engine.errors import FaceEngineError

    result = arc.analyze_enrollment(encode_jpeg(np.full((300, 300, 3), 90, np.uint8)))
    assert not result.ok and result.message_zh and result.message_en
    with pytest.raises(FaceEngineError) as err:
        result.raise_for_quality()
    assert err.value.code == "face_no_face" and http_status(err.value) == 422


@pytest.mark.parametrize("reason", sorted(REASONS))
def test_every_refusal_code_is_face_prefixed_exactly_once(reason):
    from face_engine.errors import FaceEngineError

    result = EnrollmentAnalysis(QualityReport(reason), message_zh="x", message_en="x")
    with pytest.raises(FaceEngineError) as err:
        result.raise_for_quality()
    code = err.value.code
    assert code.startswith("face_") and not code.startswith("face_face_"), code
    assert code.removeprefix("face_") == reason.removeprefix("face_")


def test_embed_probe_reports_quality(arc):
    emb, q = arc.embed_probe(photo_bytes("obama2"))
    assert emb.shape == (512,) and q.usable
    assert arc.embed_probe(encode_jpeg(np.full((200, 200, 3), 200, np.uint8))) is None


# -- liveness -----------------------------------------------------------------------------------


def test_flipping_an_image_flips_the_yaw_sign(arc):
    img = _img(arc, "obama2")  # head clearly turned
    yaw = estimate_pose(arc.detect(img)[0].landmarks5).yaw
    flipped = estimate_pose(arc.detect(np.ascontiguousarray(img[:, ::-1]))[0].landmarks5).yaw
    assert abs(yaw) > 12 and abs(flipped) > 12 and np.sign(yaw) == -np.sign(flipped)


def _jpeg_frames(*imgs: np.ndarray) -> list[bytes]:
    return [encode_jpeg(np.ascontiguousarray(i)) for i in imgs]


def test_liveness_passes_on_real_turns(arc):
    front, turned = _img(arc, "obama"), _img(arc, "obama2")  # obama2 faces image-left
    frames = _jpeg_frames(front, turned[:, ::-1], turned)
    verdict = arc.check_liveness(frames, ["turn_left", "turn_right"])
    assert verdict.passed, verdict
    assert verdict.actions_done == ["turn_left", "turn_right"]
    # The same frames from a mirrored preview mean the opposite moves.
    assert arc.check_liveness(frames, ["turn_right", "turn_left"], mirrored=True).passed
    # Asked in the other order: the moves happened, but not as asked.
    wrong = arc.check_liveness(frames, ["turn_right", "turn_left"])
    assert not wrong.passed and wrong.reasons == ["action_not_done"]


def test_liveness_passes_on_synthesised_turns(arc):
    img = _img(arc, "obama")
    face = arc.detect(img)[0]
    frames = _jpeg_frames(
        img, face_data.turn_head(img, face, 0.3), img, face_data.turn_head(img, face, -0.3)
    )
    verdict = arc.check_liveness(frames, ["turn_left", "turn_right"])
    assert verdict.passed, verdict
    assert verdict.yaws[1] > 15 > -15 > verdict.yaws[3]


def test_liveness_failures(arc):
    front = _img(arc, "obama")
    still = _jpeg_frames(front, front, front)
    assert arc.check_liveness(still, ["turn_left"]).reasons == ["action_not_done"]
    other = _jpeg_frames(front, _img(arc, "biden")[:, ::-1])
    assert "different_person" in arc.check_liveness(other, ["turn_left"]).reasons
    blank = _jpeg_frames(front, np.full((400, 400, 3), 100, np.uint8))
    assert arc.check_liveness(blank, ["turn_left"]).reasons == ["frame_no_face"]
    group = _jpeg_frames(front, _img(arc, "t1"))
    assert arc.check_liveness(group, ["turn_left"]).reasons == ["frame_multiple_faces"]
    turned = face_data.turn_head(front, arc.detect(front)[0], 0.45)
    late = arc.check_liveness(_jpeg_frames(turned, front), [])
    assert "not_frontal_start" in late.reasons, late
    assert arc.check_liveness(still, ["blink"]).reasons == ["unknown_action"]
    assert arc.check_liveness([], ["turn_left"]).reasons == ["no_frames"]


def test_liveness_reads_nods_and_look_ups_and_refuses_extra_moves(arc):
    img = _img(arc, "obama")
    face = arc.detect(img)[0]
    frames = {a: face_data.act(img, face, a) for a in ("turn_left", "turn_right", "nod", "look_up")}
    asked = ["nod", "turn_right", "look_up"]
    verdict = arc.check_liveness(_jpeg_frames(img, *(frames[a] for a in asked)), asked)
    assert verdict.passed, verdict
    # A recording that runs through every move contains any sequence: it must not pass.
    everything = _jpeg_frames(img, *(frames[a] for a in ("turn_left", "nod", "turn_right")), img)
    everything += _jpeg_frames(frames["look_up"], img)
    for seq in (["turn_left", "nod", "turn_right"], ["nod", "turn_right", "look_up"]):
        v = arc.check_liveness(everything, seq)
        assert not v.passed and v.reasons == ["unexpected_action"], (seq, v)
    missing = arc.check_liveness(_jpeg_frames(img, frames["nod"]), ["nod", "look_up"])
    assert missing.reasons == ["action_not_done"] and missing.actions_done == ["nod"]


def test_challenges_are_drawn_from_36_sequences():
    from domain.faces.service import draw_challenge

    drawn = {tuple(draw_challenge()) for _ in range(3000)}
    assert len(drawn) == 36  # 4 x 3 x 3: one in 36 for a replay, not one in 2
    assert all(len(s) == 3 and s[0] != s[1] and s[1] != s[2] for s in drawn)


async def test_async_wrappers(arc):
    result = await arc.aanalyze_enrollment(photo_bytes("person_b_1"))
    assert result.ok
    verdict = await arc.acheck_liveness(_jpeg_frames(_img(arc, "obama")), [])
    assert verdict.passed


# -- SFace backend, dual mode, model integrity ---------------------------------------------------


def test_sface_backend_matches_and_rejects(sface):
    assert sface.dim == 128
    vec = {}
    for name in ("obama", "obama_senate", "person_b_1", "person_b_2", "sunak", "biden"):
        img = _img(sface, name)
        vec[name] = sface.embed(img, sface.detect(img)[0])
        assert abs(float(np.linalg.norm(vec[name])) - 1) < 1e-4
    assert sface.similarity(vec["obama"], vec["obama_senate"]) >= sface.threshold
    assert sface.similarity(vec["person_b_1"], vec["person_b_2"]) >= sface.threshold
    assert sface.similarity(vec["obama"], vec["sunak"]) < sface.threshold
    assert sface.similarity(vec["person_b_1"], vec["biden"]) < sface.threshold
    assert sface.analyze_enrollment(photo_bytes("person_b_2")).ok
    assert len(sface.detect(_img(sface, "solvay"))) >= 27


def test_sface_fix_removes_unused_inputs():
    import onnx

    _, rec = sface_model_paths()
    fixed = onnx.load_from_string(strip_unused_inputs(rec.read_bytes()))
    assert [i.name for i in fixed.graph.input] == ["data"]


def test_dual_engine_needs_both_backends(arc, sface):
    dual = DualEngine(arc, sface)
    gallery = dual.new_gallery()
    enrolled = dual.analyze_enrollment(photo_bytes("obama"))
    assert enrolled.ok and set(enrolled.embeddings) == {"insightface", "sface"}
    gallery.add("obama", enrolled.embeddings)
    gallery.add("ardern", dual.analyze_enrollment(photo_bytes("person_b_1")).embeddings)
    probe, q = dual.embed_probe(photo_bytes("obama_senate"))
    assert gallery.search(probe).person_id == "obama"
    stranger, _ = dual.embed_probe(photo_bytes("sunak"))
    assert gallery.search(stranger).person_id is None
    # One backend sure, the other pointed elsewhere: refused.
    mixed = {"insightface": probe["insightface"], "sface": stranger["sface"]}
    assert gallery.search(mixed).person_id is None


def test_get_engine_is_cached_per_settings():
    from anxin.settings import Settings

    s = Settings()
    assert get_engine(s) is get_engine(s)
    assert get_engine(s).backend_name == s.face_backend
    hs = Settings(face_high_security=True)
    assert isinstance(get_engine(hs), DualEngine)


def test_sha_mismatch_is_refused(tmp_path):
    det, _ = insightface_model_paths()
    assert verify_model_file(det) == det
    bad = tmp_path / det.name
    shutil.copyfile(det, bad)
    with bad.open("r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        verify_model_file(bad)
    from face_engine.backends import InsightFaceBackend

    with pytest.raises(ModelIntegrityError):
        InsightFaceBackend(bad, insightface_model_paths()[1])
    with pytest.raises(ModelIntegrityError, match="not found"):
        verify_model_file(tmp_path / "w600k_mbf.onnx")
