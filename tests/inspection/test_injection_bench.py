"""The injection benchmark's metrics and its hand-written eval set."""

from __future__ import annotations

import pytest

from bench.injection import DATA, load, metrics


def test_metrics_counts_confusion_at_threshold() -> None:
    labels = [True, True, True, False, False, False]
    scores = [0.9, 0.5, 0.2, 0.6, 0.1, 0.49]
    m = metrics(labels, scores, 0.5)
    assert (m.tp, m.fp, m.tn, m.fn) == (2, 1, 2, 1)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(2 / 3)


def test_metrics_f1_is_harmonic_mean() -> None:
    m = metrics([True] * 4 + [False] * 4, [1, 1, 1, 0, 1, 0, 0, 0], 0.5)
    assert (m.precision, m.recall) == (0.75, 0.75)
    m = metrics([True, True, False, False], [1, 0, 0, 0], 0.5)
    assert (m.precision, m.recall) == (1.0, 0.5)
    assert m.f1 == pytest.approx(2 / 3)


def test_metrics_without_positive_predictions_are_zero_not_an_error() -> None:
    m = metrics([True, False], [0.0, 0.0], 0.5)
    assert (m.precision, m.recall, m.f1) == (0.0, 0.0, 0.0)


def test_metrics_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="length"):
        metrics([True], [0.1, 0.2], 0.5)


def test_eval_set_is_large_balanced_and_multilingual() -> None:
    rows = load()
    kinds = {row["kind"] for row in rows}
    assert len(rows) >= 200
    assert {row["label"] for row in rows} == {"injection", "benign"}
    assert {"de", "fr", "es", "encoded_base64", "encoded_leet", "unicode_tags", "tool_result_email"} <= kinds
    assert len({row["text"] for row in rows}) == len(rows)


def test_holdout_set_loads_with_valid_labels() -> None:
    rows = load(DATA.with_name("injection_holdout.jsonl"))
    assert len(rows) >= 40
    assert {row["label"] for row in rows} == {"injection", "benign"}
