"""The evaluation report: commonest mistakes and the plain-text report the command line prints."""

from __future__ import annotations

import numpy as np

from engine.evaluation import EvaluationResult, confusion_matrix, text_report


def result_of(labels: list[int], predictions: list[int], confidence: list[float], classes: int = 3) -> EvaluationResult:
    labels_np, predictions_np = np.array(labels), np.array(predictions)
    probabilities = np.full((len(labels), classes), 0.0, dtype=np.float32)
    probabilities[np.arange(len(labels)), predictions_np] = confidence
    matrix = confusion_matrix(labels_np, predictions_np, classes)
    totals = matrix.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(totals > 0, np.diag(matrix) / totals, np.nan)
    return EvaluationResult(
        float((labels_np == predictions_np).mean()), 0.5, per_class, matrix, predictions_np, probabilities, labels_np
    )


# sample:      0    1    2    3    4    5    6    7
LABELS = [0, 0, 0, 1, 1, 1, 0, 1]
PREDICTED = [0, 1, 1, 1, 0, 1, 1, 0]
CONFIDENCE = [0.9, 0.6, 0.8, 0.9, 0.7, 0.9, 0.99, 0.5]


def test_most_confused_counts_each_mistake_most_frequent_first() -> None:
    result = result_of(LABELS, PREDICTED, CONFIDENCE)
    assert result.most_confused() == [(0, 1, 3), (1, 0, 2)]  # class 2 has no samples: no pairs of it
    assert result.most_confused(1) == [(0, 1, 3)]
    assert result_of([0, 1], [0, 1], [1.0, 1.0]).most_confused() == []


def test_text_report_has_the_matrix_and_the_mistakes_with_their_images() -> None:
    names = ("zero", "one", "a long class name")
    report = text_report(result_of(LABELS, PREDICTED, CONFIDENCE), names, examples=2)
    lines = report.splitlines()
    assert lines[0] == "accuracy 37.50%, loss 0.5000 (5 of 8 wrong)"
    assert "               zero  25.00% of 4" in lines
    assert "  a long class name  no test images" in lines
    header = lines[lines.index("confusion matrix (rows: true class, columns: predicted):") + 1]
    assert header == " " * 19 + " zero  one a l."  # long names abbreviated to the column width
    assert "               zero    1    3    0" in lines
    assert "                one    2    2    0" in lines
    # most confident first: samples 6 (0.99), 2 (0.8), then 1 (0.6) is left out
    assert "  zero read as one: 3 (#6, #2, ...)" in lines
    assert "  one read as zero: 2 (#4, #7)" in lines


def test_text_report_of_a_perfect_model_lists_no_mistakes() -> None:
    report = text_report(result_of([0, 1, 2], [0, 1, 2], [1.0, 1.0, 1.0]), ("0", "1", "2"))
    assert "accuracy 100.00%" in report and "mistakes" not in report
