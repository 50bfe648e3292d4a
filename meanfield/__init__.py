"""meanfield: mean-field SGD particle simulator for wide two-layer networks.

The public API mirrors the command line: every command is one call (``meanfield run`` ↔
:func:`run_simulation`, ``limit`` ↔ :func:`run_limit`, ``rate`` ↔ :func:`run_rate`,
``regimes`` ↔ :func:`run_regimes`), beside the pieces they are built from.
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
from .io import load_results as load_results
from .io import trajectory_dataset as trajectory_dataset
from .limit import Limit as Limit
from .limit import solve_limit as solve_limit
from .limit.cache import LimitCache as LimitCache
from .model import Model as Model
from .model import drift as drift
from .model import make_model as make_model
from .model import mean_field as mean_field
from .model import noise_sample as noise_sample
from .rates import RateFit as RateFit
from .rates import fit_rate as fit_rate
from .runner import run_sweep as run_sweep
from .schedule import gamma_alpha_n as gamma_alpha_n
from .schedule import make_schedule as make_schedule
from .studies.rate import run_rate as run_rate
from .studies.regimes import run_regimes as run_regimes
from .studies.run import run_limit as run_limit
from .studies.run import run_simulation as run_simulation
from .wasserstein import w2 as w2

__all__ = [
    "Config", "ConfigError", "DataLaw", "Limit", "LimitCache", "Model", "NumericalError",
    "RateFit", "Trajectory", "drift", "fit_rate", "gamma_alpha_n", "load_config",
    "load_results", "make_data", "make_model", "make_schedule", "mean_field", "noise_sample",
    "parse_config", "run_limit", "run_rate", "run_regimes", "run_simulation", "run_sweep",
    "simulate", "solve_limit", "to_toml", "trajectory_dataset", "w2", "with_values",
]
