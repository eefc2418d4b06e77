"""domadapt.evaluation: confusion-matrix metrics, full-resolution inference, reports and plots."""

from domadapt.evaluation.inference import class_probabilities, native_resolution, sliding_window_logits
from domadapt.evaluation.metrics import (
    ConfusionMatrix,
    MetricSet,
    accuracy,
    confusion_matrix_counts,
    iou_per_class,
    mean_class_accuracy,
    miou,
    pixel_accuracy,
)
from domadapt.evaluation.reports import (
    format_table,
    plot_confusion_matrix,
    plot_per_class_iou,
    plot_predictions,
    write_metrics,
)

__all__ = [
    "ConfusionMatrix",
    "MetricSet",
    "accuracy",
    "confusion_matrix_counts",
    "format_table",
    "class_probabilities",
    "native_resolution",
    "iou_per_class",
    "mean_class_accuracy",
    "miou",
    "pixel_accuracy",
    "plot_confusion_matrix",
    "plot_per_class_iou",
    "plot_predictions",
    "sliding_window_logits",
    "write_metrics",
]
