"""Profile training steps of the multi-head model (or a baseline) with torch.profiler.

One step is what :func:`eegkit.train.fit` does per batch: forward through the
objective, cross-entropy, backward, gradient clipping, AdamW and the learning-rate
schedule, under ``torch.use_deterministic_algorithms(True, warn_only=True)`` as in
``fit``. Trials are random ``(batch, 122, 500)`` tensors at 1000 Hz (the shape of
ds005589) with 13 subjects interleaved as :class:`SubjectBalancedSampler` does, so
the step is measured without the data loader. Prints the wall and CPU time per step
(unprofiled), the top operators by self CPU time, and the time in each labelled
range: forward, backward, clip+optimizer, and the forward of each stage of the
multi-head model.

    python benchmarks/profile_multihead.py --batch-size 64 --steps 5
    python benchmarks/profile_multihead.py --model shallow   # the baseline, for scale
    python benchmarks/profile_multihead.py --no-nan-fill     # see below
    python benchmarks/profile_multihead.py --layer-by-layer  # ChannelCNN as before

``--no-nan-fill``: with deterministic algorithms on, torch fills every new tensor
with NaN (``torch.utils.deterministic.fill_uninitialized_memory``), which shows up
as ``aten::fill_``; this flag turns that off to measure its cost.
"""

from __future__ import annotations

import argparse
import time

import torch
from einops import rearrange
from torch import nn
from torch.profiler import ProfilerActivity, profile, record_function

from eegkit.classification import ClassificationObjective
from eegkit.data.channels import HANDOUT_SUBJECTS
from eegkit.models import MODEL_NAMES, make_model
from eegkit.train import TrainConfig, warmup_cosine

STAGE_LABELS = ("stage1 ChannelCNN", "stage2 ElectrodeTransformer",
                "stage3 SubjectHeads")


def _run_layer_by_layer(cnn: nn.Module) -> None:
    """Make a ChannelCNN run its filter bank layer by layer, as before its closed form.

    The same computation as :meth:`eegkit.models.multihead.ChannelCNN.forward` with
    ``activation="gelu"``, from the module's public parts (``temporal``, ``project``,
    ``electrode_embedding``).
    """
    def forward(X: torch.Tensor) -> torch.Tensor:
        features = cnn.temporal(rearrange(X, "batch chan time -> (batch chan) 1 time"))
        tokens = rearrange(cnn.project(features), "(batch chan) d -> batch chan d", batch=X.shape[0])
        return tokens + cnn.electrode_embedding

    cnn.forward = forward


def _label_stages(model: nn.Module) -> None:
    """Wrap the forward of each stage of the multi-head model in a profiler label."""
    if not hasattr(model, "encoder"):
        return
    stages = (model.encoder.cnn, model.encoder.transformer, model.heads)
    for label, module in zip(STAGE_LABELS, stages):
        forward = module.forward

        def labelled(*args, _forward=forward, _label=label, **kwargs):
            with record_function(_label):
                return _forward(*args, **kwargs)

        module.forward = labelled


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="multihead", choices=MODEL_NAMES)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--n-chans", type=int, default=122)
    parser.add_argument("--n-times", type=int, default=500)
    parser.add_argument("--sfreq", type=float, default=1000.0)
    parser.add_argument("--n-subjects", type=int, default=13)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--steps", type=int, default=5, help="timed and profiled steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=25, help="operators listed")
    parser.add_argument("--record-shapes", action="store_true",
                        help="group the operators by input shape")
    parser.add_argument("--trace", default="", help="write a Chrome trace here")
    parser.add_argument("--no-nan-fill", action="store_true",
                        help="turn off the NaN filling of new tensors (see above)")
    parser.add_argument("--layer-by-layer", action="store_true",
                        help="run ChannelCNN layer by layer, as before its closed form")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    subjects = HANDOUT_SUBJECTS[: args.n_subjects]
    model = make_model(args.model, args.n_chans, args.n_times, args.sfreq,
                       subjects=subjects).train()
    if args.layer_by_layer and hasattr(model, "encoder"):
        _run_layer_by_layer(model.encoder.cnn)
    config = TrainConfig(batch_size=args.batch_size)
    objective = ClassificationObjective()
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    steps_per_epoch = 100  # fit()'s schedule, as if an epoch were 100 steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(
        int(config.warmup_epochs * steps_per_epoch), config.max_epochs * steps_per_epoch))
    n = args.batch_size
    batches = [{"X": torch.randn(n, args.n_chans, args.n_times),  # z-scored trials
                "y": torch.randint(0, 20, (n,)),
                "subject": torch.randperm(n) % len(subjects)}
               for _ in range(2)]
    torch.use_deterministic_algorithms(True, warn_only=True)  # as fit() does
    if args.no_nan_fill:
        torch.utils.deterministic.fill_uninitialized_memory = False

    def step(batch):
        with record_function("forward"):
            out = objective(model, batch)
        optimizer.zero_grad(set_to_none=True)
        with record_function("backward"):
            out.loss.backward()
        with record_function("clip+optimizer"):
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()

    for i in range(args.warmup):
        step(batches[i % 2])
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(args.steps):
        step(batches[i % 2])
    wall = (time.perf_counter() - wall) / args.steps
    cpu = (time.process_time() - cpu) / args.steps
    n_parameters = sum(p.numel() for p in model.parameters())
    print(f"{args.model}: batch {n}, input ({args.n_chans}, {args.n_times}) at "
          f"{args.sfreq:g} Hz, {args.threads} threads, NaN fill "
          f"{torch.utils.deterministic.fill_uninitialized_memory}, "
          f"{'layer by layer, ' if args.layer_by_layer else ''}"
          f"{n_parameters:,} parameters")
    print(f"unprofiled: {wall * 1e3:.1f} ms per step ({n / wall:.0f} trials/s), "
          f"CPU time {cpu * 1e3:.1f} ms per step (all threads)\n")

    _label_stages(model)
    with profile(activities=[ProfilerActivity.CPU],
                 record_shapes=args.record_shapes) as prof:
        for i in range(args.steps):
            step(batches[i % 2])
    averages = prof.key_averages(group_by_input_shape=args.record_shapes)
    if args.top:
        print(averages.table(sort_by="self_cpu_time_total", row_limit=args.top,
                             max_name_column_width=44))
    total = sum(event.self_cpu_time_total for event in averages)
    print("labelled ranges, profiled (CPU time with children; stages: forward only):")
    for event in averages:
        if event.key in ("forward", "backward", "clip+optimizer", *STAGE_LABELS):
            per_step = event.cpu_time_total / 1e3 / args.steps
            print(f"  {event.key:<28} {per_step:8.1f} ms/step "
                  f"({event.cpu_time_total / total:5.1%})")
    if args.trace:
        prof.export_chrome_trace(args.trace)
        print(f"trace written to {args.trace}")


if __name__ == "__main__":
    main()
