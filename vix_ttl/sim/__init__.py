"""The scenario simulator: real vix_ttl code under simulated traffic, on virtual time.

It drives the real ``@vix_cached`` and breaker with a workload that plays out a
story (a lineup leak, a flash crash, a replayed feed) on an asyncio loop whose
clock jumps, compares strategies on the same traffic, and judges every served
value against the truth. It imports the library; the library never imports it.

Its public names, by module:

- ``vix_ttl.sim.scenario``: ``Scenario``, ``lineup_leak``, ``flash_crash``,
  ``calm_day``, ``BUILT_IN``, ``load_scenario``, ``MAX_SECONDS``, ``DEFAULT_CHANGE_EVERY``;
- ``vix_ttl.sim.truth``: ``Truth``, when each key's true value changes;
- ``vix_ttl.sim.simulate``: ``simulate`` (one strategy), ``run`` (several, in
  processes of their own), ``StrategyResult``, ``STRATEGIES``, ``DEFAULT_STRATEGIES``,
  ``FIXED``, ``check_strategy``, ``share``;
- ``vix_ttl.sim.frontier``: ``build_frontier``, ``frontier_strategies``,
  ``DEFAULT_TTLS``, ``POLICIES``;
- ``vix_ttl.sim.report``: the reports of both, as data (``simulation_report``,
  ``frontier_report``) and as tables (``render_simulation``, ``render_frontier``), ``when``;
- ``vix_ttl.sim.demo``: ``demo``, the breaker alone through the lineup-leak story;
- ``vix_ttl.sim.plot`` (the ``plot`` extra): ``plot``, ``plot_frontier``,
  ``simulation_figure``, ``frontier_figure``, ``BIN_SECONDS``, ``DPI``, ``LABEL_REACH``,
  ``label_extent`` (where a label is drawn: what tests measure);
- ``vix_ttl.sim.cli``: ``main``, the ``vix-ttl`` command.

Nothing is imported here: each name has its module as its one home (the module
``simulate`` and its function ``simulate`` cannot both be this package's attribute).
"""
