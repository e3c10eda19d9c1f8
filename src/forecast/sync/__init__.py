"""``forecast sync``: an incremental loop that ingests new CRM exports, rescores and writes them back.

One cycle (:func:`forecast.sync.cycle.run_cycle`) finds the exports in a folder
(:mod:`forecast.sync.exports`), ingests those whose content it has not seen, rescores the warehouse
when something was ingested, writes the changed scores as the CRM's import files and logs itself.
What a cycle did is committed to the warehouse only at its end (:mod:`forecast.sync.state`), so a
cycle stopped at any point is redone by the next one. The runner (:mod:`forecast.sync.runner`)
repeats cycles and stops cleanly on SIGINT or SIGTERM. See docs/sync.md.
"""
