"""meanfield: mean-field SGD particle simulator for wide two-layer networks.

The public API mirrors the command line (``meanfield run`` ↔ :func:`simulate`).
"""

from ._version import __version__ as __version__
from .config import Config as Config
from .config import load_config as load_config
from .config import parse_config as parse_config
from .config import to_toml as to_toml
from .config import with_values as with_values
from .data import DataLaw as DataLaw
from .data import make_data as make_data
from .engine import Trajectory as Trajectory
from .engine import simulate as simulate
from .errors import ConfigError as ConfigError
from .errors import NumericalError as NumericalError
from .limit import Limit as Limit
from .limit import solve_limit as solve_limit
from .model import Model as Model
from .model import drift as drift
from .model import make_model as make_model
from .model import mean_field as mean_field
from .model import noise_sample as noise_sample
from .rates import RateFit as RateFit
from .rates import fit_rate as fit_rate
from .regimes import run_regimes as run_regimes
from .schedule import gamma_alpha_n as gamma_alpha_n
from .schedule import make_schedule as make_schedule
from .store import load_results as load_results
from .store import trajectory_dataset as trajectory_dataset
from .sweep import run_sweep as run_sweep
from .wasserstein import w2 as w2

__all__ = [
    "Config", "ConfigError", "DataLaw", "Limit", "Model", "NumericalError", "RateFit",
    "Trajectory", "drift", "fit_rate", "gamma_alpha_n", "load_config", "load_results",
    "make_data", "make_model", "make_schedule", "mean_field", "noise_sample", "parse_config",
    "run_regimes", "run_sweep", "simulate", "solve_limit", "to_toml", "trajectory_dataset", "w2",
    "with_values",
]
