"""Day-ahead occupancy-rate model: corrections to a seasonal-naive anchor, learned across car parks.

The members predict ``rate - anchor`` (anchor = the same hour last week, or the multi-week
profile; see :func:`features.build_features`) and add the anchor back. Learning the correction
instead of the raw rate lets one model serve car parks of very different levels and keeps it
from relearning the daily shape; the inputs that drive the correction are the newest evidence of
a level change (yesterday up to the same hour vs. last week, the last week vs. the week before)
and how unusual last week's value itself was.

Usage::

    model = OccupancyForecaster(tz="Europe/London", country="GB", subdiv="ENG", seed=0)
    model.fit(history)                           # list[CarParkSeries]
    forecasts = model.predict(history, [ForecastRequest("BHMBCCMKT01", hours)])

Every forecast for hour ``t`` uses only history hours that start at or before ``t - 24 h``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Self

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import HuberRegressor

from .features import FeatureConfig, FeatureMatrix, Panel, build_features, build_panel
from .series import CarParkSeries, to_local_hour

__all__ = ["Forecast", "ForecastRequest", "ModelConfig", "OccupancyForecaster"]

EXTRA_INPUTS = ("booked_rate", "price")


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters, chosen on the last weeks of the training period (never the test weeks).

    The forecast is the weighted mean of three members, each predicting a correction:
    ``weights[0]``: boosted trees on ``rate - anchor`` (anchor = same hour last week),
    ``weights[1]``: boosted trees on ``rate - profile`` (mean of the last weeks' same hour),
    ``weights[2]``: a Huber linear model on ``rate - anchor`` using only the relative features.
    Each tree member averages ``n_models`` boosters with different seeds and feature subsets.
    """

    features: FeatureConfig = field(default_factory=FeatureConfig)
    weights: tuple[float, float, float] = (1.0, 1.0, 1.0)
    n_models: int = 2
    max_iter: int = 200
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 40
    l2_regularization: float = 1.0
    max_features: float = 0.7
    loss: str = "absolute_error"  # the evaluation metric is MAE
    huber_alpha: float = 1e-3


@dataclass(frozen=True)
class ForecastRequest:
    """Hours to forecast for one car park.

    ``hours`` are hour starts: naive local wall clock or tz-aware datetimes (converted to the model
    zone), or a ``datetime64`` array of naive local hours (fastest for bulk requests).
    ``booked_rate``/``price``, when given, align with ``hours`` (None entries = unknown).
    """

    code: str
    hours: Sequence[datetime] | np.ndarray
    booked_rate: Sequence[float | None] | None = None
    price: Sequence[float | Decimal | None] | None = None


@dataclass(frozen=True, eq=False)
class Forecast:
    """Forecast occupancy rates for one car park: ``rate[i]`` is for ``local_hour[i]``."""

    code: str
    local_hour: np.ndarray
    rate: np.ndarray


