"""Development tools: the synthetic photo shop and the plain-Python oracle of the rules.

Never part of the production image (the Dockerfile's context leaves it out) and never imported by
the library or the DAGs. ``vocabulary`` (names, pools, payloads), ``tables`` (COPY layout),
``rows`` (one method per record kind), ``generator`` (the random shop), ``scenarios`` (the
scripted boundary cases and holds), ``loader`` (``seed``: COPY, objects, ``SeedReport``), ``guard``
(what the seed refuses to wipe), ``reference`` (the oracle) and ``seed_cmd`` (``governance seed``).
"""
