"""``cg-demo``: an application over the whole pipeline, on data it makes itself, ending in a report.

It sits above everything else: it trains with :mod:`training`, exports, verifies, benchmarks and stylizes with
:mod:`cg_export`, and nothing imports it back.

- :mod:`cg_demo.plan`: how much the demo does (:data:`~cg_demo.plan.FULL_PLAN`, :data:`~cg_demo.plan.QUICK_PLAN`).
- :mod:`cg_demo.data`: the embedded two-domain dataset (photographs and their "poster print" versions).
- :mod:`cg_demo.results`: the typed record of a run (what ``report.json`` holds).
- :mod:`cg_demo.runner`: :func:`~cg_demo.runner.run_demo`, the stages from data to report.
- :mod:`cg_demo.report`: the figures and the one report document (Markdown, rendered to HTML).
- :mod:`cg_demo.cli`: the ``cg-demo`` command.
"""
