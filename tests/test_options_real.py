"""put_write on the real SSE 50ETF options 2015-2024 (issue 13): the run completes on the shared
JoinQuant closes with close-only fills labelled, physical assignments recorded, the dividend
weeks' per-date statuses, and its pyfolio tear sheet written."""

from __future__ import annotations

import json
import warnings

import pandas as pd

from volbacktest.engine.inputs.config import load_config
from volbacktest.engine.run.report import write_run
from volbacktest.engine.run.runner import run_backtest


def test_put_write_on_real_50etf_options(shared_data, tmp_path):
    cfg = load_config("configs/options/real/put_write_50etf.yaml").with_overrides(
        **{"data.root": str(shared_data)}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = run_backtest(cfg)
    m = r.metrics
    assert (m["start"], m["end"]) == ("2015-02-09", "2024-05-21")
    assert m["marks"] == "close" and "close+slippage" in m["fill"]
    assert m["multiplier"] == 10_000.0 and m["margin_calls"] == 0
    assert m["assignments"] > 20 and m["expired_worthless"] > 50
    # every sale is at the option's close less 0.0005 CNY (no bid/ask in the data)
    tx = r.transactions
    sales = tx[(tx["reason"] == "roll") & (tx["symbol"] != "underlying")]
    assert (sales["price_source"] == "close+slippage").all()
    assert (sales["size"] < 0).all() and (sales["size"] == sales["size"].round()).all()
    # before each December expiry only adjusted (dividend) contracts are listed: a status
    days = pd.to_datetime([e.split()[0] for e in m["leg_status_events"]])
    assert len(days) and set(days.month) <= {11, 12}
    folder = write_run(r, tmp_path)
    assert (folder / "tearsheet.png").is_file()  # the pyfolio returns tear sheet
    # contract trades are not matched into share round trips: the table is empty and says why
    meta = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert meta["round_trips"] == 0
    assert any("round trips are built for share runs only" in n for n in meta["market_notes"])
    assert pd.read_csv(folder / "round_trips.csv").empty and (folder / "report.html").is_file()
