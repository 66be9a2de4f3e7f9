"""``envdoctor fix``: findings (or a recipe) -> a plan -> a transaction that ends as planned or as it was.

One concern per module, in the order a fix runs; the first lines of each say what it may touch.

- :mod:`~envdoctor.fix.model` the plan as data: :class:`Step` per action kind, selection, plan
- :mod:`~envdoctor.fix.planner` findings -> plan; :mod:`~envdoctor.fix.recipe_plan` recipe -> plan
- :mod:`~envdoctor.fix.merge` requirements merged, installs grouped and ordered, torch index chosen
- :mod:`~envdoctor.fix.torch_projection` the facts after a planned torch change, findings re-derived
- :mod:`~envdoctor.fix.refusals` PEP 668 and conda: when pip must not run (from facts, and live)
- :mod:`~envdoctor.fix.target` the live interpreter: prefix, distributions
- :mod:`~envdoctor.fix.state` the prefix's ``.envdoctor/`` folder: lock, atomic writes
- :mod:`~envdoctor.fix.activation` the activation file that holds environment variables
- :mod:`~envdoctor.fix.transaction` snapshots and the stash of installed files
- :mod:`~envdoctor.fix.installer` the pip / uv process
- :mod:`~envdoctor.fix.apply` and :mod:`~envdoctor.fix.rollback` the executor and its undo
- :mod:`~envdoctor.fix.render` text and JSON of plans and outcomes
- :mod:`~envdoctor.fix.run` the workflow the command line and the MCP server call;
  :mod:`~envdoctor.fix.progress` what it says meanwhile

Importing the package imports none of them (``check`` imports only what it uses).
"""
