"""input_sq_norm: each traced example's squared input norm ||x||^2, at initialization (opt-in).

The mean-field prediction of a plain MLP's gradient factor starts from each example's own
first-layer variance q_1 = sigma_w^2 ||x||^2 / fan_in + sigma_b^2; recording the norms of the
batch the probes measured lets the analysis predict that batch without regenerating its data.
Rows: ``layer`` is the example's position in the batch, ``name`` is ``input``.
"""

from gradatlas.run.probes.quantity import LAYERS, LayerGroup, Measured, Quantity, register
from gradatlas.run.probes.schedule import AT_INIT

# The ``name`` of the rows: not a layer of the network.
INPUT_ROW = "input"


@register
class InputSqNorm(Quantity):
    """||x_b||^2 in float64 for every example b of the traced batch (feed-forward models)."""

    name = "input_sq_norm"
    group = LayerGroup.EXAMPLES
    steps = AT_INIT
    switch = "input_norms"

    def measure(self, step):
        inputs = step.batch.inputs
        if inputs is None:
            return []
        squares = inputs.detach().double().pow(2).sum(dim=1)
        return [Measured(LAYERS, self.group, b, self.order, INPUT_ROW, self.name, value)
                for b, value in enumerate(squares.unbind())]
