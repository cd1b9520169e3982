"""Prompt-injection heuristic scorer against the hand-written eval set: precision, recall, F1, confusion matrix.

    .venv/bin/python bench/injection.py                     # thresholds 0.3 0.5 0.7
    .venv/bin/python bench/injection.py --thresholds 0.4 0.6 --misses
    .venv/bin/python bench/injection.py --data bench/data/injection_holdout.jsonl

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
from collections import Counter
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    parser.add_argument("--data", type=Path, default=DATA, help="a JSONL eval set (default: %(default)s)")
    parser.add_argument("--misses", action="store_true", help="list misclassified rows at the middle threshold")
    args = parser.parse_args()

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
