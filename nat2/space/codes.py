"""Layer genes: packing one layer's (kernel, expand, branch mask) into a single integer and back.

The packing is the reference code's (method.md §1.3)::

    non-parallel: code = 1 + 3·idx(e) + idx(ks)                 (1..9)
    parallel:     code = 1 + 9·pos(nw) + 3·idx(e) + idx(ks)     (1..63), pos = index in BRANCH_MASKS

and 0 means "layer skipped". Kept apart from :mod:`nat2.space.encoding` because the cost model enumerates codes
without needing a whole search space.
"""

from __future__ import annotations

import numpy as np

from nat2.space.macro import BRANCH_MASKS, BRANCH_MBCONV, EXPAND_RATIOS, KERNEL_SIZES

__all__ = ["canonical_codes", "layer_choice", "layer_code", "n_layer_codes"]

_N_KE = len(KERNEL_SIZES) * len(EXPAND_RATIOS)


def n_layer_codes(parallel: bool) -> int:
    """Number of non-zero layer codes: 9 (kernel × expand), or 63 with the parallel branch mask."""
    return _N_KE * (len(BRANCH_MASKS) if parallel else 1)


def layer_code(kernel_size: int, expand_ratio: int, branch: int, parallel: bool) -> int:
    """Pack one present layer's choices into its gene (no canonicalisation: see :meth:`SearchSpace.repair`).

    Raises:
        ValueError: on a value outside the space, or a mask other than 4 in a non-parallel space.
    """
    if kernel_size not in KERNEL_SIZES:
        raise ValueError(f"kernel size {kernel_size!r} not in {KERNEL_SIZES}")
    if expand_ratio not in EXPAND_RATIOS:
        raise ValueError(f"expand ratio {expand_ratio!r} not in {EXPAND_RATIOS}")
    if branch not in BRANCH_MASKS or (not parallel and branch != BRANCH_MBCONV):
        allowed = BRANCH_MASKS if parallel else (BRANCH_MBCONV,)
        raise ValueError(f"branch mask {branch!r} not allowed here: expected one of {allowed}")
    code = 1 + len(KERNEL_SIZES) * EXPAND_RATIOS.index(expand_ratio) + KERNEL_SIZES.index(kernel_size)
    return code + _N_KE * BRANCH_MASKS.index(branch) if parallel else code


def layer_choice(code: int, parallel: bool) -> tuple[int, int, int]:
    """Unpack a layer gene into ``(kernel_size, expand_ratio, branch)``; code 0 gives ``(0, 0, 0)``.

    Raises:
        ValueError: when ``code`` is outside ``0..n_layer_codes(parallel)``.
    """
    n = n_layer_codes(parallel)
    if isinstance(code, bool) or not isinstance(code, (int, np.integer)) or not 0 <= code <= n:
        raise ValueError(f"layer code {code!r} outside 0..{n}")
    if code == 0:
        return 0, 0, 0
    pos, rest = divmod(int(code) - 1, _N_KE)
    e_idx, k_idx = divmod(rest, len(KERNEL_SIZES))
    branch = BRANCH_MASKS[pos] if parallel else BRANCH_MBCONV
    return KERNEL_SIZES[k_idx], EXPAND_RATIOS[e_idx], branch


def canonical_codes(parallel: bool) -> tuple[int, ...]:
    """Lookup ``code -> canonical code``: an MBConv-less parallel mask drops its unused kernel/expand index.

    Index 0 (skipped) and every non-parallel code map to themselves.
    """
    out = [0]
    for code in range(1, n_layer_codes(parallel) + 1):
        pos = (code - 1) // _N_KE
        mb = not parallel or BRANCH_MASKS[pos] & BRANCH_MBCONV
        out.append(code if mb else 1 + _N_KE * pos)
    return tuple(out)
