"""The claims registry, found by itself: every module of ``claims.catalog`` exposes one
``CLAIM``, and ``CLAIMS`` holds them by id, in id order (the paper's order).

Adding a claim is adding a module to ``catalog`` (and the claim's id to its study's
``claims:`` list in ``conf/studies/<study>.yaml``); nothing here names a claim.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from gradatlas.analysis.claims import catalog
from gradatlas.analysis.claims.claim import Claim


def claim_modules(package: ModuleType = catalog) -> list[ModuleType]:
    """Every module of ``package`` (not its subpackages), imported, in name order."""
    return [importlib.import_module(f"{package.__name__}.{info.name}")
            for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda info: info.name)
            if not info.ispkg]


def collect(modules: list[ModuleType]) -> dict[int, Claim]:
    """Claim id -> ``Claim`` from each module's ``CLAIM``, in id order.

    Raises:
        TypeError: a module has no ``CLAIM`` or its ``CLAIM`` is not a ``Claim`` with a computation.
        ValueError: two modules claim the same id.
    """
    found: dict[int, tuple[Claim, str]] = {}
    for module in modules:
        claim = getattr(module, "CLAIM", None)
        if not isinstance(claim, Claim) or claim.compute is None:
            raise TypeError(f"{module.__name__} must define CLAIM, a Claim with a compute function")
        if claim.id in found:
            raise ValueError(f"claim {claim.id} is defined twice: {found[claim.id][1]} and {module.__name__}")
        found[claim.id] = (claim, module.__name__)
    return {claim_id: found[claim_id][0] for claim_id in sorted(found)}


# The registry: claim id -> Claim, in the paper's order.
CLAIMS: dict[int, Claim] = collect(claim_modules())
