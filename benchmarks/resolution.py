"""Part 3: resolution transfer, the paper's central claim.

Suspects are trained on a method's release downsampled to a fraction of the source
resolution (their input size is that fraction; queries at the source resolution are
resized to it by the suspect's own preprocessing), and, for X-Mark, on the release at the
standard size with another architecture than the surrogate's.
"""

from __future__ import annotations

from typing import Any

from benchmarks.context import BenchContext, brief
from benchmarks.protocol import XMARK, Method

MIN_SIZE = 32  # the classifiers need at least 32 px


def _case(ctx: BenchContext, meth: Method, size: int, arch: str | None = None) -> dict[str, Any]:
    tr = ctx.train(meth.name, size=size, arch=arch)
    r = brief(ctx.verify(ctx.suspect(tr), meth.marker))
    ctx.log(f"resolution {meth.name} {tr.arch}@{size}px: WSR {r['wsr']:.3f} dP {r['delta_p']:.3f} p {r['p']:.3g}")
    return {**r, "input_size": size, "arch": tr.arch, "ba": tr.accuracy}


def run(ctx: BenchContext, methods: dict[str, Method]) -> dict[str, dict[str, Any]]:
    """Per method: ``{str(factor): {wsr, delta_p, p, input_size, ba, ...}}``; X-Mark also has
    ``other_arch``. Factors whose side falls below 32 px are recorded as skipped."""
    s = ctx.s
    ctx.train_many([(name, s.size_at(f), None, None) for name in methods
                    for f in (s.resolution_factors if name == XMARK else s.baseline_factors)
                    if s.size_at(f) >= MIN_SIZE] + [(XMARK, None, s.other_arch, None)] * (XMARK in methods))
    out: dict[str, dict[str, Any]] = {}
    for name, meth in methods.items():
        factors = s.resolution_factors if name == XMARK else s.baseline_factors
        rows: dict[str, Any] = {}
        for f in factors:
            size = s.size_at(f)
            rows[str(f)] = (_case(ctx, meth, size) if size >= MIN_SIZE
                            else {"skipped": f"{size} px is below the {MIN_SIZE} px minimum"})
        if name == XMARK:
            rows["other_arch"] = _case(ctx, meth, s.input_size, arch=s.other_arch)
        out[name] = rows
    return out
