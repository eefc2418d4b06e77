"""EMA teacher: the update against a manual computation, buffers, warm-up, freezing and checkpoint resume."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from domadapt.pseudo.ema import EMATeacher


def student() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))


def sgd_steps(net: nn.Module, k: int, seed: int) -> None:
    """Move the student like training would (parameters and BatchNorm statistics)."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net.train()
    for _ in range(k):
        x = torch.randn(4, 3, 6, 6, generator=g)
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()


def make() -> tuple[nn.Module, EMATeacher]:
    s = student()
    s(torch.zeros(2, 3, 6, 6))  # materialise the lazy layer
    return s, EMATeacher(s, decay=0.9)


def test_update_equals_the_manual_average():
    s, teacher = make()
    expected = {k: v.clone() for k, v in s.named_parameters()}
    for step in range(3):
        sgd_steps(s, 1, seed=step)
        teacher.update(s)
        for k, v in s.named_parameters():
            expected[k] = 0.9 * expected[k] + 0.1 * v.detach()
    for k, v in teacher.module.named_parameters():
        torch.testing.assert_close(v, expected[k], rtol=1e-6, atol=1e-7)
        assert not v.requires_grad
    assert not torch.allclose(teacher.module[0].weight, s[0].weight)
    assert int(teacher.num_updates) == 3
    bn_t, bn_s = teacher.module[1], s[1]
    assert torch.equal(bn_t.running_mean, bn_s.running_mean) and bn_t.num_batches_tracked == bn_s.num_batches_tracked


def test_ema_buffers_and_warmup():
    s = student()
    s(torch.zeros(2, 3, 6, 6))
    teacher = EMATeacher(s, decay=0.99, buffers="ema", warmup=True)
    before = teacher.module[1].running_var.clone()
    assert teacher.current_decay() == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    sgd_steps(s, 1, seed=0)
    teacher.update(s)
    torch.testing.assert_close(teacher.module[1].running_var, 0.1 * before + 0.9 * s[1].running_var)
    assert teacher.current_decay() == pytest.approx(2 / 11)
    teacher.num_updates.fill_(10_000)
    assert teacher.current_decay() == 0.99


@pytest.mark.parametrize("start", [1, 2])
def test_average_warmup_is_the_running_mean_of_the_students_until_the_decay_caps_it(start):
    """DACS (start 1: the first update copies the student) and DAFormer (start 2: the first update halves the way)."""
    s, _ = make()
    teacher = EMATeacher(s, decay=0.7, warmup="average", average_start=start)
    seen = [{k: v.detach().clone() for k, v in s.named_parameters()}] if start == 2 else []
    for step in range(4):
        sgd_steps(s, 1, seed=step)
        d = teacher.current_decay()
        assert d == pytest.approx(min(0.7, 1 - 1 / (step + start)))
        teacher.update(s)
        if d < 0.7:  # still the plain mean of the initial weights (start 2) and every student seen
            seen.append({k: v.detach().clone() for k, v in s.named_parameters()})
            for k, v in teacher.module.named_parameters():
                torch.testing.assert_close(v, torch.stack([w[k] for w in seen]).mean(0), rtol=1e-5, atol=1e-6)
    assert d == 0.7  # capped by the end (steps 2-3 for start 1, step 3 for start 2)
    with pytest.raises(ValueError, match="EMATeacher.warmup"):
        EMATeacher(s, warmup="linear")
    with pytest.raises(ValueError, match="EMATeacher.average_start"):
        EMATeacher(s, warmup="average", average_start=0)


def test_teacher_predicts_in_eval_mode_without_gradient_or_statistics_updates():
    s, teacher = make()
    sgd_steps(s, 2, seed=3)
    teacher.update(s)
    owner = nn.ModuleDict({"net": s, "teacher": teacher}).train()
    assert teacher.module.training  # follows the owner (Lightning warns about modules left in eval mode)
    stats = teacher.module[1].running_mean.clone()
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    out = teacher(x)
    assert not out.requires_grad and torch.equal(teacher.module[1].running_mean, stats)
    owner.eval()
    torch.testing.assert_close(out, teacher.module(x))  # the same as a plain eval-mode forward
    assert not teacher.module.training
    owner.train()
    teacher(x)
    assert teacher.module.training and all(m.training for m in teacher.module.modules())


def test_state_dict_resumes_the_same_average():
    s, teacher = make()
    sgd_steps(s, 2, seed=1)
    teacher.update(s)
    state = {k: v.clone() for k, v in teacher.state_dict().items()}
    assert "num_updates" in state and any(k.startswith("module.") for k in state)

    fresh_student = student()
    fresh_student(torch.zeros(2, 3, 6, 6))
    resumed = EMATeacher(fresh_student, decay=0.9)
    resumed.load_state_dict(state)
    assert int(resumed.num_updates) == 1
    sgd_steps(s, 1, seed=2)
    teacher.update(s), resumed.update(s)
    for (k, a), (_, b) in zip(teacher.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k


def test_errors():
    with pytest.raises(ValueError, match=r"EMATeacher.decay: expected a value in \[0, 1\], got 1.5"):
        EMATeacher(nn.Linear(2, 2), decay=1.5)
    teacher = EMATeacher(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="EMATeacher.update: student and teacher differ"):
        teacher.update(nn.Sequential(nn.Linear(2, 2)))


def test_train_mode_teacher_normalises_each_batch_with_its_own_statistics():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    net[1].running_mean.fill_(5.0)  # running statistics far from any batch's
    x = torch.randn(6, 3, 5, 5)
    for mode, training in (("eval", False), ("train", True)):
        teacher = EMATeacher(net, 0.9, mode=mode)
        reference = copy.deepcopy(teacher.module).train(training)
        with torch.no_grad():
            expected = reference(x)
        for owner_training in (True, False):
            teacher.train(owner_training)
            torch.testing.assert_close(teacher(x), expected)
            assert teacher.module.training == owner_training  # the owner's flag is left as it was
    with pytest.raises(ValueError, match="EMATeacher.mode"):
        EMATeacher(net, mode="test")
