"""tutorial: the labtech tutorial's final pipeline, end to end, without mlflow.

    python tutorial.py --storage DIR --estimators 10 --datasets digits,iris

Scikit-learn models (logistic regression and random forests of 1..estimators trees) are fitted on
each data set, each prediction is also reduced to its most likely class, and one evaluation task
scores them all (see _tutorial_tasks.py). As in the tutorial, the evaluation task is run with
``lab.run_task`` on the fork backend, the data sets passed as the lab's context.

Metrics (s): first run (computes and caches every task) and cached re-run (a fresh Lab on the same
storage, with the task graph built anew, as in a new session: it loads the cached evaluation).
Loading the data sets and importing scikit-learn happen before the timings.
"""

from __future__ import annotations

import os

import labtech
from _bench import Timer, argument_parser, count_entries, emit
from _tutorial_tasks import build_pipeline, load_datasets


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--estimators", type=int, required=True, help="random forests of 1..N trees")
    parser.add_argument("--datasets", required=True, help="comma-separated: digits, iris")
    args = parser.parse_args()
    storage = os.path.join(args.storage, "tutorial")
    names = args.datasets.split(",")
    options = {"disable_progress": True, "disable_top": True}

    with Timer() as setup:
        context = {"datasets": load_datasets(names)}

    def new_lab() -> labtech.Lab:
        return labtech.Lab(storage=storage, context=context, runner_backend="fork", max_workers=args.max_workers)

    evaluation = build_pipeline(args.estimators, names)
    lab = new_lab()
    with Timer() as first:
        scores = lab.run_task(evaluation, **options)
    assert len(scores) == len(evaluation.predictions), (len(scores), len(evaluation.predictions))
    entries = count_entries(storage)

    evaluation = build_pipeline(args.estimators, names)
    lab = new_lab()
    with Timer() as cached:
        again = lab.run_task(evaluation, **options)
    assert again == scores, (again, scores)

    emit(
        {"first_run_s": first.seconds, "cached_rerun_s": cached.seconds},
        {
            "estimators": args.estimators,
            "datasets": names,
            "predictions": len(evaluation.predictions),
            "entries": entries,
            "load_datasets_s": setup.seconds,
            "mean_log_loss": sum(scores) / len(scores),
        },
    )


if __name__ == "__main__":
    main()
