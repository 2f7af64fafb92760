"""underflow (time steps): whether dLoss/dh_t of the top recurrent layer is lost to float32."""

from gradatlas.run.probes.quantity import TimestepQuantity, register
from gradatlas.run.probes.tensors import underflow_flags


@register
class HiddenUnderflow(TimestepQuantity):
    """Per t = 1..T, 1.0 where dLoss/dh_t of the top recurrent layer is 0 or subnormal in
    float32 (every entry), else 0.0."""

    name = "underflow"
    order = 20

    def measure_series(self, step):
        return underflow_flags([[h] for h in step.batch.hidden])
