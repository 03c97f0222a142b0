"""The NAT / NAT2 search: the method's parts, and one module per pipeline step that runs them.

The method (no files, no torch):

* :mod:`nat2.search.policy`: the NAT / NAT2 / random policy table and how ``auto`` keys resolve;
* :mod:`nat2.search.sampling`: new, distinct architectures by a sampling policy (initial design, random search);
* :mod:`nat2.search.inner`: the inner NSGA-II/III on the surrogate, every genome repaired to canonical form;
* :mod:`nat2.search.distribution`: the archive's gene distribution that adaptation samples from.

The steps (file in, file out; each pipeline stage calls one function), in run order:

* :mod:`nat2.search.initial`: iteration 0, the initial design, its evaluation in shards, the initial archive;
* :mod:`nat2.search.fit`: fit the predictor on the archive;
* :mod:`nat2.search.propose`: propose the iteration's candidates (the ``search`` stage);
* :mod:`nat2.search.update`: evaluate them and update the archive;
* :mod:`nat2.search.adapt`: adapt the super-net to the archive and re-evaluate it;
* :mod:`nat2.search.inputs`: what every step checks on entry (iteration, archive, super-net) and its seeds.

Every random choice derives from ``SeedSequence([seed, stage, iteration])``, so one iteration rerun alone gives the
same bytes. Candidate selection, survival and fronts are :mod:`nat2.selection`'s; hypervolume and the archive
statistics :mod:`nat2.indicators`'. Import the modules themselves: this package imports nothing, so the config can
consult :mod:`nat2.search.policy` without loading pymoo.
"""

from __future__ import annotations

__all__: list[str] = []
