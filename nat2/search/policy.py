"""The search policies: what ``search.policy`` (NAT, NAT2 or random search) switches, and how overrides apply.

One line in params (``search.policy``) switches the whole set of sub-policies, so NAT2 can be compared with NAT
and with random search at the same number of evaluations (method.md §4); every sub-policy key left at ``auto``
follows the policy, any other value overrides it:

========  ==================  ============  ==========  ==========  ======  ================
policy    initial sampling    pre-process   update      encoding    repair  surrogate-guided
========  ==================  ============  ==========  ==========  ======  ================
nat       uniform             no            append      one_hot     push    yes
nat2      arch_space          yes           survival    integer     fill    yes
random    uniform             no            append      integer     push    no
========  ==================  ============  ==========  ==========  ======  ================

The table is method logic, so it lives beside the search; :mod:`nat2.config` only declares and validates the keys
(and asks :func:`resolve_policy` whether a run fits a surrogate). This module imports nothing from nat2, so the
config can use it without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

__all__ = ["POLICY_TABLE", "SearchPolicy", "SubPolicyKeys", "resolve_policy"]


@dataclass(frozen=True)
class SearchPolicy:
    """The concrete sub-policies of a run (``search.policy`` with every ``auto`` resolved).

    Attributes:
        init: initial sampling (``uniform``, ``arch_space``, ``uniform_depth``; :meth:`SearchSpace.sample`).
        preprocess: NAT2 pre-processing: evaluate ``archive_size x preprocess_mult``, keep ``archive_size``.
        update: archive update, ``append`` (NAT: the archive grows) or ``survival`` (NAT2: fixed size).
        encoding: surrogate features, ``integer`` or ``one_hot``.
        repair: how genomes are made canonical, ``fill`` or ``push``.
        surrogate_guided: candidates come from the inner search on a fitted surrogate (False: random search).
    """

    init: str
    preprocess: bool
    update: str
    encoding: str
    repair: str
    surrogate_guided: bool


#: each policy's sub-policies (method.md §4: NAT2 changes exactly these relative to NAT)
POLICY_TABLE: MappingProxyType[str, SearchPolicy] = MappingProxyType({
    "nat": SearchPolicy("uniform", False, "append", "one_hot", "push", True),
    "nat2": SearchPolicy("arch_space", True, "survival", "integer", "fill", True),
    "random": SearchPolicy("uniform", False, "append", "integer", "push", False),
})


class SubPolicyKeys(Protocol):
    """The params keys that choose the policy (``search.policy`` and its ``auto``-able sub-policies)."""

    @property
    def policy(self) -> str:
        """``nat``, ``nat2`` or ``random``."""

    @property
    def init(self) -> str:
        """Initial sampling, or ``auto``."""

    @property
    def preprocess(self) -> str:
        """``on``, ``off`` or ``auto``."""

    @property
    def update(self) -> str:
        """``append``, ``survival`` or ``auto``."""

    @property
    def encoding(self) -> str:
        """``integer``, ``one_hot`` or ``auto``."""

    @property
    def repair(self) -> str:
        """``fill``, ``push`` or ``auto``."""


def resolve_policy(keys: SubPolicyKeys) -> SearchPolicy:
    """The sub-policies in force: the policy's row of :data:`POLICY_TABLE`, overridden by every non-``auto`` key.

    Args:
        keys: the ``search`` section (:class:`nat2.config.SearchConfig`), or anything with the same keys.
    """
    base = POLICY_TABLE[keys.policy]
    return SearchPolicy(
        init=base.init if keys.init == "auto" else keys.init,
        preprocess=base.preprocess if keys.preprocess == "auto" else keys.preprocess == "on",
        update=base.update if keys.update == "auto" else keys.update,
        encoding=base.encoding if keys.encoding == "auto" else keys.encoding,
        repair=base.repair if keys.repair == "auto" else keys.repair,
        surrogate_guided=base.surrogate_guided,
    )
