"""Occupancy forecasting for car parks: CSV import, features, model, evaluation.

Pure Python (numpy, scikit-learn, holidays, zoneinfo); no Django. Entry points:

- :func:`read_occupancy_csv` reads the Birmingham-format CSV into hourly :class:`CarParkSeries`
  with a :class:`DataQualityReport`.
- :class:`OccupancyForecaster` predicts a car park's occupancy rate for an hour from data at
  least 24 hours older than that hour.
- :func:`evaluate_forecast` runs the hold-out protocol against a seasonal-naive baseline;
  :func:`plot_forecasts` draws the result.
"""

from .csv_reader import DataQualityReport, ImportResult, read_occupancy_csv
from .evaluation import CarParkScore, EvaluationResult, NotEnoughHistory, evaluate_forecast, plot_forecasts
from .features import FeatureConfig
from .model import Forecast, ForecastRequest, ModelConfig, OccupancyForecaster
from .series import CarParkSeries, HourlyPoint

__all__ = [
    "CarParkScore",
    "CarParkSeries",
    "DataQualityReport",
    "EvaluationResult",
    "FeatureConfig",
    "Forecast",
    "ForecastRequest",
    "HourlyPoint",
    "ImportResult",
    "ModelConfig",
    "NotEnoughHistory",
    "OccupancyForecaster",
    "evaluate_forecast",
    "plot_forecasts",
    "read_occupancy_csv",
]
