"""`Translation`: the CycleGAN translation stage of BDL (Li et al., CVPR 2019; METHODS.md §1.3(c), §1.4).

A = source (e.g. GTA5), B = target (e.g. Cityscapes). ``G_A: A -> B`` (``g_a``), ``G_B: B -> A``
(``g_b``); ``D_A`` (``d_a``) judges B-domain images, ``D_B`` (``d_b``) A-domain ones. One training
iteration, in the *code form* that produced BDL's released translations::

    fake_B = G_A(A); rec_A = G_B(fake_B); fake_A = G_B(B); rec_B = G_A(fake_A)
    L_G = λ_gan [MSE(D_A(fake_B), 1) + MSE(D_B(fake_A), 1)]                  # LSGAN
        + λ_cyc [|rec_A - A|_1 + |rec_B - B|_1]                               # cycle, λ_cyc = 10
        + λ_idt λ_cyc [|G_A(B) - B|_1 + |G_B(A) - A|_1]                       # identity, 0.5 x 10
        + λ_per [sem(fake_B, A) + sem(fake_A, B)]                             # perceptual, 0.1
        + λ_per_recon [sem(rec_A, A) + sem(rec_B, B)]                         # 10
    L_D = ½[MSE(D_A(B), 1) + MSE(D_A(pool(fake_B)), 0)] + ½[MSE(D_B(A), 1) + MSE(D_B(pool(fake_A)), 0)]

``sem`` is :class:`~domadapt.models.translation.SemanticPerceptualLoss` on a frozen segmentation
network (off when ``perceptual_net`` is ``None``). The discriminators are frozen during the
generator step; the generator step comes first and the D-step trains on the (pooled, detached)
fakes of that step. One Adam (lr 2e-4, β1 0.5) for both generators, one for both discriminators;
learning rate constant for the first ``decay_start`` of training, then linearly to 0
(:func:`constant_then_linear`, a pure function of progress; CycleGAN decays per epoch).

Batches are the ``{"source": {"image"}, "target": {"image"}}`` batches of
:class:`~domadapt.data.DomainAdaptationDataModule`, labels ignored; images normalised to
``[-1, 1]`` (``Augment(mean=(0.5,)*3, std=(0.5,)*3)``; other normalisations are converted with
``input_mean``/``input_std``). Lightning counts both optimiser steps: ``max_steps`` = 2 × iterations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from domadapt.methods.base import TrainingProgress, datamodule_of
from domadapt.methods.training_terms import TrainingTerms
from domadapt import schedules
from domadapt.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from domadapt.io import write_png
from domadapt.models.translation import (
    ImagePool,
    PatchDiscriminator,
    ResnetGenerator,
    SemanticPerceptualLoss,
    load_network_checkpoint,
)


def constant_then_linear(p: float, decay_start: float = 0.5) -> float:
    """Learning-rate factor: 1 until progress ``decay_start``, then linearly to 0 at ``p = 1``."""
    p = min(max(p, 0.0), 1.0)
    if p <= decay_start or decay_start >= 1.0:
        return 1.0
    return (1.0 - p) / (1.0 - decay_start)


def lsgan(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """LSGAN objective ``mean((pred - t)^2)`` with target ``t`` = 1 (real) or 0 (fake)."""
    return F.mse_loss(pred, torch.full_like(pred, 1.0 if real else 0.0))


def generator_terms(real_a: torch.Tensor, real_b: torch.Tensor, g_a: nn.Module, g_b: nn.Module, d_a: nn.Module,
                    d_b: nn.Module, perceptual: SemanticPerceptualLoss | None = None,
                    identity: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The unweighted terms of the generator objective and the images they were computed on.

    Returns:
        ``terms``: ``gan_a`` = MSE(D_A(fake_B), 1), ``gan_b`` = MSE(D_B(fake_A), 1), ``cycle_a`` =
        ``|rec_A - A|_1``, ``cycle_b``, (with ``identity``) ``idt_a`` = ``|G_A(B) - B|_1``, ``idt_b`` =
        ``|G_B(A) - A|_1``, (with ``perceptual``) ``per_a`` = sem(fake_B, A), ``per_b`` =
        sem(fake_A, B), ``per_recon_a`` = sem(rec_A, A), ``per_recon_b`` = sem(rec_B, B);
        ``images``: ``fake_a``, ``fake_b``, ``rec_a``, ``rec_b``.
    """
    fake_b = g_a(real_a)  # (N, 3, H, W) A -> B
    rec_a = g_b(fake_b)
    fake_a = g_b(real_b)
    rec_b = g_a(fake_a)
    terms = {"gan_a": lsgan(d_a(fake_b), True), "gan_b": lsgan(d_b(fake_a), True),
             "cycle_a": F.l1_loss(rec_a, real_a), "cycle_b": F.l1_loss(rec_b, real_b)}
    if identity:
        terms["idt_a"] = F.l1_loss(g_a(real_b), real_b)
        terms["idt_b"] = F.l1_loss(g_b(real_a), real_a)
    if perceptual is not None:
        with torch.no_grad():  # the real images do not depend on any trained parameter
            ref_a, ref_b = perceptual.embed(real_a), perceptual.embed(real_b)
        terms["per_a"] = perceptual.distance(perceptual.embed(fake_b), ref_a)
        terms["per_b"] = perceptual.distance(perceptual.embed(fake_a), ref_b)
        terms["per_recon_a"] = perceptual.distance(perceptual.embed(rec_a), ref_a)
        terms["per_recon_b"] = perceptual.distance(perceptual.embed(rec_b), ref_b)
    return terms, {"fake_a": fake_a, "fake_b": fake_b, "rec_a": rec_a, "rec_b": rec_b}


