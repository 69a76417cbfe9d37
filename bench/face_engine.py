"""Face engine benchmark on the offline photos: speed, 1:N search, genuine/impostor scores.

    uv run python bench/face_engine.py [--backends insightface,sface]

* 1:N search: a gallery of 10,000 / 100,000 noise rows, each its own person (random unit
  vectors: we hold no 100,000 photos), plus the first photo of each labelled person;
  every other photo of them is a probe. rank-1 = the share of probes whose best-scoring
  person is the right one (closed set); open-set hits = found at the threshold and margin.
* FAR / FRR rest on few genuine pairs (the count is printed with them): the photos are
  what a package may ship. `tuned_threshold` is chosen on the tuning photos (TUNE) only,
  and `tuned_far` / `tuned_frr` are reported on the pairs among the other photos only,
  so the figure is not measured on what chose it.

Readable figures per backend, then ONE JSON line last (the configured backend's numbers
at the top level, every backend under "backends").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import anxin  # noqa: E402, F401 - first: it sets the server's BLAS threads before numpy loads

# isort: split
import numpy as np

# The repository, not bench/, first on the path: this file would shadow the package.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from face_engine import FaceEngine, Gallery  # noqa: E402
from tests import face_data  # noqa: E402

# Photos the threshold is tuned on; FAR/FRR at the tuned threshold are reported on the rest.
TUNE = {"obama", "obama2", "obama3", "person_a_1", "person_b_1", "biden", "gauss", "solvay"}


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3)


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, (time.perf_counter() - t0) * 1000.0


def bench_backend(name: str, data_dir: Path) -> dict:
    engine = FaceEngine(name, data_dir=data_dir)
    _, load_ms = timed(engine.warmup)
    labelled = [(who, n) for who, names in face_data.IDENTITIES.items() for n in names]
    images = {n: engine.decode(face_data.photo_bytes(n)) for _, n in labelled}
    images.update({g: engine.decode(face_data.photo_bytes(g)) for g in face_data.GROUPS})

    det_ms, emb_ms = [], []
    faces = {}
    for _ in range(3):
        for n, img in images.items():
            found, ms = timed(engine.detect, img)
            det_ms.append(ms)
            faces[n] = found
    emb: dict[str, np.ndarray] = {}
    for _, n in labelled:
        for _ in range(3):
            vec, ms = timed(engine.embed, images[n], faces[n][0])
            emb_ms.append(ms)
        emb[n] = vec
    # Every face of the group photos is one more distinct person (impostors only).
    strangers = [engine.embed(images[g], f) for g in face_data.GROUPS for f in faces[g]]
    tags = [g for g in face_data.GROUPS for _ in faces[g]] + [n for _, n in labelled]

    genuine_named = [
        (a, b, engine.similarity(emb[a], emb[b])) for a, b in face_data.genuine_pairs()
    ]
    genuine = [x for _, _, x in genuine_named]
    labelled_impostors = [engine.similarity(emb[a], emb[b]) for a, b in face_data.impostor_pairs()]
    others = np.stack(strangers + [emb[n] for _, n in labelled])
    cross = others @ others.T
    iu = np.triu_indices(len(others), 1)
    n_group = len(strangers)
    # Pairs within the labelled block are covered (with identities) above.
    mask = ~((iu[0] >= n_group) & (iu[1] >= n_group))
    mask &= np.array(
        [
            (tags[a], tags[b]) not in face_data.OVERLAPS
            and (tags[b], tags[a]) not in face_data.OVERLAPS
            for a, b in zip(*iu, strict=True)
        ]
    )
    impostors = labelled_impostors + cross[iu][mask].tolist()

    thr, margin = engine.threshold, engine.margin
    far = sum(s >= thr for s in impostors) / len(impostors)
    frr = sum(s < thr for s in genuine) / len(genuine)
    sweep = {
        f"{t:.2f}": {
            "far": round(sum(s >= t for s in impostors) / len(impostors), 5),
            "frr": round(sum(s < t for s in genuine) / len(genuine), 4),
        }
        for t in (0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60)
    }

    # Threshold tuned on TUNE photos only (lowest FAR+FRR there), reported on the rest.
    who_of = {n: who for who, names in face_data.IDENTITIES.items() for n in names}
    person = [f"face{i}" if i < n_group else who_of[tags[i]] for i in range(len(tags))]

    def impostor_scores(keep: Any) -> list[float]:
        return [
            float(cross[a, b])
            for a, b in zip(*iu, strict=True)
            if person[a] != person[b]
            and keep(tags[a])
            and keep(tags[b])
            and (tags[a], tags[b]) not in face_data.OVERLAPS
            and (tags[b], tags[a]) not in face_data.OVERLAPS
        ]

    pairs_tune_imp = impostor_scores(lambda t: t in TUNE)
    pairs_rest_imp = impostor_scores(lambda t: t not in TUNE)
    tune_gen = [x for a, b, x in genuine_named if a in TUNE and b in TUNE]
    rest_gen = [x for a, b, x in genuine_named if a not in TUNE and b not in TUNE]

    def rates(t: float, gen: list[float], imp: list[float]) -> tuple[float, float]:
        far_t = sum(x >= t for x in imp) / max(1, len(imp))
        frr_t = sum(x < t for x in gen) / max(1, len(gen))
        return far_t, frr_t

    grid = [round(0.2 + 0.01 * i, 2) for i in range(51)]
    tuned = min(grid, key=lambda t: (sum(rates(t, tune_gen, pairs_tune_imp)), -t))
    tuned_far, tuned_frr = rates(tuned, rest_gen, pairs_rest_imp)

    # 1:N search: noise rows (each its own person) plus the first photo of each person;
    # the other photos of them are the probes.
    rng = np.random.default_rng(7)
    search = {}
    probes = [(who, n) for who, names in face_data.IDENTITIES.items() for n in names[1:]]
    rank1: dict[int, float] = {}
    open_hits: dict[int, float] = {}
    for size in (10_000, 100_000):
        noise = rng.standard_normal((size, engine.dim), dtype=np.float32)
        gallery = Gallery(engine.dim, thr, margin, capacity=size + 64)
        for i in range(size):
            gallery.add(f"noise-{i}", noise[i])
        for who, names in face_data.IDENTITIES.items():
            gallery.add(who, emb[names[0]])
        times = []
        closed = found = 0
        for _ in range(5):
            for _who, n in probes:
                result, ms = timed(gallery.search, emb[n])
                times.append(ms)
        for who, n in probes:
            scores = gallery.matrix() @ (emb[n] / np.linalg.norm(emb[n]))
            closed += gallery._owners[int(np.argmax(scores))] == who  # noqa: SLF001
            found += gallery.search(emb[n]).person_id == who
        rank1[size] = round(closed / len(probes), 4)
        open_hits[size] = round(found / len(probes), 4)
        search[size] = (pct(times, 50), pct(times, 95))

    g_arr, i_arr = np.array(genuine), np.array(impostors)
    print(
        f"== {name}  (dim {engine.dim}, threshold {thr}, margin {margin}, "
        f"load+warmup {load_ms:.0f} ms)"
    )
    print(
        f"detection        p50 {pct(det_ms, 50):7.2f} ms   p95 {pct(det_ms, 95):7.2f} ms  "
        f"({len(det_ms)} runs on {len(images)} photos, input 640)"
    )
    print(f"align+embedding  p50 {pct(emb_ms, 50):7.2f} ms   p95 {pct(emb_ms, 95):7.2f} ms")
    for size, (p50, p95) in search.items():
        print(
            f"1:N search {size:>7,} people  p50 {p50:7.3f} ms   p95 {p95:7.3f} ms   rank-1 "
            f"{rank1[size]:.1%}, open-set hits {open_hits[size]:.1%} of {len(probes)} probes"
        )
    print(
        f"genuine pairs  {len(g_arr):5d}: min {g_arr.min():.3f}  mean {g_arr.mean():.3f}  "
        f"max {g_arr.max():.3f}"
    )
    print(
        f"impostor pairs {len(i_arr):5d}: min {i_arr.min():.3f}  mean {i_arr.mean():.3f}  "
        f"p99.9 {np.percentile(i_arr, 99.9):.3f}  max {i_arr.max():.3f}"
    )
    print(
        f"at threshold {thr}: FAR {far:.5f} ({int(far * len(i_arr))} false accepts)  "
        f"FRR {frr:.4f} ({int(round(frr * len(g_arr)))} false rejects)"
    )
    print(
        f"threshold tuned on {len(tune_gen)} genuine / {len(pairs_tune_imp)} impostor pairs of "
        f"the tuning photos: {tuned}; on the other photos ({len(rest_gen)} genuine / "
        f"{len(pairs_rest_imp)} impostor pairs): FAR {tuned_far:.5f}  FRR {tuned_frr:.4f}"
    )
    print(
        "threshold sweep (FAR / FRR): "
        + "  ".join(f"{t}: {v['far']:.4f}/{v['frr']:.3f}" for t, v in sweep.items())
    )
    return {
        "dim": engine.dim,
        "threshold": thr,
        "detect_ms_p50": pct(det_ms, 50),
        "detect_ms_p95": pct(det_ms, 95),
        "embed_ms_p50": pct(emb_ms, 50),
        "search_ms_p50_10k": search[10_000][0],
        "search_ms_p50_100k": search[100_000][0],
        "rank1_10k": rank1[10_000],
        "rank1_100k": rank1[100_000],
        "open_set_hits_10k": open_hits[10_000],
        "rank1_probes": len(probes),
        "tuned_threshold": tuned,
        "tuned_genuine_pairs": len(tune_gen),
        "tuned_far": round(tuned_far, 6),
        "tuned_frr": round(tuned_frr, 4),
        "reported_genuine_pairs": len(rest_gen),
        "reported_impostor_pairs": len(pairs_rest_imp),
        "genuine_pairs": len(g_arr),
        "impostor_pairs": len(i_arr),
        "genuine_min": round(float(g_arr.min()), 4),
        "impostor_max": round(float(i_arr.max()), 4),
        "far": round(far, 6),
        "frr": round(frr, 4),
        "sweep": sweep,
    }


def main() -> None:
    from anxin.settings import get_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="insightface,sface")
    args = parser.parse_args()
    settings = get_settings()
    face_data.ensure_photos()
    data_dir = Path(settings.data_dir)
    results = {b: bench_backend(b, data_dir) for b in args.backends.split(",")}
    primary = settings.face_backend if settings.face_backend in results else next(iter(results))
    summary = {
        "backend": primary,
        **{k: v for k, v in results[primary].items() if k != "sweep"},
        "backends": {b: {k: v for k, v in r.items() if k != "sweep"} for b, r in results.items()},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
