"""`PseudoLabelled`: a target dataset whose samples carry pseudo labels.

The wrapper is itself a :class:`~domadapt.data.base.DomainDataset`: ``_load(i)`` returns the wrapped
dataset's raw image and the pseudo label, so the training transform (resize, crop, flip, ...) is
applied to both together exactly as for a labelled dataset. Segmentation labels are stored at the
resolution they were generated at and resized nearest-neighbour to the raw image size on load (an
integer upscale, which the training resize undoes exactly when it returns to the generation size).

The DataModule keeps these labels on the target training split (it strips ground truth, never
pseudo labels; see :attr:`PseudoLabelled.pseudo_labelled`), and methods add a cross-entropy on them
with 255 ignored (e.g. :class:`~domadapt.methods.OutputSpaceAdversarial`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from domadapt.data.base import DomainDataset, Transform
from domadapt.io import CorruptSampleError, DataError, read_index_png
from domadapt.pseudo import writer


class PseudoLabelled(DomainDataset):
    """Target dataset + a finished pseudo-label set made for it.

    Args:
        dataset: the target training dataset the labels were generated on (same images, same order).
        pseudo_dir: folder written by :func:`~domadapt.pseudo.generate.generate_pseudo_labels`.
        expect_model_hash: if given, the manifest's ``model.sha256`` must equal it (labels of the model
            this run expects, not of an older one).
        transform: transform applied to image and pseudo label together; default the wrapped
            dataset's (``None`` lets the DataModule set the target training transform).

    Raises (on ``setup()``):
        DataError: missing manifest (unfinished set), manifest of another dataset or model (names
        the manifest field), task mismatch, or a missing label file.
    """

    pseudo_labelled: ClassVar[bool] = True
    """Tells the DataModule not to strip ``mask`` / ``label`` from these samples."""

    def __init__(self, dataset: DomainDataset, pseudo_dir: str | Path, expect_model_hash: str | None = None,
                 transform: Transform | None = None) -> None:
        super().__init__(transform=transform if transform is not None else dataset.transform, with_labels=True,
                         skip_corrupt=dataset.skip_corrupt)
        self.dataset, self.pseudo_dir, self.expect_model_hash = dataset, Path(pseudo_dir), expect_model_hash
        self.task = dataset.task  # type: ignore[misc]
        self.classes = tuple(dataset.classes)
        self.manifest: dict[str, Any] | None = None
        self.names: list[str] = []
        self.labels: np.ndarray | None = None

    def describe(self) -> str:
        return f"PseudoLabelled({self.dataset.describe()}, {self.pseudo_dir})"

    def _index(self) -> list:
        manifest = writer.read_manifest(self.pseudo_dir)
        path = self.pseudo_dir / writer.MANIFEST
        expected = writer.image_list(self.dataset)
        got = manifest.get("images") or {}
        if manifest.get("task") != self.task:
            raise DataError(f"{path}: field `task` is {manifest.get('task')!r} but {self.dataset.describe()} is "
                            f"{self.task!r}")
        if got.get("count") != expected["count"]:
            raise DataError(f"{path}: field `images.count` is {got.get('count')} but {self.dataset.describe()} has "
                            f"{expected['count']} samples; these pseudo labels were made for another dataset/run")
        if got.get("sha256") != expected["sha256"]:
            raise DataError(f"{path}: field `images.sha256` does not match the image list of "
                            f"{self.dataset.describe()} (made for {got.get('dataset')!r}); labels of another run")
        model_hash = (manifest.get("model") or {}).get("sha256")
        if self.expect_model_hash is not None and model_hash != self.expect_model_hash:
            raise DataError(f"{path}: field `model.sha256` is {str(model_hash)[:12]}… but the expected model is "
                            f"{self.expect_model_hash[:12]}…; these pseudo labels come from another model")
        self.manifest = manifest
        self.names, _ = writer.sample_names(self.dataset)
        if self.task == "segmentation":
            missing = [n for n in self.names if not writer.label_path(self.pseudo_dir, n).is_file()]
            if missing:
                raise DataError(f"{writer.label_path(self.pseudo_dir, missing[0])}: pseudo-label file missing "
                                f"({len(missing)} of {len(self.names)} missing); generate the set again")
        else:
            self.labels = writer.read_table(self.pseudo_dir, expected["count"])
        return list(range(expected["count"]))

    def label_file(self, i: int) -> Path:
        """The pseudo-label PNG of sample ``i`` (segmentation), for readers that need the mask only."""
        return writer.label_path(self.pseudo_dir, self.names[i])

    def _load(self, entry: int) -> tuple[np.ndarray, Any]:
        image, _ = self.dataset.load_raw(entry)  # ground truth, if any, is never used
        if self.task != "segmentation":
            return image, int(self.labels[entry])  # type: ignore[index]
        path = writer.label_path(self.pseudo_dir, self.names[entry])
        h, w = image.shape[:2]
        try:
            mask = np.array(read_index_png(path, size=(w, h)))  # nearest to the raw image size; writable copy
        except CorruptSampleError as e:  # a broken label set is never skipped like one bad image
            raise DataError(f"{e}; the pseudo-label set {self.pseudo_dir} is damaged, generate it again") from None
        return image, mask

    @property
    def kept_ratio(self) -> float | None:
        """Fraction of pixels/samples with a label (from the manifest)."""
        return None if self.manifest is None else self.manifest.get("kept_ratio", {}).get("overall")
