"""What the per-run report adds to a run: the round trips and benchmark metrics
(``engine.run.analysis``) and ``report.html`` (``engine.run.html``), beside the backtest itself
and the run folder without them, measured in the same process.

    python bench/bench_report.py [--repeat 3] [--real]

Columns (seconds, median of the repeats): ``backtest`` (run_backtest), ``folder`` (write_run
with equity.png and round_trips.csv; no page, benchmark or tear sheet), ``+analysis`` and
``+page`` (what this issue adds), ``tearsheet`` (pyfolio's full tear sheet, optional:
``report.tearsheet``) and the ratio of what the analysis and page add to the backtest.
``--real`` adds configs/real/vratio.yaml (needs ../shared/data).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from volbacktest.engine.inputs.config import load_config
from volbacktest.engine.run.analysis import analyse
from volbacktest.engine.run.html import write_run_page
from volbacktest.engine.run.report import plot_tearsheet, write_run
from volbacktest.engine.run.runner import run_backtest

REPO = Path(__file__).resolve().parents[1]


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--real", action="store_true")
    args = ap.parse_args()
    names = ["configs/vratio.yaml", "configs/momentum.yaml", "configs/ou_pairs.yaml"]
    if args.real:
        names.append("configs/real/vratio.yaml")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for name in names:
            cfg = load_config(REPO / name).with_overrides(
                **{"report.tearsheet": False, "report.html": False, "report.benchmark": "spx"}
            )
            res = run_backtest(cfg)
            bare = type(res)(
                **{**res.__dict__, "config": cfg.with_overrides(**{"report.benchmark": None})}
            )
            a = analyse(res)
            t_run = timed(lambda c=cfg: run_backtest(c), args.repeat)
            t_folder = timed(lambda r=bare: write_run(r, out), args.repeat)
            t_analysis = timed(lambda r=res: analyse(r), args.repeat)
            t_page = timed(lambda r=res, a=a: write_run_page(r, a, out), args.repeat)
            t_sheet = timed(lambda r=res, a=a: plot_tearsheet(r, out / "t.png", a.benchmark), 1)
            rows.append((name, len(res.returns), t_run, t_folder, t_analysis, t_page, t_sheet))
    head = ("config", "bars", "backtest", "folder", "+analysis", "+page", "tearsheet", "added/run")
    print(" | ".join(head))
    print("|".join("---" for _ in head))
    for name, bars, t_run, t_folder, t_an, t_page, t_sheet in rows:
        print(
            f"{name} | {bars} | {t_run:.2f} | {t_folder:.2f} | {t_an:.2f} | {t_page:.2f} | "
            f"{t_sheet:.2f} | {(t_an + t_page) / t_run:.2f}x"
        )


if __name__ == "__main__":
    main()