class OccupancyForecaster:
    """One model across car parks of one time zone. Deterministic for a given ``seed``."""

    def __init__(
        self,
        *,
        tz: str = "Europe/London",
        country: str | None = "GB",
        subdiv: str | None = "ENG",
        seed: int = 0,
        config: ModelConfig | None = None,
    ) -> None:
        self.tz = tz
        self.country = country
        self.subdiv = subdiv
        self.seed = seed
        self.config = config or ModelConfig()
        self.extras: tuple[str, ...] = ()
        self.feature_names: tuple[str, ...] = ()
        self._trees: tuple[list[HistGradientBoostingRegressor], list[HistGradientBoostingRegressor]] = ([], [])
        self._linear: HuberRegressor | None = None
        self._linear_cols: tuple[int, ...] = ()
        self._linear_scale = np.ones(0)
        self._fitted = False

    # -- training -------------------------------------------------------------------------------
    def fit(self, series: Sequence[CarParkSeries], *, end: datetime | date | None = None) -> Self:
        """Train on the hours of ``series`` that start before ``end`` (local; None = all).

        Data from ``end`` on is never read, so ``fit(series, end=holdout_start)`` is a clean split.
        Optional inputs (booked_rate, price) are used iff some training hour has them.
        Raises ValueError if there is nothing to learn from.
        """
        if end is not None:
            end_dt = end if isinstance(end, datetime) else datetime(end.year, end.month, end.day)  # noqa: DTZ001
            series = [s.slice(end=to_local_hour(end_dt, self.tz)) for s in series]
        series = [s for s in series if len(s.local_hour)]
        if not series:
            raise ValueError("no training data")
        self.extras = tuple(
            name
            for name in EXTRA_INPUTS
            if any(getattr(s, name) is not None and np.isfinite(getattr(s, name)).any() for s in series)
        )
        panel = build_panel(series, tz=self.tz)
        c, d, h = np.nonzero(~np.isnan(panel.rate))
        fm = self._features(panel, c, d, h)
        self.feature_names = fm.names
        y = panel.rate[c, d, h]
        ok = ~np.isnan(fm.anchor)
        if not ok.any():
            raise ValueError("no training hour has a reference value (need history >= 24 h old)")
        X = _fill_empty_columns(fm.X[ok])
        to_anchor = (y - fm.anchor)[ok]
        to_profile = (y - fm.profile_anchor)[ok]
        cfg = self.config
        self._trees = ([], [])
        for member, target in enumerate((to_anchor, to_profile)):
            if cfg.weights[member] <= 0:
                continue
            for i in range(cfg.n_models):
                model = HistGradientBoostingRegressor(
                    loss=cfg.loss,
                    max_iter=cfg.max_iter,
                    learning_rate=cfg.learning_rate,
                    max_leaf_nodes=cfg.max_leaf_nodes,
                    min_samples_leaf=cfg.min_samples_leaf,
                    l2_regularization=cfg.l2_regularization,
                    max_features=cfg.max_features if cfg.n_models > 1 else 1.0,
                    early_stopping=False,  # a random validation split would make results seed-noisy
                    random_state=self.seed * 1000 + member * 100 + i,
                )
                self._trees[member].append(model.fit(X, target))
        self._linear = None
        if cfg.weights[2] > 0:
            self._linear_cols = fm.linear_cols
            lin_x = np.nan_to_num(X[:, list(fm.linear_cols)])  # NaN relative evidence = no change
            # Unit-scale columns: L-BFGS converges in far fewer steps (fit time), same model.
            self._linear_scale = np.where(lin_x.std(axis=0) > 0, lin_x.std(axis=0), 1.0)
            self._linear = HuberRegressor(alpha=cfg.huber_alpha, max_iter=1000).fit(
                lin_x / self._linear_scale, to_anchor
            )
        self._fitted = True
        return self

    # -- prediction -----------------------------------------------------------------------------
    def _features(self, panel: Panel, c: np.ndarray, d: np.ndarray, h: np.ndarray) -> FeatureMatrix:
        return build_features(
            panel,
            c,
            d,
            h,
            config=self.config.features,
            country=self.country,
            subdiv=self.subdiv,
            extras=self.extras,
        )

    def predict_cells(self, panel: Panel, c: np.ndarray, d: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Forecast rates for panel cells ``(c, d, h)``; NaN where no reference value exists.

        Reads only panel cells at least 24 h older than each target (see features module).
        """
        if not self._fitted:
            raise RuntimeError("model is not fitted")
        fm = self._features(panel, c, d, h)
        return self._predict_matrix(fm)

    def _predict_matrix(self, fm: FeatureMatrix) -> np.ndarray:
        if fm.names != self.feature_names:
            raise ValueError("feature set differs from the one the model was trained on")
        w = self.config.weights
        parts, weights = [], []
        for member, anchor in enumerate((fm.anchor, fm.profile_anchor)):
            if self._trees[member]:
                correction = np.mean([m.predict(fm.X) for m in self._trees[member]], axis=0)
                parts.append(anchor + correction)
                weights.append(w[member])
        if self._linear is not None:
            lin_x = np.nan_to_num(fm.X[:, list(self._linear_cols)]) / self._linear_scale
            parts.append(fm.anchor + self._linear.predict(lin_x))
            weights.append(w[2])
        forecast = np.average(np.vstack(parts), axis=0, weights=weights)
        # NaN anchor (no usable history) stays NaN; rates live in [0, 1] after import clipping.
        return np.clip(forecast, 0.0, 1.0)

    def predict(self, history: Sequence[CarParkSeries], requests: Sequence[ForecastRequest]) -> list[Forecast]:
        """Forecast the requested hours from ``history``.

        Each target hour ``t`` only uses history hours starting at or before ``t - 24 h``; newer
        history is ignored, so passing the full history is safe. A request for a car park that has
        no history gets NaN rates. Returns one :class:`Forecast` per request, in order.

        History needed: about ``FeatureConfig.lookback_days`` days before the first target (more
        is fine, only slower; less degrades to the fallbacks). ``booked_rate``/``price`` given in
        the requests are used only if the model was trained with them (NaN when missing).
        """
        by_code = {s.code: s for s in history}
        wanted: list[CarParkSeries] = []
        index: dict[str, int] = {}
        req_hours: list[np.ndarray] = []
        for req in requests:
            req_hours.append(_local_hours(req.hours, self.tz))
            if req.code not in index:
                index[req.code] = len(wanted)
                base = by_code.get(req.code)
                wanted.append(
                    base
                    if base is not None
                    else CarParkSeries.from_arrays(req.code, 1, self.tz, np.array([], dtype="datetime64[h]"), [])
                )
        all_hours = [h for h in req_hours if len(h)] + [s.local_hour for s in wanted if len(s.local_hour)]
        if not all_hours:
            return [Forecast(r.code, h, np.full(len(h), np.nan)) for r, h in zip(requests, req_hours, strict=True)]
        lo = min(a.min() for a in all_hours).astype("datetime64[D]")
        hi = max(a.max() for a in all_hours).astype("datetime64[D]")
        panel = build_panel(wanted, tz=self.tz, start_day=lo, end_day=hi)
        # Optional inputs for the target hours are written into the panel cells themselves.
        for req, hours in zip(requests, req_hours, strict=True):
            cc = index[req.code]
            dd, hh = panel.day_index(hours)
            for name, values in (("booked_rate", req.booked_rate), ("price", req.price)):
                if values is not None:
                    arr = panel.booked if name == "booked_rate" else panel.price
                    arr[cc, dd, hh] = [np.nan if v is None else float(v) for v in values]
        c = np.concatenate([np.full(len(h), index[r.code]) for r, h in zip(requests, req_hours, strict=True)])
        dd, hh = panel.day_index(np.concatenate(req_hours))
        rates = self.predict_cells(panel, c.astype(np.int64), dd, hh)
        out, pos = [], 0
        for req, hours in zip(requests, req_hours, strict=True):
            out.append(Forecast(req.code, hours, rates[pos : pos + len(hours)]))
            pos += len(hours)
        return out


def _fill_empty_columns(X: np.ndarray) -> np.ndarray:
    """``X`` with every column that has no value at all set to 0 (a copy only if one is changed).

    With short history some inputs are missing for every training hour (the 28-day lag before
    four weeks of data, the week-before trend before about two). Such a column carries no
    information, and the trees' binning fails on a column without a single value ("window shape
    cannot be larger than input array shape"). A constant column is never split on, so the trees
    ignore that input, also at prediction time when it has values; the linear member reads it as 0
    anyway. Once history covers it, the next training run learns from it. Partly missing columns
    stay NaN: the trees route missing values themselves.
    """
    empty = np.isnan(X).all(axis=0)
    if not empty.any():
        return X
    filled = X.copy()
    filled[:, empty] = 0.0
    return filled


def _local_hours(hours: Sequence[datetime] | np.ndarray, tz: str) -> np.ndarray:
    """Naive local hour starts as ``datetime64[h]``."""
    if isinstance(hours, np.ndarray):
        return hours.astype("datetime64[h]")
    return np.array([np.datetime64(to_local_hour(t, tz), "h") for t in hours], dtype="datetime64[h]")
