"""Time and memory of full-bank retrieval scoring, and how they grow with the bank.

Every query (an EEG trial of the test split) is ranked against every unique caption
of the bank: :func:`eegkit.metrics.cosine_similarity`, then
:func:`eegkit.metrics.retrieval_scores` (tie-aware recall@k and AP, instance-level
and class-aware), then :func:`eegkit.metrics.summarize_retrieval` (bootstrap CI).
Each bank size runs in its own process so that the memory peaks do not mix.

Embeddings are random unit vectors (512 dims, as CLIP ViT-B/32), float32. The bank
holds ``n_bank`` unique captions spread over 20 categories; each query's true
caption is drawn from the bank, so queries share captions (26,000 queries over
4,000 captions: about 6.5 per caption), and its embedding is its caption's plus
noise (cosine about 0.1 with it), so ranks are spread as a weak model's are.

    python benchmarks/retrieval_cost.py                          # 1k, 2k, 4k, 8k
    python benchmarks/retrieval_cost.py --banks 4000 --profile   # where time goes

Per phase: wall seconds (``_s``), then the phase is run again under
:mod:`tracemalloc` for its peak memory above what was allocated when it began
(``_mb``: NumPy buffers and Python objects; the phase's output included, its input
not); ``peak_rss_mb`` is the process's peak resident memory (``ru_maxrss``), inputs
and interpreter included. The growth table divides each size's numbers by the
previous size's: a phase linear in the bank shows x2.0 per doubling, an
O(n log n) one slightly more.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import time

PHASES = ("cosine_similarity", "retrieval_scores", "summarize_retrieval")
N_CATEGORIES = 20


def _make_inputs(n_queries: int, n_bank: int, n_dims: int, noise: float, seed: int):
    """Random unit embeddings with caption ids and categories, as a test split gives."""
    import numpy as np

    rng = np.random.default_rng([seed, n_bank])
    bank = rng.standard_normal((n_bank, n_dims), dtype=np.float32)
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    bank_ids = np.array([f"cap-{i:06d}" for i in range(n_bank)], dtype=object)
    bank_categories = np.array([f"category-{c:02d}" for c in
                                rng.permutation(np.arange(n_bank) % N_CATEGORIES)],
                               dtype=object)
    true = rng.integers(0, n_bank, n_queries)
    queries = rng.standard_normal((n_queries, n_dims), dtype=np.float32)
    queries *= np.float32(noise / n_dims**0.5)  # float32 throughout, as models give
    queries += bank[true]
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return (queries, bank, bank_ids[true], bank_categories[true], bank_ids,
            bank_categories)


def _run_one(args: dict, queue) -> None:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args["threads"])  # before numpy is imported
    import cProfile
    import pstats
    import tracemalloc

    from eegkit.metrics import cosine_similarity, retrieval_scores, summarize_retrieval

    n_bank = args["n_bank"]
    inputs = _make_inputs(args["n_queries"], n_bank, args["n_dims"], args["noise"],
                          args["seed"])
    queries, bank, query_ids, query_categories, bank_ids, bank_categories = inputs
    calls = {
        "cosine_similarity": lambda _: cosine_similarity(queries, bank),
        "retrieval_scores": lambda sim: retrieval_scores(
            sim, query_ids, query_categories, bank_ids, bank_categories),
        "summarize_retrieval": lambda per_query: summarize_retrieval(
            per_query, n_boot=args["n_boot"], seed=args["seed"]),
    }
    row = {"n_queries": args["n_queries"], "n_bank": n_bank}
    value = None
    for phase in PHASES:
        profiler = cProfile.Profile() if args["profile"] else None
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        result = calls[phase](value)
        if profiler:
            profiler.disable()
        row[f"{phase}_s"] = time.perf_counter() - started
        del result  # so that the traced run starts from the same memory
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        result = calls[phase](value)
        row[f"{phase}_mb"] = (tracemalloc.get_traced_memory()[1] - base) / 2**20
        tracemalloc.stop()
        value = result
        if profiler:
            print(f"\n--- {phase}, bank {n_bank}: top functions by own time ---")
            stats = pstats.Stats(profiler).sort_stats("tottime")
            stats.print_stats(args["profile_top"])
    row["total_s"] = sum(row[f"{phase}_s"] for phase in PHASES)
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row["map_instance"] = float(value.set_index("column").loc["ap", "value"])
    queue.put(row)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-queries", type=int, default=26_000)
    parser.add_argument("--banks", type=int, nargs="*",
                        default=[1000, 2000, 4000, 8000])
    parser.add_argument("--n-dims", type=int, default=512)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--noise", type=float, default=10.0,
                        help="norm of the noise added to a query's caption embedding "
                             "(10: cosine about 0.1 with its caption)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="cProfile each phase")
    parser.add_argument("--profile-top", type=int, default=15)
    args = vars(parser.parse_args())

    import pandas as pd

    context = mp.get_context("spawn")
    rows = []
    for n_bank in args["banks"]:
        queue = context.Queue()
        child = context.Process(target=_run_one,
                                args=({**args, "n_bank": n_bank}, queue))
        child.start()
        rows.append(queue.get())
        child.join()
        print(f"done: bank {n_bank} in {rows[-1]['total_s']:.1f} s", flush=True)
    table = pd.DataFrame(rows)
    print(f"\n{args['n_queries']:,} queries x bank, {args['n_dims']} dims float32, "
          f"n_boot {args['n_boot']}, {args['threads']} threads; seconds (_s) and peak "
          f"traced memory above the phase's start in MB (_mb)\n")
    shown = table.assign(**{column: table[column].map("{:,}".format)
                            for column in ("n_queries", "n_bank")})
    print(shown.to_markdown(index=False, floatfmt=".2f"))
    if len(table) > 1:
        columns = [f"{phase}_{unit}" for phase in PHASES for unit in ("s", "mb")]
        growth = table[columns + ["total_s"]].div(table[columns + ["total_s"]].shift())
        growth.insert(0, "bank", [f"{a:g} -> {b:g}" for a, b in
                                  zip(table["n_bank"].shift(), table["n_bank"])])
        growth.columns = ["bank"] + [f"x {c}" for c in growth.columns[1:]]
        ratio = table["n_bank"] / table["n_bank"].shift()
        print(f"\ngrowth from one bank size to the next (bank ratio "
              f"{', '.join(f'x{r:g}' for r in ratio.iloc[1:])}):\n")
        print(growth.iloc[1:].to_markdown(index=False, floatfmt=".2f"))


if __name__ == "__main__":
    main()
