"""The data path on a twin: trial table, one training epoch's loader, raw reads.

Each part runs in its own process so that the peaks of resident memory do not mix:

1. ``load_dataset``: build the trial table (its NaN/Inf check reads every run once);
2. ``loader``: one epoch of the training DataLoader of the session split, built as
   :func:`eegkit.train.fit` builds it (normaliser fitted on the training trials,
   :class:`~eegkit.data.torchdata.EEGTrialDataset`, :class:`~eegkit.train.SubjectBalancedSampler`,
   batch 64);
3. ``raw pread``: the same trials' bytes, in the same order and the same batches,
   read with ``os.preadv`` at offsets from the ``.npy`` header into one reused
   buffer: the speed to beat;
4. ``raw pread+hint``: the same, after ``posix_fadvise(WILLNEED)`` on every trial of
   the batch (as the loader does), which matters only when the page cache is cold;
5. ``raw mmap``: the same through ``np.load(mmap_mode="r")`` with every run kept
   mapped, as eegkit read trials before; its peak shows what touched mapped pages
   cost.

Peak memory is the process's peak resident set (imports, trial table and all; it
counts touched pages of memory-mapped files) and the peak of the measured phase alone,
both from ``VmHWM`` of /proc/self/status, which is reset (``clear_refs``) just before
a phase; the process peak is the largest ``VmHWM`` seen before any reset, or
``ru_maxrss`` if larger.
Every ``.npy`` is read once before the parts start, so all of them find the page
cache warm; that read's time is the cold (disk) rate. With ``--cold``, the twin's
``.npy`` files are instead dropped from the page cache (``posix_fadvise
DONTNEED``, those files only) just before each measured phase, so the loader and
the raw reads both come from disk.

    python benchmarks/data_path.py --preset default --cache data
    python benchmarks/data_path.py --preset full --cache data --threads 1
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import re
import resource
import time
from pathlib import Path

import pandas as pd

PARTS = ("load_dataset", "loader", "raw pread", "raw pread+hint", "raw mmap")
MB = 1024**2


def _vm(key: str) -> float:
    """A field of /proc/self/status in MB (``VmHWM``, ``VmRSS``)."""
    with open("/proc/self/status") as f:
        return int(re.search(rf"{key}:\s+(\d+)", f.read()).group(1)) / 1024


_PEAKS: list[float] = []


def _reset_peak() -> None:
    """Reset the process's VmHWM to its current RSS (Linux >= 4.0).

    The reset also lowers ``ru_maxrss``, so the peak so far is kept in ``_PEAKS``.
    """
    _PEAKS.append(_vm("VmHWM"))
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _evict(paths) -> None:
    """Drop these files' pages from the page cache (they must not be mapped)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _training_order(data, seed: int, batch_size: int):
    """Training rows and the epoch-0 batches of ``fit``'s sampler, as in eegkit.train.fit."""
    from eegkit.data.splits import make_split
    from eegkit.train import SubjectBalancedSampler

    split = make_split(data.trials, "session")
    subjects = data.trials["subject_id"].to_numpy()[split.train]
    sampler = SubjectBalancedSampler(subjects, seed=seed)
    sampler.set_epoch(0)
    order = split.train[list(sampler)]
    return split, [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _run_part(args: dict, queue) -> None:
    import numpy as np
    import torch

    import eegkit

    if args["threads"]:
        torch.set_num_threads(args["threads"])
    part = args["part"]
    out = {"part": part}
    paths = [str(p) for p in sorted(Path(args["root"]).rglob("*_1000Hz.npy"))]
    if args["cold"]:
        _evict(paths)
    started = time.perf_counter()
    if part == "load_dataset":
        _reset_peak()
        data = eegkit.load_dataset(args["root"])
        out.update(seconds=time.perf_counter() - started, trials=len(data))
    elif part == "loader":
        from eegkit.data.torchdata import ChannelNormalizer, EEGTrialDataset
        from eegkit.train import SubjectBalancedSampler, make_loader

        data = eegkit.load_dataset(args["root"])
        split, _ = _training_order(data, args["seed"], args["batch_size"])
        _reset_peak()
        t0 = time.perf_counter()
        normalizer = ChannelNormalizer.fit(data, split.train)
        out["fit_seconds"] = time.perf_counter() - t0
        out["fit_peak_mb"] = _vm("VmHWM")
        train_set = EEGTrialDataset(data, split.train, normalizer)
        sampler = SubjectBalancedSampler(train_set.subject_index, seed=args["seed"])
        loader = make_loader(train_set, args["batch_size"], shuffle=True, sampler=sampler,
                             seed=args["seed"])
        sampler.set_epoch(0)
        if args["cold"]:
            _evict(paths)
        _reset_peak()
        n, t0 = 0, time.perf_counter()
        for batch in loader:
            n += len(batch["X"])
        out.update(seconds=time.perf_counter() - t0, trials=n)
    else:
        data = eegkit.load_dataset(args["root"], check_finite=False)
        _, batches = _training_order(data, args["seed"], args["batch_size"])
        run_index = data.trials["run_index"].to_numpy()
        trial = data.trials["trial"].to_numpy()
        paths = [str(f.npy) for f in data.run_files]
        shape = (data.n_chans, data.n_times)
        buffer = np.empty((args["batch_size"], *shape), dtype=np.float32)
        n = 0
        if part.startswith("raw pread"):
            # the header's length, from a map that is never touched
            offsets = [np.load(path, mmap_mode="r").offset for path in paths]
            files = [os.open(path, os.O_RDONLY) for path in paths]
            nbytes = buffer[0].nbytes
            if args["cold"]:
                _evict(paths)
            _reset_peak()
            t0 = time.perf_counter()
            hint = part == "raw pread+hint"
            for rows in batches:
                where = [(files[r], offsets[r] + t * nbytes)
                         for r, t in zip(run_index[rows].tolist(), trial[rows].tolist())]
                if hint:
                    for fd, offset in where:
                        os.posix_fadvise(fd, offset, nbytes, os.POSIX_FADV_WILLNEED)
                for i, (fd, offset) in enumerate(where):
                    os.preadv(fd, [buffer[i]], offset)
                n += len(rows)
        else:
            runs = [np.load(path, mmap_mode="r") for path in paths]
            if args["cold"]:
                _evict(paths)
            _reset_peak()
            t0 = time.perf_counter()
            for rows in batches:
                for i, row in enumerate(rows):
                    buffer[i] = runs[run_index[row]][trial[row]]
                n += len(rows)
        out.update(seconds=time.perf_counter() - t0, trials=n)
    out["phase_peak_mb"] = _vm("VmHWM")
    out["process_peak_mb"] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                                 out["phase_peak_mb"], *_PEAKS)
    out["trial_mb"] = data.n_chans * data.n_times * 4 / MB
    out["threads"] = torch.get_num_threads()
    out["source"] = data.source
    queue.put(out)


