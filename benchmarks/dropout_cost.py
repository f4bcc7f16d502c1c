"""What eegkit's dropout saves: multi-head training steps with it and with torch's, side by side.

The same multi-head model (same weights) is timed twice per repeat, alternating:
as eegkit builds it (:class:`eegkit.models.multihead.PreNormEncoderLayer` and
:class:`eegkit.models.dropout.Dropout`, masks from 16-bit lanes of 64-bit random
words), and with torch's ``nn.TransformerEncoderLayer`` and ``nn.Dropout`` swapped
in (one ``bernoulli_`` draw per element). Also without any dropout, for the floor.
One step is forward, cross-entropy, backward and AdamW on a random batch of
``(batch, 122, 500)`` trials from 13 subjects, as ``eegkit.train.fit`` runs it
(deterministic algorithms on, NaN-filling off).

    python benchmarks/dropout_cost.py --threads 2 --steps 10 --repeats 3
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

from eegkit.classification import ClassificationObjective
from eegkit.data.channels import HANDOUT_SUBJECTS
from eegkit.models import make_model
from eegkit.models.dropout import Dropout
from eegkit.models.multihead import PreNormEncoderLayer


def with_torch_layers(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with torch's encoder layers and dropout (same weights)."""
    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, PreNormEncoderLayer):
                layer = nn.TransformerEncoderLayer(
                    child.norm1.normalized_shape[0], child.n_heads, child.linear1.out_features,
                    child.attention_dropout, activation="gelu", batch_first=True, norm_first=True)
                layer.load_state_dict(child.state_dict())
                setattr(module, name, layer)
            elif isinstance(child, Dropout):
                setattr(module, name, nn.Dropout(child.p))
    return model


def without_dropout(model: nn.Module) -> nn.Module:
    model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, Dropout):
            module.p = 0.0
        if isinstance(module, PreNormEncoderLayer):
            module.attention_dropout = 0.0
    return model


def ms_per_step(model: nn.Module, batch: dict, steps: int, warmup: int = 2) -> float:
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    objective = ClassificationObjective()

    def step():
        out = objective(model, batch)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.manual_seed(0)
    subjects = HANDOUT_SUBJECTS[:13]
    ours = make_model("multihead", 122, 500, 1000.0, subjects=subjects)
    models = {"eegkit dropout": ours, "torch dropout": with_torch_layers(ours),
              "no dropout (floor)": without_dropout(ours)}
    batch = {"X": torch.randn(args.batch_size, 122, 500), "y": torch.randint(0, 20, (args.batch_size,)),
             "subject": torch.randperm(args.batch_size) % len(subjects)}
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.repeats):
        for name, model in models.items():
            times[name].append(ms_per_step(copy.deepcopy(model), batch, args.steps))
    print(f"multi-head model, batch {args.batch_size}, 122 x 500, {args.threads} threads, "
          f"{args.steps} steps x {args.repeats} repeats (alternating)")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:>20}: {', '.join(f'{v:.0f}' for v in values)} ms per step "
              f"(median {median:.0f}, {args.batch_size / median * 1e3:.0f} trials/s)")
    ratio = statistics.median(times["eegkit dropout"]) / statistics.median(times["torch dropout"])
    print(f"eegkit / torch dropout: time per step x{ratio:.2f}")


if __name__ == "__main__":
    main()
