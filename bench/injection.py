"""Prompt-injection scorers against labelled sets: precision, recall, F1, confusion matrix, latency.

    .venv/bin/python bench/injection.py                     # rules only, eval set, thresholds 0.3 0.5 0.7
    .venv/bin/python bench/injection.py --thresholds 0.4 0.6 --misses
    .venv/bin/python bench/injection.py --data bench/data/injection_holdout.jsonl
    .venv/bin/python bench/injection.py --compare           # rules, learned, combined; both sets + validation

`--compare` needs the `ml` extra (and, for the learned layer's own validation split, the training packages named
in bench/train_injection.py). Scorers: `rules` = `injection.score`, `learned` = `learned.Classifier` (max over
windows), `max` = max(rules, learned), `noisy-or` = 1 - (1 - rules)(1 - learned). Latency is per text, one call
per text, on one core (onnxruntime runs one thread), after a warm-up.

Data: `bench/data/injection_eval.jsonl`, written by hand in this repository for this purpose (CC0: no rights
reserved), one `{"text", "label": "injection"|"benign", "kind"}` per line. The encoded rows (base64, leetspeak,
Unicode tags, zero-width, homoglyphs) are mechanical encodings of hand-written injection rows. The same
person wrote the set and the rules, so these numbers are optimistic: treat them as a regression baseline, not
as an estimate of real-world accuracy.

`bench/data/injection_holdout.jsonl` (40 rows, same provenance and licence) was written after the rules were
last changed and has never been used to change them: its numbers are the honest ones. Keep it that way (a
rule change motivated by a holdout miss makes a new holdout necessary).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from portico.inspection.injection import score

DATA = Path(__file__).resolve().parent / "data" / "injection_eval.jsonl"


@dataclass(frozen=True)
class Metrics:
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def metrics(labels: list[bool], scores: list[float], threshold: float) -> Metrics:
    """Confusion counts for `score >= threshold` predicting `label` (True = injection)."""
    if len(labels) != len(scores):
        raise ValueError("labels and scores differ in length")
    counts = Counter((label, s >= threshold) for label, s in zip(labels, scores, strict=True))
    return Metrics(tp=counts[True, True], fp=counts[False, True], tn=counts[False, False], fn=counts[True, False])


def load(path: Path = DATA) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        if row["label"] not in ("injection", "benign"):
            raise ValueError(f"bad label {row['label']!r}")
    return rows


def combine_max(rules: float, learned: float) -> float:
    return max(rules, learned)


def combine_noisy_or(rules: float, learned: float) -> float:
    return 1.0 - (1.0 - rules) * (1.0 - learned)


def table(title: str, labels: list[bool], by_scorer: dict[str, list[float]], thresholds: list[float]) -> None:
    print(f"\n{title}: {len(labels)} rows, {sum(labels)} injection, {len(labels) - sum(labels)} benign")
    print(
        f"{'scorer':<9} {'threshold':>9}  {'precision':>9}  {'recall':>6}  {'F1':>5}"
        f"  {'TP':>4} {'FP':>4} {'TN':>4} {'FN':>4}"
    )
    for name, scores in by_scorer.items():
        for t in thresholds:
            m = metrics(labels, scores, t)
            print(
                f"{name:<9} {t:>9.2f}  {m.precision:>9.3f}  {m.recall:>6.3f}  {m.f1:>5.3f}"
                f"  {m.tp:>4} {m.fp:>4} {m.tn:>4} {m.fn:>4}"
            )


def latency_ms(fn: Callable[[str], object], texts: list[str]) -> tuple[float, float]:
    """p50 and p95 of one call per text, in milliseconds, after one warm-up pass over the first texts."""
    for text in texts[:10]:
        fn(text)
    samples = []
    for text in texts:
        started = time.perf_counter()
        fn(text)
        samples.append((time.perf_counter() - started) * 1000)
    quantiles = statistics.quantiles(samples, n=20)
    return statistics.median(samples), quantiles[18]


def compare(thresholds: list[float], validation: bool) -> None:
    """Rules, learned layer and both combinations on both sets, the learned layer's validation split, latency."""
    from portico.inspection.learned import load_classifier

    classifier = load_classifier()
    if classifier is None:
        raise SystemExit("the learned layer cannot load here (see the log line above): install portico-mcp[ml]")
    print(f"learned layer: {classifier.name} {classifier.version}")
    print("combined: max = max(rules, learned); noisy-or = 1 - (1 - rules) * (1 - learned)")

    sets: list[tuple[str, list[str], list[bool]]] = []
    for path in (DATA, DATA.with_name("injection_holdout.jsonl")):
        rows = load(path)
        sets.append((path.name, [r["text"] for r in rows], [r["label"] == "injection" for r in rows]))
    if validation:
        try:
            try:
                from bench.train_injection import CACHE, check_versions, prepare
            except ModuleNotFoundError:  # run as a script: bench/ itself is on sys.path
                from train_injection import CACHE, check_versions, prepare  # type: ignore[import-not-found,no-redef]
        except ImportError as exc:
            print(f"\n(validation split skipped: {exc})")
        else:
            data = prepare(classifier.embedder, check_versions(), CACHE)
            rows_val = data.validation
            sets.append(
                (
                    "learned layer's validation split (bench/train_injection.py)",
                    [r.text for r in rows_val],
                    [r.label == 1 for r in rows_val],
                )
            )

    for title, texts, labels in sets:
        rules = [score(t).value for t in texts]
        learned = classifier.probabilities(texts)
        by_scorer = {
            "rules": rules,
            "learned": learned,
            "max": [combine_max(a, b) for a, b in zip(rules, learned, strict=True)],
            "noisy-or": [combine_noisy_or(a, b) for a, b in zip(rules, learned, strict=True)],
        }
        table(title, labels, by_scorer, thresholds)

    texts = sets[0][1] + sets[1][1]
    median_chars = statistics.median(len(t) for t in texts)
    print(f"\nlatency per text, one call each, {len(texts)} texts of the two sets (median {median_chars:.0f} chars)")
    for name, fn in (("rules", score), ("learned", lambda t: classifier.probabilities([t]))):
        p50, p95 = latency_ms(fn, texts)
        print(f"  {name:<8} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms")
    sizes = (500, 2000, 8000, 32000)
    base = " ".join(t for t in sets[0][1] if len(t) > 40)
    print("learned layer by text size (windows of 128 tokens every 96, at most 16 per text):")
    for size in sizes:
        text = (base * (size // len(base) + 1))[:size]
        windows = len(classifier.embedder.windows(text))
        p50, p95 = latency_ms(lambda t: classifier.probabilities([t]), [text] * 10)
        print(f"  {size:>6} chars  {windows:>3} windows  p50 {p50:8.1f} ms  p95 {p95:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    parser.add_argument("--data", type=Path, default=DATA, help="a JSONL eval set (default: %(default)s)")
    parser.add_argument("--misses", action="store_true", help="list misclassified rows at the middle threshold")
    parser.add_argument("--compare", action="store_true", help="rules, learned and combined on every set, latency")
    parser.add_argument("--no-validation", action="store_true", help="with --compare: skip the validation split")
    args = parser.parse_args()
    if args.compare:
        compare(args.thresholds, validation=not args.no_validation)
        return

    rows = load(args.data)
    labels = [row["label"] == "injection" for row in rows]
    scores = [score(row["text"]).value for row in rows]
    print(f"{args.data.name}: {len(rows)} rows, {sum(labels)} injection, {len(rows) - sum(labels)} benign")
    print(f"{'threshold':>9}  {'precision':>9}  {'recall':>6}  {'F1':>5}  {'TP':>4} {'FP':>4} {'TN':>4} {'FN':>4}")
    for t in args.thresholds:
        m = metrics(labels, scores, t)
        print(
            f"{t:>9.2f}  {m.precision:>9.3f}  {m.recall:>6.3f}  {m.f1:>5.3f}  {m.tp:>4} {m.fp:>4} {m.tn:>4} {m.fn:>4}"
        )

    mid = sorted(args.thresholds)[len(args.thresholds) // 2]
    m = metrics(labels, scores, mid)
    print(f"\nconfusion matrix at {mid:.2f} (rows: actual, columns: predicted)")
    print(f"{'':>18}{'injection':>10}{'benign':>8}")
    print(f"{'actual injection':>18}{m.tp:>10}{m.fn:>8}")
    print(f"{'actual benign':>18}{m.fp:>10}{m.tn:>8}")

    print(f"\nrecall by kind at {mid:.2f} (injection rows) / false positives by kind (benign rows)")
    by_kind: dict[tuple[str, str], list[bool]] = {}
    for row, s in zip(rows, scores, strict=True):
        by_kind.setdefault((row["label"], row["kind"]), []).append(s >= mid)
    for (label, kind), hits in sorted(by_kind.items()):
        print(f"  {label:<9} {kind:<18} {sum(hits):>3}/{len(hits):<3} flagged")

    if args.misses:
        print(f"\nmisclassified at {mid:.2f}:")
        for row, s, label in zip(rows, scores, labels, strict=True):
            if (s >= mid) != label:
                print(f"  [{row['label']}/{row['kind']}] {s:.2f} {row['text'][:100]!r} {score(row['text']).signals}")


if __name__ == "__main__":
    main()
