"""The Python front door (issue 11): ``volbacktest.run``/``sweep``/``strategy`` and friends."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.figure import Figure

import volbacktest as vb
from volbacktest import strategies
from volbacktest.engine.inputs.config import config_from_mapping, load_config
from volbacktest.engine.inputs.market import market_for
from volbacktest.engine.run.runner import run_backtest
from volbacktest.strategies.base import StrategySpec

REPO = Path(__file__).resolve().parents[1]
SHORT = {
    "data": {"synthetic": {"start": "2015-01-02", "end": "2016-12-30"}},
    "report": {"tearsheet": False, "plots": False},
}
VRATIO = {"name": "api_vratio", "strategy": {"name": "vratio"}, **SHORT}

PUBLIC = {
    "BacktestConfig",
    "ConfigError",
    "DataError",
    "Market",
    "RunResult",
    "StrategyParams",
    "StrategySpec",
    "calculators",
    "load_config",
    "run",
    "strategy",
    "sweep",
}


class RatioParams(vb.StrategyParams):
    window: int = 10
    threshold: float = 1.0

    def assets(self):
        return ("xiv", "vxx")

    def inputs(self):
        return ("vix", "vix3m")


def _ratio_rule(flip: bool):
    """A user strategy named ``ratio_rule``; ``flip`` makes a different rule of the same name
    (what re-running an edited notebook cell does)."""

    @vb.strategy(params=RatioParams)
    def ratio_rule(inputs, p):
        """Averaged VIX3M/VIX above the threshold: XIV, else VXX."""
        ratio = vb.calculators.rolling_mean(inputs["vix3m"] / inputs["vix"], p.window)
        calm = ratio > p.threshold
        if flip:
            calm = ~calm
        w = np.column_stack([calm, ~calm]).astype(float)
        w[np.isnan(ratio)] = np.nan
        return w

    return ratio_rule


@pytest.fixture(scope="module")
def frames():
    """The embedded market's frames of the short VRatio config, as the user would hold them."""
    return market_for(config_from_mapping(VRATIO)).frames


# --------------------------------------------------------------------------- the surface
def test_all_is_the_documented_set_and_each_name_has_a_docstring():
    assert set(vb.__all__) == PUBLIC
    assert len(vb.__all__) == len(PUBLIC)
    for name in vb.__all__:
        doc = inspect.getdoc(getattr(vb, name))
        assert doc and doc.strip(), name
    for name in ("run", "sweep", "strategy"):
        assert name in vb.__doc__
    assert PUBLIC <= set(dir(vb))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = vb.nope


