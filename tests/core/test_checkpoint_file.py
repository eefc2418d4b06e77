"""`read_checkpoint`: a real Lightning checkpoint reads with weights_only=True; other pickled objects only when
trusted; missing and damaged files are one-line errors naming the file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from domadapt.checkpoint_file import read_checkpoint
from domadapt.checkpointing import RandomState


class _Tiny(pl.LightningModule):
    def __init__(self, lr: float = 0.1, root: Path = Path("runs/a"), protocols: tuple[str, ...] = ("19",)) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(3, 2)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).square().mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


class _Opaque:
    pass


@pytest.fixture(scope="module")
def lightning_ckpt(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ckpt")
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[RandomState()],
                         default_root_dir=root)
    trainer.fit(_Tiny(), DataLoader(TensorDataset(torch.randn(4, 3)), batch_size=2))
    trainer.save_checkpoint(root / "run.ckpt")
    return root / "run.ckpt"


def test_a_lightning_checkpoint_reads_without_unpickling(lightning_ckpt):
    got = read_checkpoint(lightning_ckpt)  # trusted=False: weights_only=True, no fallback
    want = torch.load(lightning_ckpt, map_location="cpu", weights_only=False)
    assert got.keys() == want.keys()
    assert got["hyper_parameters"] == want["hyper_parameters"] == {"lr": 0.1, "root": Path("runs/a"),
                                                                   "protocols": ("19",)}
    assert got["state_dict"].keys() == want["state_dict"].keys()
    assert all(torch.equal(got["state_dict"][k], v) for k, v in want["state_dict"].items())
    assert got["optimizer_states"][0]["state"][0]["momentum_buffer"].shape == (2, 3)


def test_other_objects_load_only_when_trusted(tmp_path):
    path = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "obj": _Opaque()}, path)
    refused = re.escape(f"{path}: could not read checkpoint (") + ".*Unsupported global.*_Opaque"
    with pytest.raises(ValueError, match=refused) as err:
        read_checkpoint(path)
    assert "\n" not in str(err.value)
    got = read_checkpoint(path, trusted=True)
    assert isinstance(got["obj"], _Opaque) and torch.equal(got["state_dict"]["w"], torch.ones(2))


def test_missing_and_truncated_files_are_one_line_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(str(tmp_path / 'absent.pt'))}: weights not found$"):
        read_checkpoint(tmp_path / "absent.pt", what="weights")
    whole = tmp_path / "whole.ckpt"
    torch.save({"w": torch.arange(1000.0)}, whole)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    for trusted in (False, True):
        with pytest.raises(ValueError, match="^" + re.escape(f"{cut}: could not read checkpoint (")) as err:
            read_checkpoint(cut, trusted=trusted)
        assert "\n" not in str(err.value)


def test_the_caller_chooses_the_exception(tmp_path):
    class Mine(ValueError):
        pass

    with pytest.raises(Mine, match="checkpoint not found"):
        read_checkpoint(tmp_path / "absent.ckpt", error=Mine)
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(Mine, match="could not read checkpoint"):
        read_checkpoint(tmp_path / "junk.ckpt", error=Mine)


def test_safetensors(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.arange(6.0).reshape(2, 3)}, str(tmp_path / "w.safetensors"))
    assert torch.equal(read_checkpoint(tmp_path / "w.safetensors")["w"], torch.arange(6.0).reshape(2, 3))
