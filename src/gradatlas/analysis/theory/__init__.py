"""Mean-field predictions of the gradient factor at initialization, set against measurement.

After Poole et al. (2016) and Schoenholz et al. (2017): in a wide network at initialization the
norm of the backpropagated gradient changes per layer (or per block, or per time step) by a factor
that a Gaussian average over the activation predicts. Everything here is pure computation.

Modules (each name below is also importable from ``gradatlas.analysis.theory`` itself):

- ``gaussian``: Gaussian expectations (panel quadrature) and activations as numpy functions.
- ``meanfield``: the plain MLP: fixed point q* of the length map, chi_1, the per-layer factor.
- ``batchnorm``, ``residual``, ``recurrent``: batch-norm MLPs, pre-activation residual MLPs and
  vanilla RNNs over time.
- ``variances``: the weight and bias variances an initializer gives.
- ``fits``: the measured factor, fitted to a run's recorded gradient norms (``LayerArrays``).
- ``table``: the theory table, prediction against measurement, one row per run.
"""

from gradatlas.analysis.theory.batchnorm import batchnorm_chi
from gradatlas.analysis.theory.fits import (
    LAYER_KEYS, NON_HIDDEN, LayerArrays, LayersLike, factor_fit, hidden_profile, measured_factor,
    split_layers, split_timesteps, time_factor_fit)
from gradatlas.analysis.theory.gaussian import (
    Q_MAX, Q_MIN, ActivationLike, activation_functions, gaussian_expectation, gaussian_expectations)
from gradatlas.analysis.theory.meanfield import chi1, fixed_point, layerwise_factor, predicted_factor
from gradatlas.analysis.theory.recurrent import (
    GAIN_BRACKET, INPUT_DIM, INPUT_POWER, adding_input_power, crossing_gain, rnn_factor_of_gain, rnn_predicted_factor,
    rnn_time_factors)
from gradatlas.analysis.theory.residual import residual_factors, second_moment_variance
from gradatlas.analysis.theory.table import (
    BATCHNORM, MEANFIELD, RESIDUAL, RNN_TIME, THEORY_COLUMNS, beyond_meanfield_rows, theory_table,
    theory_table_from_arrays)
from gradatlas.analysis.theory.variances import bias_variance, is_missing, rnn_variances, weight_variance

__all__ = [
    "ActivationLike", "BATCHNORM", "GAIN_BRACKET", "INPUT_DIM", "INPUT_POWER", "LAYER_KEYS", "LayerArrays", "LayersLike",
    "MEANFIELD", "NON_HIDDEN", "Q_MAX", "Q_MIN", "RESIDUAL", "RNN_TIME", "THEORY_COLUMNS",
    "activation_functions", "adding_input_power", "batchnorm_chi", "beyond_meanfield_rows", "bias_variance",
    "chi1", "crossing_gain", "factor_fit", "fixed_point", "gaussian_expectation", "gaussian_expectations", "hidden_profile",
    "is_missing", "layerwise_factor", "measured_factor", "predicted_factor", "residual_factors",
    "rnn_factor_of_gain", "rnn_predicted_factor", "rnn_time_factors", "rnn_variances", "second_moment_variance", "split_layers", "split_timesteps",
    "theory_table", "theory_table_from_arrays", "time_factor_fit", "weight_variance",
]
