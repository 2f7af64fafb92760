"""Mean-field predictions of the gradient factor at initialization, set against measurement.

After Poole et al. (2016) and Schoenholz et al. (2017): in a wide network at initialization the
norm of the backpropagated gradient changes per layer (or per block, or per time step) by a factor
that a Gaussian average over the activation predicts. Everything here is pure computation.

Modules (each name below is also importable from ``gradatlas.analysis.theory`` itself):

- ``gaussian``: Gaussian expectations (panel quadrature) and activations as numpy functions.
- ``meanfield``: the plain MLP: fixed point q* of the length map, chi_1, the per-layer factor.
- ``spectra``: the spread of the hidden-to-hidden Jacobian's squared singular values (free
  probability), and the table of it against the recorded ``jacobian_sv2``.
- ``batchnorm``, ``residual``, ``recurrent``: normalized MLPs (batch norm at any batch size,
  layer norm), pre-activation residual MLPs and vanilla RNNs over time.
- ``finite_width``: the fluctuation of the backward gain of He ReLU MLPs, set by sum 1/n_l.
- ``variances``: the weight and bias variances an initializer gives.
- ``fits``: the measured factor, fitted to a run's recorded gradient norms (``LayerArrays``).
- ``table``: the theory table, prediction against measurement, one row per run.
"""

from gradatlas.analysis.theory.batchnorm import MIN_BATCH, batchnorm_chi, batchnorm_chi_at, layernorm_chi
from gradatlas.analysis.theory.finite_width import (
    LOG_VARIANCE_PER_BETA, beta, layer_log_moments, log_gain_moments, mlp_widths)
from gradatlas.analysis.theory.fits import (
    LAYER_KEYS, NON_HIDDEN, LayerArrays, LayersLike, factor_fit, hidden_profile, measured_factor,
    split_layers, split_timesteps, time_factor_fit)
from gradatlas.analysis.theory.gaussian import (
    Q_MAX, Q_MIN, ActivationLike, activation_functions, gaussian_expectation, gaussian_expectations,
    squared_expectation)
from gradatlas.analysis.theory.meanfield import chi1, fixed_point, layerwise_factor, predicted_factor
from gradatlas.analysis.theory.recurrent import (
    GAIN_BRACKET, INPUT_DIM, INPUT_POWER, adding_input_power, crossing_gain, rnn_factor_of_gain, rnn_predicted_factor,
    rnn_time_factors)
from gradatlas.analysis.theory.residual import residual_factors, second_moment_variance
from gradatlas.analysis.theory.spectra import (
    SPECTRA_COLUMNS, WEIGHT_S1, mean_sv2, normalized_variance, preactivation_variances, spectra_table,
    weight_ensemble)
from gradatlas.analysis.theory.table import (
    BATCHNORM, MEANFIELD, RESIDUAL, RNN_TIME, THEORY_COLUMNS, beyond_meanfield_rows, theory_table,
    theory_table_from_arrays)
from gradatlas.analysis.theory.variances import bias_variance, is_missing, rnn_variances, weight_variance

__all__ = [
    "ActivationLike", "BATCHNORM", "GAIN_BRACKET", "INPUT_DIM", "INPUT_POWER", "LAYER_KEYS", "LOG_VARIANCE_PER_BETA",
    "LayerArrays", "LayersLike", "MEANFIELD", "MIN_BATCH", "NON_HIDDEN", "Q_MAX", "Q_MIN", "RESIDUAL",
    "RNN_TIME", "SPECTRA_COLUMNS", "THEORY_COLUMNS", "WEIGHT_S1", "activation_functions",
    "adding_input_power", "batchnorm_chi", "batchnorm_chi_at", "beta", "beyond_meanfield_rows",
    "bias_variance", "chi1", "crossing_gain", "factor_fit", "fixed_point", "gaussian_expectation", "gaussian_expectations",
    "hidden_profile", "is_missing", "layer_log_moments", "layernorm_chi", "layerwise_factor",
    "log_gain_moments", "mean_sv2", "measured_factor", "mlp_widths", "normalized_variance",
    "preactivation_variances", "predicted_factor", "residual_factors", "rnn_factor_of_gain",
    "rnn_predicted_factor", "rnn_time_factors", "rnn_variances", "second_moment_variance", "spectra_table",
    "split_layers", "split_timesteps", "squared_expectation", "theory_table", "theory_table_from_arrays",
    "time_factor_fit", "weight_ensemble", "weight_variance",
]
