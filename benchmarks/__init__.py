"""The X-Mark benchmark: the whole protocol, baselines, resolution transfer, attacks, speed.

Run ``python -m benchmarks.run [--quick] --out results/``; see ``benchmarks/README.md``
for what each number means. Every part is a module with a ``run(ctx, ...)`` function
over one shared :class:`~benchmarks.context.BenchContext` (data, trained-model cache,
verification helpers), so a model is trained once per run however many parts use it.
"""
