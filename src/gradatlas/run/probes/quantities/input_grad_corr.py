"""input_grad_corr: the correlation of input gradients at points a given separation apart along
an arc through input space (``probes.arc``), at initialization (opt-in).

Rows: ``layer`` is the separation s (the points make the angle s * ARC_STEP), ``name`` is
``arc``, the value the mean over the pairs (i, i + s) of the cosine between the gradients of
the first logit with respect to the input at the two points.
"""

from gradatlas.run.probes.quantity import LAYERS, LayerGroup, Measured, Quantity, register
from gradatlas.run.probes.schedule import AT_INIT

# The ``name`` of the rows: not a layer of the network.
ARC_ROW = "arc"


@register
class InputGradCorr(Quantity):
    """Mean cosine of d(logit 0)/dx between arc points s apart, for s = 1..P-1 (feed-forward models)."""

    name = "input_grad_corr"
    group = LayerGroup.EXAMPLES
    steps = AT_INIT
    switch = "input_grad_corr"
    order = 10
    reads_input_grads = True

    def measure(self, step):
        grads = step.input_grads
        if grads is None:
            return []
        unit = grads.double()
        unit = unit / unit.norm(dim=1, keepdim=True)
        cosines = unit @ unit.T
        return [Measured(LAYERS, self.group, s, self.order, ARC_ROW, self.name, cosines.diagonal(s).mean())
                for s in range(1, len(unit))]