def test_importing_volbacktest_loads_no_engine():
    """The front door is lazy: a sweep worker importing one module does not load the API."""
    code = textwrap.dedent(
        """
        import sys
        import volbacktest as vb
        import volbacktest.engine.calculators.rolling
        print(sorted(m for m in sys.modules if m.startswith(("volbacktest.engine.api",
              "volbacktest.engine.run", "volbacktest.engine.calculators.vix", "backtrader"))))
        vb.run
        print("volbacktest.engine.api" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.split() == ["[]", "True"], out.stdout


def test_calculators_reexport_the_kernels_from_their_modules():
    from volbacktest.engine import calculators
    from volbacktest.engine.calculators import bs, ou, rnd, vix

    assert vb.calculators is calculators
    assert calculators.compute_vix is vix.compute_vix
    assert calculators.implied_vol is bs.implied_vol and calculators.bs_price is bs.bs_price
    assert calculators.fit_rnd_chain is rnd.fit_rnd_chain
    assert calculators.rnd_moments is rnd.rnd_moments
    assert calculators.fit_ou is ou.fit_ou and calculators.optimal_weight is ou.optimal_weight
    for name in calculators.__all__:
        obj = getattr(calculators, name)
        assert obj.__module__.startswith("volbacktest.engine.calculators."), name
    assert set(calculators.__all__) <= set(dir(calculators))


# --------------------------------------------------------------------------- run
def test_run_takes_a_dict_a_path_or_a_config_with_the_same_result(tmp_path):
    cfg = config_from_mapping(VRATIO)
    expected = run_backtest(cfg).metrics["sharpe"]
    path = tmp_path / "api_vratio.yaml"
    path.write_text(yaml.safe_dump(VRATIO), encoding="utf-8")
    for config in (VRATIO, path, str(path), cfg):
        res = vb.run(config)
        assert isinstance(res, vb.RunResult)
        assert res.metrics["sharpe"] == expected
        assert res.config.name == "api_vratio"
    res = vb.run({k: v for k, v in VRATIO.items() if k != "name"})
    assert res.config.name == "vratio"  # a dict without a name is named after its strategy
    assert res.metrics["sharpe"] == expected
    assert res.equity.index.equals(res.returns.index)
    assert list(res.weights.columns) == ["xiv", "vxx"]
    assert {"date", "symbol"} <= set(res.transactions.columns)
    assert "api_vratio" in repr(vb.run(cfg)) and "sharpe=" in repr(vb.run(cfg))


def test_the_acceptance_line_matches_configs_vratio_yaml():
    """``vb.run({'name': 'nb', 'strategy': {'name': 'vratio'}})`` is ``volbacktest run
    configs/vratio.yaml``: that file sets only default values."""
    res = vb.run({"name": "nb", "strategy": {"name": "vratio"}})
    cli = run_backtest(load_config(REPO / "configs" / "vratio.yaml"))
    assert res.metrics["sharpe"] == cli.metrics["sharpe"]


def test_bad_configs_raise_config_errors():
    with pytest.raises(vb.ConfigError, match=r"strategy\.params\.windw.*did you mean 'window'"):
        vb.run({"strategy": {"name": "vratio", "params": {"windw": 3}}, **SHORT})
    with pytest.raises(vb.ConfigError, match="expected a BacktestConfig, a YAML path or a dict"):
        vb.run(42)
    with pytest.raises(vb.ConfigError, match="config file not found"):
        vb.run("no/such/config.yaml")


# --------------------------------------------------------------------------- data=
def test_user_frames_replace_datasets(frames):
    base = vb.run(VRATIO)
    same = vb.run(VRATIO, data=dict(frames))
    assert same.metrics["sharpe"] == base.metrics["sharpe"]
    assert any("the user's frame" in n for n in same.notes)
    # VIX3M at twice the VIX: the ratio is always above 1, so XIV is always held
    vix = frames["vix"]
    calm = vb.run(VRATIO, data={"vix3m": vix.assign(close=vix["close"] * 2.0)})
    assert (calm.weights["xiv"].dropna() == 1.0).all()
    assert (base.weights["xiv"].dropna() == 0.0).any()
    assert calm.metrics["sharpe"] != base.metrics["sharpe"]
    # a Series of closes is a dataset too
    series = vb.run(VRATIO, data={"vix3m": vix["close"] * 2.0})
    assert series.metrics["sharpe"] == calm.metrics["sharpe"]


def test_bad_user_frames_raise_naming_the_dataset(frames):
    vix, xiv = frames["vix"], frames["xiv"]
    dup = pd.concat([vix.iloc[:2], vix]).sort_index()
    with pytest.raises(vb.DataError, match=r"data\['vix'\]: 2 duplicate date\(s\)"):
        vb.run(VRATIO, data={"vix": dup})
    neg = xiv.copy()
    neg.iloc[10, neg.columns.get_loc("close")] = -1.0
    with pytest.raises(vb.DataError, match=r"data\['xiv'\]: column 'close' .* <= 0 at row 10"):
        vb.run(VRATIO, data={"xiv": neg})
    undated = vix.set_axis([f"bar{i}" for i in range(len(vix))])
    with pytest.raises(vb.DataError, match=r"data\['vix'\]: the index is not dates"):
        vb.run(VRATIO, data={"vix": undated})
    with pytest.raises(vb.DataError, match=r"data\['vix'\]: the index is not dates"):
        vb.run(VRATIO, data={"vix": vix.reset_index(drop=True)})  # a RangeIndex
    with pytest.raises(vb.ConfigError, match=r"frames given for \['spx'\].*do not use"):
        vb.run(VRATIO, data={"spx": vix})
    with pytest.raises(vb.ConfigError, match="expected a mapping of dataset names"):
        vb.run(VRATIO, data=[vix])


def _prices(n: int = 300) -> pd.Series:
    rng = np.random.default_rng(3)
    dates = pd.bdate_range("2020-01-01", periods=n)
    return pd.Series(100 * np.exp(np.cumsum(rng.normal(2e-4, 0.01, n))), index=dates)


def test_a_market_from_frames_runs_without_the_embedded_market():
    prices = _prices()
    cfg = {
        "strategy": {"name": "buy_and_hold", "params": {"asset": "mine"}},
        "report": SHORT["report"],
    }
    by_name = vb.run(cfg, data={"mine": prices})
    from_series = vb.run(cfg, data=vb.Market.from_frames({"mine": prices}, tradable=["mine"]))
    frame = prices.rename("close").rename_axis("date").reset_index()  # a `date` column
    from_frame = vb.run(cfg, data=vb.Market.from_frames({"mine": frame}, tradable=["mine"]))
    assert by_name.equity.equals(from_series.equity)
    assert by_name.equity.equals(from_frame.equity)
    # held from the first fill (bar 1's close) to the end, no costs
    growth = by_name.equity.iloc[-1] / by_name.equity.iloc[0]
    assert growth == pytest.approx(prices.iloc[-1] / prices.iloc[1], rel=1e-9)
    other = vb.Market.from_frames({"other": prices}, tradable=["other"])
    with pytest.raises(vb.ConfigError, match=r"no frame for \['mine'\]"):
        vb.run(cfg, data=other)
    at_open = {**cfg, "execution": {"fill": "next_open"}}
    closes_only = vb.Market.from_frames({"mine": prices}, tradable=["mine"])
    with pytest.raises(vb.DataError, match=r"no open prices for \['mine'\].*next_open"):
        vb.run(at_open, data=closes_only)
    with pytest.raises(vb.DataError, match="'mine' has no open price"):
        vb.run(at_open, data={"mine": prices})


# --------------------------------------------------------------------------- user strategies
def test_a_user_strategy_runs_without_entering_the_registry():
    rule = _ratio_rule(flip=False)
    assert isinstance(rule, StrategySpec) and rule.name == "ratio_rule"
    assert rule.summary == "Averaged VIX3M/VIX above the threshold: XIV, else VXX."
    res = vb.run(
        {"strategy": {"name": "ratio_rule", "params": {"window": 20}}, **SHORT}, strategy=rule
    )
    assert res.config.name == "ratio_rule"
    assert res.config.params.window == 20
    assert res.metrics["trades"] > 0
    assert "ratio_rule" not in strategies.REGISTRY
    assert "ratio_rule" not in strategies.names()
    # without strategy= the name is unknown, as any unregistered name
    with pytest.raises(vb.ConfigError, match="strategy.name: unknown strategy 'ratio_rule'"):
        vb.run({"strategy": {"name": "ratio_rule"}, **SHORT})


def test_a_redefined_user_strategy_just_works():
    first = vb.run({"strategy": {"name": "ratio_rule"}, **SHORT}, strategy=_ratio_rule(False))
    again = vb.run({"strategy": {"name": "ratio_rule"}, **SHORT}, strategy=_ratio_rule(False))
    flipped = vb.run({"strategy": {"name": "ratio_rule"}, **SHORT}, strategy=_ratio_rule(True))
    assert again.metrics["sharpe"] == first.metrics["sharpe"]
    held = first.weights["xiv"].dropna()
    assert flipped.weights["xiv"].dropna().equals(1.0 - held)
    assert "ratio_rule" not in strategies.REGISTRY


def test_user_strategy_config_forms_and_validation(tmp_path):
    rule = _ratio_rule(False)
    no_section = vb.run(dict(SHORT), strategy=rule)  # strategy filled in
    no_name = vb.run({"strategy": {"params": {"window": 10}}, **SHORT}, strategy=rule)
    assert no_section.config.strategy.name == no_name.config.strategy.name == "ratio_rule"
    assert no_section.metrics["sharpe"] == no_name.metrics["sharpe"]
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"strategy": {"name": "ratio_rule"}, **SHORT}), "utf-8")
    from_path = vb.run(path, strategy=rule)
    assert from_path.config.name == "mine"
    assert from_path.metrics["sharpe"] == no_section.metrics["sharpe"]
    cfg = config_from_mapping(
        {"name": "c", "strategy": {"name": "ratio_rule"}, **SHORT}, strategy=rule
    )
    assert cfg.spec is rule and cfg.user_strategy is rule
    assert vb.run(cfg).metrics["sharpe"] == no_section.metrics["sharpe"]
    redefined = _ratio_rule(True)
    assert vb.run(cfg, strategy=redefined).config.spec is redefined
    # overrides (how sweeps build combinations) keep the user's strategy
    over = cfg.with_overrides(**{"strategy.params.window": 15})
    assert over.spec is rule and over.params.window == 15
    with pytest.raises(vb.ConfigError) as err:
        vb.run({"strategy": {"params": {"windw": 3}}, **SHORT}, strategy=rule)
    assert str(err.value) == (
        "strategy.params.windw: unknown key 'windw' (did you mean 'window'?); valid keys: "
        "threshold, window"
    )
    with pytest.raises(vb.ConfigError, match=r"strategy\.params\.window: Input should be"):
        vb.run({"strategy": {"params": {"window": "ten"}}, **SHORT}, strategy=rule)
    with pytest.raises(vb.ConfigError, match="'vratio' is not the strategy given"):
        vb.run({"strategy": {"name": "vratio"}, **SHORT}, strategy=rule)
    with pytest.raises(vb.ConfigError, match="expected a strategy made with"):
        vb.run(dict(SHORT), strategy=rule.decide)


def test_the_decorator_checks_its_arguments():
    @vb.strategy(params=RatioParams, name="other_name", summary="given")
    def anything(inputs, p):
        return np.zeros((len(inputs["vix"]), 2))

    assert anything.name == "other_name" and anything.summary == "given"
    assert anything.decide.__name__ == "anything"

    class NoAssets(vb.StrategyParams):
        def inputs(self):
            return ("vix",)

    with pytest.raises(TypeError, match=r"define assets\(\)"):
        vb.strategy(params=NoAssets)
    with pytest.raises(TypeError, match="subclass of StrategyParams"):
        vb.strategy(params=dict)


def test_register_replaces_the_same_definition_and_refuses_another():
    def make(flip: bool) -> StrategySpec:
        def api_test_rule(inputs, p):
            return np.zeros((len(inputs["vix"]), 2))

        return StrategySpec("api_test_rule", RatioParams, api_test_rule, str(flip))

    try:
        first = strategies.register(make(False))
        again = strategies.register(make(True))  # same module and qualname: a re-run cell
        assert strategies.get("api_test_rule") is again is not first

        def api_test_rule(inputs, p):  # a different definition under the same name
            return np.zeros((len(inputs["vix"]), 2))

        with pytest.raises(ValueError, match="'api_test_rule' is already registered"):
            strategies.register(StrategySpec("api_test_rule", RatioParams, api_test_rule, ""))
        with pytest.raises(ValueError, match="'vratio' is already registered"):
            strategies.register(StrategySpec("vratio", RatioParams, api_test_rule, ""))
        assert strategies.get("api_test_rule") is again
    finally:
        strategies.REGISTRY.pop("api_test_rule", None)


# --------------------------------------------------------------------------- sweep
def _sweep_spec(name: str) -> dict:
    return {
        "name": name,
        "strategy": {"name": "ratio_rule"},
        **SHORT,
        "sweep": {"grid": {"window": [5, 10, 20], "threshold": [1.0, 1.05]}, "top": 1},
    }


def test_a_user_strategy_sweeps_on_the_vectorised_executor(tmp_path):
    rule = _ratio_rule(False)
    out = vb.sweep(_sweep_spec("api_sweep"), strategy=rule, out=tmp_path, report=False)
    assert len(out.ranking) == 6
    assert out.folder == tmp_path / "api_sweep"
    assert not out.drifted and len(out.top) == 1
    best = out.ranking.iloc[0]
    params = {"window": int(best["p.window"]), "threshold": float(best["p.threshold"])}
    single = vb.run({"strategy": {"params": params}, **SHORT}, strategy=rule)
    assert single.metrics["sharpe"] == pytest.approx(best["sharpe"], rel=1e-9)
    assert "ratio_rule" not in strategies.REGISTRY


def test_pool_and_dask_refuse_a_user_strategy(tmp_path):
    rule = _ratio_rule(False)
    for executor in ("local", "dask"):
        with pytest.raises(vb.ConfigError, match="use executor: vectorised"):
            vb.sweep(
                _sweep_spec("api_refused"),
                strategy=rule,
                executor=executor,
                scheduler="tcp://127.0.0.1:1",
                out=tmp_path,
            )
    with pytest.raises(vb.ConfigError, match="'vectorised' on the Dask cluster"):
        vb.sweep(
            _sweep_spec("api_refused"), strategy=rule, scheduler="tcp://127.0.0.1:1", out=tmp_path
        )
    assert not (tmp_path / "api_refused").exists()  # refused before the store is made
    with pytest.raises(vb.ConfigError, match="did you mean 'local'"):
        vb.sweep(_sweep_spec("api_refused"), strategy=rule, executor="locl", out=tmp_path)


def test_sweep_takes_a_yaml_path(tmp_path):
    spec = {
        "name": "api_grid",
        "strategy": {"name": "vratio"},
        **SHORT,
        "sweep": {"grid": {"window": [5, 10]}, "top": 0},
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    by_path = vb.sweep(path, out=tmp_path / "a", report=False, progress=False)
    by_dict = vb.sweep(spec, out=tmp_path / "b", report=False, progress=False)
    assert list(by_path.ranking["sharpe"]) == list(by_dict.ranking["sharpe"])


# --------------------------------------------------------------------------- outputs
def test_plot_and_tearsheet_return_figures_and_save_writes_the_run_folder(tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    res = vb.run(VRATIO)
    fig = res.plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    sheet = res.tearsheet()
    assert isinstance(sheet, Figure) and len(sheet.axes) > 2
    assert not list(tmp_path.iterdir())  # nothing written
    assert plt.get_fignums() == []  # neither figure is left in pyplot's manager
    folder = res.save(tmp_path)
    assert folder == tmp_path / "api_vratio"
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["sharpe"] == res.metrics["sharpe"]
    assert {"config.yaml", "returns.csv", "weights.csv", "transactions.csv"} <= {
        p.name for p in folder.iterdir()
    }
    # writing the plots does not leave the caller's backend switched to Agg
    before = matplotlib.get_backend()
    plt.switch_backend("svg")
    try:
        with_plots = vb.run({**VRATIO, "report": {"plots": True, "tearsheet": True}})
        folder = with_plots.save(tmp_path / "plots")
        assert (folder / "equity.png").is_file() and (folder / "tearsheet.png").is_file()
        assert matplotlib.get_backend() == "svg"
    finally:
        plt.switch_backend(before)


# --------------------------------------------------------------------------- README
def _readme_snippet() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## From Python\n(.*?)(?=^## )", text, re.S | re.M)
    assert section, "README.md has no '## From Python' section"
    blocks = re.findall(r"```python\n(.*?)```", section.group(1), re.S)
    assert len(blocks) == 1, "the section holds one runnable python block"
    return blocks[0]


def test_the_readme_snippet_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme_snippet"}
    exec(compile(_readme_snippet(), "README.md#from-python", "exec"), namespace)  # noqa: S102
    assert isinstance(namespace["fig"], Figure)
    assert namespace["mine"].config.strategy.name == "calm"
    assert "calm" not in strategies.REGISTRY
    assert (tmp_path / "results" / "buy_and_hold" / "metrics.json").is_file()
    assert "RunResult('vratio'" in capsys.readouterr().out
