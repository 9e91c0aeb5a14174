"""Hyper-parameter sweeps over TrainingConfig paths, with certified bounds as first-class results.

One module one concept: ``space`` (what may vary, validated against TrainingConfig,
expanded to a grid or sampled), ``halving`` (the rung rule of successive halving),
``plan`` (which trials a sweep runs and which to launch next), ``selection`` (the
Pareto fronts and the rule that picks the winner; the front itself is ``lipspline.sweeps.pareto``)
and ``local`` (the same engine run in-process, for the paper recipes and the bench).
Nothing here knows of HTTP, queues or databases: ``lipspline_platform/sweeps.py`` is the
thin layer that turns trials into jobs.
"""