def discriminator_terms(real_a: torch.Tensor, real_b: torch.Tensor, fake_a: torch.Tensor, fake_b: torch.Tensor,
                        d_a: nn.Module, d_b: nn.Module) -> dict[str, torch.Tensor]:
    """``D_a = ½[MSE(D_A(B), 1) + MSE(D_A(fake_B), 0)]`` and ``D_b`` likewise (fakes detached here)."""
    return {"D_a": 0.5 * (lsgan(d_a(real_b), True) + lsgan(d_a(fake_b.detach()), False)),
            "D_b": 0.5 * (lsgan(d_b(real_a), True) + lsgan(d_b(fake_a.detach()), False))}


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """``(3, H, W)`` in ``[-1, 1]`` -> ``(H, W, 3)`` uint8."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


class Translation(TrainingTerms, TrainingProgress, pl.LightningModule):
    """CycleGAN with BDL's perceptual loss, trained source (A) <-> target (B).

    Args:
        ngf: generator width (64); ``n_blocks``: residual blocks (9).
        ndf: discriminator width (64); ``n_layers``: PatchGAN stride-2 layers (3 = 70x70).
        pool_size: image-pool size per discriminator (50; 0 = no pool).
        lr: Adam learning rate of both optimisers; ``betas``: Adam betas ((0.5, 0.999)).
        decay_start: progress after which the learning rate decays linearly to 0 (0.5 = CycleGAN's
            10 + 10 epochs).
        schedule_horizon: iterations over which progress runs from 0 to 1; ``None`` = the length of
            training (``max_steps / 2`` or ``max_epochs`` × batches per epoch, whichever is smaller).
        lambda_gan: weight of the LSGAN generator terms (1).
        lambda_cycle: cycle weight ``λ_A = λ_B`` (10).
        lambda_identity: identity weight relative to ``lambda_cycle`` (0.5 -> 5); 0 skips it.
        perceptual_net: frozen segmentation network for the perceptual loss, or ``None`` (off).
        perceptual_weights: local checkpoint loaded into ``perceptual_net`` (a state dict of it, or a
            Lightning checkpoint of a domadapt method: ``net.``-prefixed keys); ``None`` keeps its weights.
        perceptual_form: ``"code"`` (MSE of instance-normalised logits, BDL's code) or ``"paper"``
            (L1 of raw outputs, BDL eq. 2); see :class:`SemanticPerceptualLoss`.
        lambda_per: weight of ``sem(fake, real)`` (0.1); ``lambda_per_recon``: of ``sem(rec, real)`` (10).
        perceptual_mean: ``perceptual_net``'s input normalisation mean (``[0, 1]`` units); ``perceptual_std``: std.
        perceptual_aspp_branches: keep only the first ``n`` ASPP branches of a DeepLabV2 perceptual
            net; 2 reproduces the released BDL code, whose perceptual DeepLab returns inside its ASPP
            loop (METHODS.md §1.2). ``None`` = the full network.
        input_mean: normalisation mean of the batches' images (``[0, 1]`` units; (0.5,)*3 = already
            in ``[-1, 1]``); ``input_std``: their std.
        sample_images: images per validation PNG grid (0 = no grids).
    """

    optimizer_steps_per_batch: int = 2

    def __init__(
        self,
        ngf: int = 64,
        n_blocks: int = 9,
        ndf: int = 64,
        n_layers: int = 3,
        pool_size: int = 50,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        decay_start: float = 0.5,
        schedule_horizon: int | None = None,
        lambda_gan: float = 1.0,
        lambda_cycle: float = 10.0,
        lambda_identity: float = 0.5,
        perceptual_net: nn.Module | None = None,
        perceptual_weights: str | None = None,
        perceptual_form: Literal["code", "paper"] = "code",
        lambda_per: float = 0.1,
        lambda_per_recon: float = 10.0,
        perceptual_mean: tuple[float, float, float] = IMAGENET_MEAN,
        perceptual_std: tuple[float, float, float] = IMAGENET_STD,
        perceptual_aspp_branches: int | None = None,
        input_mean: tuple[float, float, float] = (0.5, 0.5, 0.5),
        input_std: tuple[float, float, float] = (0.5, 0.5, 0.5),
        sample_images: int = 4,
    ) -> None:
        super().__init__()
        if not 0.0 <= decay_start <= 1.0:
            raise ValueError(f"Translation.decay_start: expected a fraction in [0, 1], got {decay_start}")
        if perceptual_weights is not None and perceptual_net is None:
            raise ValueError("Translation.perceptual_weights: given without a perceptual_net to load them into")
        self.save_hyperparameters(ignore=["perceptual_net"])
        self.automatic_optimization = False
        self.g_a, self.g_b = ResnetGenerator(ngf=ngf, n_blocks=n_blocks), ResnetGenerator(ngf=ngf, n_blocks=n_blocks)
        self.d_a, self.d_b = PatchDiscriminator(ndf=ndf, n_layers=n_layers), PatchDiscriminator(ndf=ndf, n_layers=n_layers)
        self.pool_fake_a, self.pool_fake_b = ImagePool(pool_size), ImagePool(pool_size)  # for D_B, D_A
        self.perceptual: SemanticPerceptualLoss | None = None
        if perceptual_net is not None:
            if perceptual_weights is not None:
                load_network_checkpoint(perceptual_net, perceptual_weights)
            if perceptual_aspp_branches is not None:
                _truncate_aspp(perceptual_net, perceptual_aspp_branches)
            self.perceptual = SemanticPerceptualLoss(perceptual_net, perceptual_form, perceptual_mean, perceptual_std)
        self.register_buffer("input_mean", torch.tensor(input_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_std", torch.tensor(input_std).view(1, 3, 1, 1), persistent=False)

    # ------------------------------------------------------------------ progress (iteration, horizon: TrainingProgress)
    def lr_lambda(self, step: int) -> float:
        """Learning-rate factor after ``step`` iterations (pure function of progress)."""
        return constant_then_linear(schedules.progress(step, self.horizon), self.hparams.decay_start)

    # ------------------------------------------------------------------ helpers
    def to_gan_range(self, image: torch.Tensor) -> torch.Tensor:
        """Batch images (normalised with ``input_mean``/``input_std``) -> ``[-1, 1]``."""
        return (image * self.input_std + self.input_mean) * 2.0 - 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`translate`."""
        return self.translate(x)

    def translate(self, image: torch.Tensor) -> torch.Tensor:
        """Source images (``[-1, 1]``) translated to the target domain by ``G_A``: the prediction path, what
        ``domadapt export`` writes.

        Shape:
            ``(N, 3, H, W)`` -> ``(N, 3, H, W)`` in ``[-1, 1]``.
        """
        return self.g_a(image)

    def loss_weights(self) -> dict[str, float]:
        """Weight of every generator term of :func:`generator_terms`."""
        hp = self.hparams
        idt = hp.lambda_identity * hp.lambda_cycle
        return {"gan_a": hp.lambda_gan, "gan_b": hp.lambda_gan, "cycle_a": hp.lambda_cycle, "cycle_b": hp.lambda_cycle,
                "idt_a": idt, "idt_b": idt, "per_a": hp.lambda_per, "per_b": hp.lambda_per,
                "per_recon_a": hp.lambda_per_recon, "per_recon_b": hp.lambda_per_recon}

    @staticmethod
    def _set_requires_grad(modules: list[nn.Module], flag: bool) -> None:
        for m in modules:
            m.requires_grad_(flag)

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        real_a = self.to_gan_range(batch["source"]["image"])  # (N, 3, H, W) in [-1, 1]
        real_b = self.to_gan_range(batch["target"]["image"])

        # Generator step, discriminators frozen (their input gradients still reach the generators).
        self._set_requires_grad([self.d_a, self.d_b], False)
        terms, images = generator_terms(real_a, real_b, self.g_a, self.g_b, self.d_a, self.d_b, self.perceptual,
                                        identity=self.hparams.lambda_identity > 0)
        weights = self.loss_weights()
        loss_g = sum(weights[k] * v for k, v in terms.items())
        self.check_finite({**terms, "G": loss_g})
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()
        self._set_requires_grad([self.d_a, self.d_b], True)

        # Discriminator step on real images and pooled fakes.
        fake_b = self.pool_fake_b.query(images["fake_b"])
        fake_a = self.pool_fake_a.query(images["fake_a"])
        d_terms = discriminator_terms(real_a, real_b, fake_a, fake_b, self.d_a, self.d_b)
        loss_d = d_terms["D_a"] + d_terms["D_b"]
        self.check_finite(d_terms)
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()
        for sched in self.lr_schedulers():
            sched.step()
        self._log_terms(loss_g, terms, loss_d, d_terms, real_a.shape[0])

    def _log_terms(self, loss_g: torch.Tensor, terms: dict[str, torch.Tensor], loss_d: torch.Tensor,
                   d_terms: dict[str, torch.Tensor], batch_size: int) -> None:
        """``train/loss_G`` (weighted total) and ``train/loss_D``; the named groups are unweighted sums of A and B."""
        logs = {"loss_G": loss_g, "loss_D": loss_d, "loss_D_A": d_terms["D_a"], "loss_D_B": d_terms["D_b"]}
        for group, prefix in (("G_gan", "gan"), ("cycle", "cycle"), ("idt", "idt"), ("per", "per"),
                              ("per_recon", "per_recon")):
            if f"{prefix}_a" in terms:
                logs[f"loss_{group}"] = terms[f"{prefix}_a"] + terms[f"{prefix}_b"]
        self.log_terms(logs, batch_size, prog_bar=("loss_G", "loss_D"))

    def configure_optimizers(self):
        hp = self.hparams
        opt_g = torch.optim.Adam([*self.g_a.parameters(), *self.g_b.parameters()], lr=hp.lr, betas=tuple(hp.betas))
        opt_d = torch.optim.Adam([*self.d_a.parameters(), *self.d_b.parameters()], lr=hp.lr, betas=tuple(hp.betas))
        return [{"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, self.lr_lambda),
                                                    "interval": "step"}} for opt in (opt_g, opt_d)]

    # ------------------------------------------------------------------ validation
    def _val_name(self, dataloader_idx: int) -> str:
        dm = datamodule_of(self)
        names = list(getattr(dm, "val_names", None) or ["source", "target"])
        return names[dataloader_idx] if dataloader_idx < len(names) else f"val{dataloader_idx}"

    def validation_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> None:
        """Cycle L1 ``|G_B(G_A(x)) - x|`` (source) / ``|G_A(G_B(x)) - x|`` (target) and a PNG grid per validation."""
        if "source" in batch and "target" in batch:
            domains = [("source", batch["source"]["image"]), ("target", batch["target"]["image"])]
        else:
            domains = [(self._val_name(dataloader_idx), batch["image"])]
        for name, image in domains:
            x = self.to_gan_range(image)
            there, back = (self.g_b, self.g_a) if name == "target" else (self.g_a, self.g_b)
            y = there(x)
            rec = back(y)
            self.log(f"val/{name}/cycle_l1", F.l1_loss(rec, x), add_dataloader_idx=False, sync_dist=True,
                     batch_size=x.shape[0])
            if (batch_idx == 0 and self.hparams.sample_images > 0 and not self.trainer.sanity_checking
                    and self.trainer.is_global_zero):
                self.save_grid(name, x, y, rec)

    def save_grid(self, name: str, x: torch.Tensor, y: torch.Tensor, rec: torch.Tensor) -> Path:
        """Write ``input | translated | reconstructed`` rows to ``<log dir>/samples/<name>_iterNNNNNNN.png``."""
        n = min(self.hparams.sample_images, x.shape[0])
        rows = [np.concatenate([_to_uint8(t[i]) for t in (x, y, rec)], axis=1) for i in range(n)]
        from domadapt.evaluation.run_report import run_dir_of  # not trainer.log_dir: a DDP collective

        path = run_dir_of(self.trainer) / "samples" / f"{name}_iter{self.iteration:07d}.png"
        write_png(path, np.concatenate(rows, axis=0))
        return path


def _truncate_aspp(net: nn.Module, branches: int) -> None:
    """Keep the first ``branches`` convolutions of a DeepLabV2 ASPP classifier (BDL's perceptual-net quirk)."""
    head = getattr(net, "classifier", None)
    convs = getattr(head, "conv2d_list", None)
    if convs is None:
        raise ValueError(f"Translation.perceptual_aspp_branches: {type(net).__name__} has no ASPP classifier "
                         "(`classifier.conv2d_list`); expected a DeepLabV2 perceptual net")
    if not 1 <= branches <= len(convs):
        raise ValueError(f"Translation.perceptual_aspp_branches: expected 1..{len(convs)}, got {branches}")
    head.conv2d_list = nn.ModuleList(list(convs)[:branches])