def _warm_cache(root: Path) -> tuple[int, float]:
    """Read every run's .npy once; return the bytes and the seconds it took."""
    buffer = bytearray(16 * MB)
    total, started = 0, time.perf_counter()
    for path in sorted(root.rglob("*_1000Hz.npy")):
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buffer):
                total += n
    return total, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default", choices=("tiny", "default", "full"))
    parser.add_argument("--cache", default=None,
                        help="folder of the twins (default: $EEGKIT_CACHE or ~/.cache/eegkit)")
    parser.add_argument("--data-dir", default="", help="real data instead of a twin")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads (default: torch's own, as in training)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run each part this many times; keep the fastest")
    parser.add_argument("--parts", nargs="*", default=list(PARTS), choices=PARTS)
    parser.add_argument("--cold", action="store_true",
                        help="drop the .npy files from the page cache before each measured phase")
    args = vars(parser.parse_args())

    import eegkit

    root = eegkit.resolve_data_root(args["data_dir"], twin_preset=args["preset"],
                                    seed=args["seed"], cache_dir=args["cache"])
    args["root"] = str(root)
    if args["cold"]:
        data_bytes = sum(p.stat().st_size for p in root.rglob("*_1000Hz.npy"))
    else:
        data_bytes, warm_seconds = _warm_cache(root)
        print(f"page cache warmed: read {data_bytes / MB:,.0f} MB of .npy in {warm_seconds:.1f} s "
              f"({data_bytes / MB / warm_seconds:,.0f} MB/s)", flush=True)

    context = mp.get_context("spawn")
    rows = []
    for _ in range(args["repeats"]):
        for part in args["parts"]:
            queue = context.Queue()
            child = context.Process(target=_run_part, args=({**args, "part": part}, queue))
            child.start()
            rows.append(queue.get())
            child.join()
            print(f"done: {part} in {rows[-1]['seconds']:.2f} s", flush=True)
    runs = pd.DataFrame(rows)
    source = runs.pop("source").iloc[0]
    trial_mb = runs.pop("trial_mb").iloc[0]
    threads = runs.pop("threads").iloc[0]
    peaks = runs.groupby("part")[["phase_peak_mb", "process_peak_mb"]].max()
    table = runs.loc[runs.groupby("part")["seconds"].idxmin()].set_index("part")
    table[peaks.columns] = peaks
    table = table.reindex([p for p in PARTS if p in table.index])
    table["trials_per_s"] = table["trials"] / table["seconds"]
    table["MB_per_s"] = table["trials_per_s"] * trial_mb
    table["process_peak / data"] = table["process_peak_mb"] / (data_bytes / MB)
    columns = ["seconds", "trials", "trials_per_s", "MB_per_s", "phase_peak_mb", "process_peak_mb",
               "process_peak / data", "fit_seconds", "fit_peak_mb"]
    table = table[[c for c in columns if c in table.columns]]

    print(f"\n{source}; session split, training trials, batch {args['batch_size']}, "
          f"{threads} torch threads, best of {args['repeats']}; data {data_bytes / MB:,.0f} MB "
          f"of .npy, page cache {'cold' if args['cold'] else 'warm'}\n")
    print(table.reset_index().to_markdown(index=False, floatfmt=",.2f"))
    print()
    for raw in ("raw pread", "raw pread+hint"):
        if {"loader", raw} <= set(table.index):
            ratio = table.loc["loader", "trials_per_s"] / table.loc[raw, "trials_per_s"]
            print(f"loader / {raw} speed: {ratio:.2f} (target >= 0.80)")
    if "loader" in table.index:
        peak = table.loc["loader", "process_peak_mb"]
        print(f"loader process peak RSS: {peak:,.0f} MB = {peak / (data_bytes / MB):.2f} x the "
              f"data ({data_bytes / MB:,.0f} MB; target < 2,048 MB)")


if __name__ == "__main__":
    main()
