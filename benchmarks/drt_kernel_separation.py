"""Do DRT's residual kernels separate when they start at zero? Trained side by side: zero vs small random start.

With ``Phi_k = 0`` at the start, every kernel receives the gradient ``pi_k(x) G(x)`` of the same aggregated
residual, and the attention logits receive ``pi_k (<Phi_k, G> - sum_j pi_j <Phi_j, G>)``, which is zero while the
kernels are equal. The kernels therefore differ only as much as the attention varies across samples, and the layer
may end as a *static* residual. This script trains the DRT digits recipe (``recipes/drt/digits_multisource.yaml``,
DynamicDigitsNet, K = 4, both convolutions dynamic) twice in one process — residual kernels zero-initialised (the
toolkit's default, so that static ImageNet weights are the starting function) and ``N(0, 0.05)`` — and prints per
dynamic layer, on the target test images:

* ``cos``: mean pairwise cosine similarity of the flattened kernels ``Phi_k`` (1 = all kernels parallel);
* ``spread``: ``sum_k ||Phi_k - mean Phi||^2 / sum_k ||Phi_k||^2`` (0 = identical kernels, a static residual);
* ``pi std``: standard deviation over samples of the attention ``pi_k(x)``, averaged over ``k`` (0 = constant);
* ``H/logK``: mean attention entropy over ``log K`` (1 = uniform);
* ``dyn``: ``E_x ||M(x) - E_x M(x)|| / ||E_x M(x)||`` with ``M(x) = sum_k pi_k(x) Phi_k``: how much of the residual
  actually changes with the input;

and the target test accuracy of each run.

Run::

    python benchmarks/drt_kernel_separation.py                # 1,000 iterations, seed 0 (about 3 minutes, 2 threads)
    python benchmarks/drt_kernel_separation.py --steps 300 --seeds 0 1
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import pytorch_lightning as pl
import torch
import yaml
from jsonargparse import ArgumentParser

from domadapt.layers.dynamic_conv import DynamicConv2d

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "drt" / "digits_multisource.yaml"


def build(seed: int) -> tuple[pl.LightningModule, pl.LightningDataModule]:
    """The recipe's method and data, as ``domadapt fit`` would instantiate them."""
    recipe = yaml.safe_load(RECIPE.read_text())
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(pl.LightningModule, "model", fail_untyped=False)
    parser.add_subclass_arguments(pl.LightningDataModule, "data", fail_untyped=False)
    pl.seed_everything(seed, verbose=False)
    objs = parser.instantiate_classes(parser.parse_object({"model": recipe["model"], "data": recipe["data"]}))
    return objs.model, objs.data


@torch.no_grad()
def measure(module: pl.LightningModule, data: pl.LightningDataModule) -> tuple[list[dict[str, float]], float]:
    """Per dynamic layer: kernel similarity and spread, attention variation, share of the residual that varies;
    and the target test accuracy."""
    layers = [m for m in module.net.modules() if isinstance(m, DynamicConv2d)]
    contexts: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(layers))}
    hooks = [layer.register_forward_pre_hook(lambda _m, args, kw=None, i=i: contexts[i].append(args[0]))
             for i, layer in enumerate(layers)]
    module.eval()
    correct = total = 0
    data.setup("test")
    loader = data.test_dataloader()
    loader = loader[data.test_names.index("target")] if isinstance(loader, list) else loader
    for batch in loader:
        pred = module.predict_probabilities(batch["image"]).argmax(1)
        correct += int((pred == batch["label"]).sum())
        total += len(pred)
    for h in hooks:
        h.remove()
    rows = []
    for i, layer in enumerate(layers):
        pi = torch.cat([layer.attention(c) for c in contexts[i]])  # (N, K)
        phi = layer.residual.flatten(1)  # (K, O*I)
        unit = torch.nn.functional.normalize(phi, dim=1)
        pairs = list(itertools.combinations(range(len(phi)), 2))
        cos = sum(float(unit[a] @ unit[b]) for a, b in pairs) / len(pairs)
        spread = float((phi - phi.mean(0)).square().sum() / phi.square().sum().clamp_min(1e-30))
        mix = pi @ phi  # (N, O*I): M(x)
        dyn = float((mix - mix.mean(0)).norm(dim=1).mean() / mix.mean(0).norm().clamp_min(1e-30))
        entropy = float(-(pi * pi.clamp_min(1e-12).log()).sum(1).mean() / torch.log(torch.tensor(float(pi.shape[1]))))
        rows.append({"cos": cos, "spread": spread, "pi std": float(pi.std(0).mean()), "H/logK": entropy, "dyn": dyn})
    return rows, 100.0 * correct / max(total, 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1000, help="training iterations per run (recipe: 1000)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = p.parse_args()
    print(f"DRT digits recipe, {args.steps} iterations, threads={torch.get_num_threads()}")
    print(f"{'start':>8} {'seed':>4} {'layer':>5} {'cos':>7} {'spread':>8} {'pi std':>8} {'H/logK':>7} {'dyn':>8} {'acc':>6}")
    for seed, start in itertools.product(args.seeds, ("zero", "random")):
        module, data = build(seed)
        if start == "random":
            torch.manual_seed(seed)
            for m in module.net.modules():
                if isinstance(m, DynamicConv2d):
                    m.reset_residual(zero=False)
        trainer = pl.Trainer(max_steps=args.steps, limit_val_batches=0, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1)
        trainer.fit(module, data)
        rows, acc = measure(module, data)
        for i, r in enumerate(rows):
            print(f"{start:>8} {seed:>4} {i + 1:>5} {r['cos']:>7.4f} {r['spread']:>8.2e} {r['pi std']:>8.4f} "
                  f"{r['H/logK']:>7.4f} {r['dyn']:>8.2e} {f'{acc:.1f}' if i == 0 else '':>6}", flush=True)


if __name__ == "__main__":
    main()
